"""The media store: one small interface for files, a local directory by default.

Keys are relative POSIX paths laid out so a CDN or an object store can serve
them unchanged: ``items/<item_id>/original.<ext>``, ``items/<item_id>/video.mp4``,
``items/<item_id>/thumb-<width>.jpg``; scratch space lives under ``tmp/<job>/``.
Writes go to a temporary name and are renamed into place, so a reader never
sees half a file and a crash never leaves one under a real key.

:class:`MediaStore` is the interface; :func:`open_store` picks the local
directory (the default) or an S3-compatible object store
(:mod:`prsnl_common.s3store`) from the settings. Both keep scratch space on
local disk, since ffmpeg and yt-dlp work on files.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from stat import S_ISREG as stat_is_file
from typing import TYPE_CHECKING, Protocol

from prsnl_common.pagecache import map_file, memory_chunk

if TYPE_CHECKING:
    from prsnl_common.settings import CommonSettings


class InvalidKey(ValueError):
    """A key that is absolute, escapes the root or has empty parts."""


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    mtime: float


def item_prefix(item_id: uuid.UUID | str) -> str:
    return f"items/{item_id}"


def original_key(item_id: uuid.UUID | str, ext: str) -> str:
    return f"{item_prefix(item_id)}/original.{ext.lstrip('.').lower()}"


def video_key(item_id: uuid.UUID | str, profile: str | None = None) -> str:
    suffix = f"-{profile}" if profile else ""
    ext = "m4a" if profile == "audio" else "mp4"
    return f"{item_prefix(item_id)}/video{suffix}.{ext}"


def thumbnail_key(item_id: uuid.UUID | str, width: int, profile: str | None = None) -> str:
    """A re-transcode's thumbnails get names of their own: the served ones stay untouched."""
    middle = f"{profile}-" if profile else ""
    return f"{item_prefix(item_id)}/thumb-{middle}{width}.jpg"


class MediaStore(Protocol):
    """Files by key; every call blocks (run it in a thread from async code) but reads."""

    root: Path  # local disk: scratch lives in root/tmp

    def scratch(self, job: str) -> Path: ...
    def discard_scratch(self, job: str) -> None: ...
    def put_file(self, key: str, source: Path) -> StoredFile: ...
    def stat(self, key: str) -> StoredFile | None: ...
    async def head(self, key: str) -> StoredFile | None:
        """:meth:`stat` without blocking the event loop."""
        ...

    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> bool: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def list(self, prefix: str = "") -> Iterator[StoredFile]: ...
    def free_bytes(self) -> int: ...
    def local_file(self, key: str, scratch: Path) -> Path:
        """A local file with ``key``'s bytes: the file itself, or a copy in ``scratch``."""
        ...

    def read_range(
        self, key: str, start: int, length: int, chunk_size: int
    ) -> AsyncIterator[bytes | memoryview]: ...
    def presigned_url(self, key: str, seconds: int, method: str = "GET") -> str | None:
        """A GET (or HEAD) link the store serves itself, without us, or None if it cannot."""
        ...

    def describe(self) -> str: ...


def open_store(settings: CommonSettings) -> MediaStore:
    """The store the settings choose: ``PRSNL_MEDIA_STORE`` (s3://...) or ``PRSNL_MEDIA_ROOT``."""
    if not settings.media_store:
        return LocalMediaStore(settings.media_root)
    from prsnl_common.s3store import S3MediaStore, S3Options

    options = S3Options(
        settings.s3_endpoint,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key.get_secret_value(),
    )
    return S3MediaStore(settings.media_store, options, settings.media_root)


