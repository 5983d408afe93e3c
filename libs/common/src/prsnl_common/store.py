"""The media store: one small interface for files, a local directory by default.

Keys are relative POSIX paths laid out so a CDN or an object store can serve
them unchanged: ``items/<item_id>/original.<ext>``, ``items/<item_id>/video.mp4``,
``items/<item_id>/thumb-<width>.jpg``; scratch space lives under ``tmp/<job>/``.
Writes go to a temporary name and are renamed into place, so a reader never
sees half a file and a crash never leaves one under a real key.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from stat import S_ISREG as stat_is_file


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


class LocalMediaStore:
    """Media store on a local (or network-mounted) directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        (self.root / "items").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The filesystem path of ``key``; refuses keys that would escape the root."""
        pure = PurePosixPath(key)
        if pure.is_absolute() or not pure.parts or any(p in ("", ".", "..") for p in pure.parts):
            raise InvalidKey(key)
        return self.root.joinpath(*pure.parts)

    def scratch(self, job: str) -> Path:
        """A fresh, empty scratch directory ``tmp/<job>`` (left-overs of a crash removed)."""
        directory = self.path(f"tmp/{job}")
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        return directory

    def discard_scratch(self, job: str) -> None:
        shutil.rmtree(self.path(f"tmp/{job}"), ignore_errors=True)

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

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

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