class ScratchSpace:
    """Scratch folders ``tmp/<job>`` under a local root, for every kind of store."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def scratch(self, job: str) -> Path:
        """A fresh, empty scratch directory ``tmp/<job>`` (left-overs of a crash removed)."""
        directory = self.root.joinpath("tmp", *key_parts(job))
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        return directory

    def discard_scratch(self, job: str) -> None:
        shutil.rmtree(self.root.joinpath("tmp", *key_parts(job)), ignore_errors=True)

    def free_bytes(self) -> int:
        """Free space on the local disk: the media's, or only the scratch space's."""
        return shutil.disk_usage(self.root).free


def key_parts(key: str) -> tuple[str, ...]:
    """The parts of a relative key; refuses absolute keys, empty parts, . and .."""
    pure = PurePosixPath(key)
    if pure.is_absolute() or not pure.parts or any(p in ("", ".", "..") for p in key.split("/")):
        raise InvalidKey(key)
    return pure.parts


class LocalMediaStore(ScratchSpace):
    """Media store on a local (or network-mounted) directory."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        (self.root / "items").mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The filesystem path of ``key``; refuses keys that would escape the root."""
        return self.root.joinpath(*key_parts(key))

    def local_file(self, key: str, scratch: Path) -> Path:
        return self.path(key)

    async def head(self, key: str) -> StoredFile | None:
        return self.stat(key)  # a local stat is microseconds: no thread

    async def read_range(
        self, key: str, start: int, length: int, chunk_size: int
    ) -> AsyncIterator[bytes | memoryview]:
        """``length`` bytes of ``key`` from ``start`` in chunks: those in memory from the
        event loop (views of the mapped file where the kernel can tell), the others read
        in a worker thread (the open, like a stat, is microseconds on a local disk)."""
        descriptor = os.open(self.path(key), os.O_RDONLY)
        try:
            mapped = map_file(descriptor)
            position, end = start, start + length
            while position < end:
                size = min(chunk_size, end - position)
                chunk = memory_chunk(descriptor, mapped, position, size)
                if chunk is None:
                    chunk = await asyncio.to_thread(os.pread, descriptor, size, position)
                if not chunk:
                    return
                position += len(chunk)
                yield chunk
        finally:
            os.close(descriptor)

    def presigned_url(self, key: str, seconds: int, method: str = "GET") -> str | None:
        return None

    def describe(self) -> str:
        return str(self.root)

    def put_file(self, key: str, source: Path) -> StoredFile:
        """Move ``source`` (on the same filesystem, e.g. scratch) to ``key`` atomically."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            shutil.move(source, temporary)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        stat = target.stat()
        return StoredFile(key, stat.st_size, stat.st_mtime)

    def stat(self, key: str) -> StoredFile | None:
        try:
            stat = self.path(key).stat()
        except FileNotFoundError:
            return None
        return StoredFile(key, stat.st_size, stat.st_mtime)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> bool:
        """Remove one file; True if it existed. Empty item folders go too."""
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self._prune(path.parent)
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Remove every file under ``prefix``; returns how many."""
        directory = self.path(prefix)
        if not directory.is_dir():
            return 0
        count = sum(1 for p in directory.rglob("*") if p.is_file())
        shutil.rmtree(directory, ignore_errors=True)
        self._prune(directory.parent)
        return count

    def list(self, prefix: str = "") -> Iterator[StoredFile]:
        """Every file under ``prefix``, in key order.

        Files and folders removed while the walk runs (a job ending, another janitor
        replica) are skipped, not an error: the listing is a snapshot of a moving tree.
        """
        base = self.path(prefix) if prefix else self.root
        for directory, folders, names in os.walk(base):
            folders.sort()
            for name in sorted(names):
                path = Path(directory, name)
                try:
                    stat = path.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat_is_file(stat.st_mode):
                    continue
                key = path.relative_to(self.root).as_posix()
                yield StoredFile(key, stat.st_size, stat.st_mtime)

    def _prune(self, directory: Path) -> None:
        # Remove empty parents up to (not including) items/ and tmp/.
        stop = {self.root, self.root / "items", self.root / "tmp"}
        while directory not in stop and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


def kind_of(key: str) -> str:
    """original, video, thumbnail, or temp: scratch, a temporary name, anything outside items/."""
    name = PurePosixPath(key).name
    if not key.startswith("items/") or name.endswith(".part"):
        return "temp"
    if name.startswith("thumb-"):
        return "thumbnail"
    if name.startswith("original."):
        return "original"
    return "video"
