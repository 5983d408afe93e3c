"""Where backups are kept: a directory, or one tar file with the same layout inside.

Both hold ``files/<sha256>`` (media by content, shared by every backup) and one
``<stamp>/`` per backup with ``catalog.dump`` and ``manifest.json``. A tar is
only ever appended to, its manifest last: a backup cut off by a crash leaves
at most a tail that :func:`complete_end` finds and the next append drops.
Files go in and out as streams, never whole in memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

BLOCK = tarfile.BLOCKSIZE
DUMP = "catalog.dump"
MANIFEST = "manifest.json"


class Archive(Protocol):
    """What backup, verify and restore need of the place backups are kept."""

    def manifests(self) -> dict[str, dict[str, Any]]:
        """Every backup's manifest, by stamp."""
        ...

    def has_blob(self, checksum: str) -> bool: ...

    def add_blob(self, checksum: str, source: Path) -> None: ...

    def dump_target(self, stamp: str) -> Path:
        """Where pg_dump writes the catalog of the backup ``stamp``."""
        ...

    def add_backup(self, stamp: str, manifest: dict[str, Any]) -> str:
        """Seal the backup ``stamp`` (its dump is written); returns its name for people."""
        ...

    def blob(self, checksum: str) -> contextlib.AbstractContextManager[IO[bytes] | None]: ...

    def dump(self, stamp: str) -> contextlib.AbstractContextManager[Path | None]:
        """The dump of ``stamp`` as a file pg_restore can read, or None when it is missing."""
        ...

    def close(self) -> None: ...


class DirectoryArchive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def manifests(self) -> dict[str, dict[str, Any]]:
        return {
            path.parent.name: json.loads(path.read_text())
            for path in sorted(self.root.glob(f"*/{MANIFEST}"))
        }

    def has_blob(self, checksum: str) -> bool:
        return (self.root / "files" / checksum).exists()

    def add_blob(self, checksum: str, source: Path) -> None:
        blob = self.root / "files" / checksum
        blob.parent.mkdir(parents=True, exist_ok=True)
        partial = blob.with_suffix(".part")
        shutil.copyfile(source, partial)
        os.replace(partial, blob)

    def dump_target(self, stamp: str) -> Path:
        (self.root / stamp).mkdir(parents=True)
        return self.root / stamp / DUMP

    def add_backup(self, stamp: str, manifest: dict[str, Any]) -> str:
        (self.root / stamp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        return str(self.root / stamp)

    @contextlib.contextmanager
    def blob(self, checksum: str) -> Iterator[IO[bytes] | None]:
        path = self.root / "files" / checksum
        if not path.is_file():
            yield None
            return
        with path.open("rb") as handle:
            yield handle

    @contextlib.contextmanager
    def dump(self, stamp: str) -> Iterator[Path | None]:
        path = self.root / stamp / DUMP
        yield path if path.is_file() else None

    def close(self) -> None:
        pass


class TarArchive:
    def __init__(self, path: Path, *, write: bool) -> None:
        self.path = path
        self.members: dict[str, tarfile.TarInfo] = {}
        self._staging: Path | None = None
        if write and path.exists():
            _drop_incomplete_tail(path)
        self._manifests: dict[str, dict[str, Any]] = {}
        if path.exists():
            with tarfile.open(path, "r:") as reading:
                self.members = {m.name: m for m in _complete_members(reading, path)}
                self._manifests = _read_manifests(reading, self.members)
        # Members are read back only from a tar opened for reading ("a" cannot extract).
        self.tar = tarfile.open(path, "a:" if write else "r:")  # noqa: SIM115 (close())

    def manifests(self) -> dict[str, dict[str, Any]]:
        return dict(self._manifests)

    def has_blob(self, checksum: str) -> bool:
        return f"files/{checksum}" in self.members

    def add_blob(self, checksum: str, source: Path) -> None:
        name = f"files/{checksum}"
        self.tar.add(source, arcname=name, recursive=False)
        self.members[name] = self.tar.getmember(name)

    def dump_target(self, stamp: str) -> Path:
        self._staging = Path(tempfile.mkdtemp(prefix=f"prsnl-backup-{stamp}-"))
        return self._staging / DUMP

    def add_backup(self, stamp: str, manifest: dict[str, Any]) -> str:
        assert self._staging is not None
        self.tar.add(self._staging / DUMP, arcname=f"{stamp}/{DUMP}")
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(f"{stamp}/{MANIFEST}")
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))  # last: a backup without it does not count
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging = None
        return f"{self.path} ({stamp})"

    @contextlib.contextmanager
    def blob(self, checksum: str) -> Iterator[IO[bytes] | None]:
        name = f"files/{checksum}"
        if name not in self.members:
            yield None
            return
        with self._open(name) as handle:
            yield handle

    @contextlib.contextmanager
    def dump(self, stamp: str) -> Iterator[Path | None]:
        name = f"{stamp}/{DUMP}"
        if name not in self.members:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="prsnl-restore-") as scratch:
            target = Path(scratch) / DUMP
            with self._open(name) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
            yield target

    def _open(self, name: str) -> IO[bytes]:
        handle = self.tar.extractfile(self.members[name])
        assert handle is not None
        return handle

    def close(self) -> None:
        self.tar.close()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        with contextlib.suppress(OSError), self.path.open("rb+") as handle:
            os.fsync(handle.fileno())


def _read_manifests(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]
) -> dict[str, dict[str, Any]]:
    found = {}
    for name in sorted(members):
        stamp, _, leaf = name.partition("/")
        if leaf == MANIFEST:
            handle = tar.extractfile(members[name])
            assert handle is not None
            found[stamp] = json.load(handle)
    return found


def _complete_members(tar: tarfile.TarFile, path: Path) -> Iterator[tarfile.TarInfo]:
    """The members whose data is wholly in the file (a crash may have cut the last one)."""
    size = path.stat().st_size
    with contextlib.suppress(tarfile.ReadError):
        for member in tar:
            if member.offset_data + member.size > size:
                return
            yield member


def complete_end(path: Path) -> int:
    """The offset just past the last complete member of the tar at ``path`` (0 if none)."""
    end = 0
    try:
        with tarfile.open(path, "r:") as tar:
            for member in _complete_members(tar, path):
                end = member.offset_data + -(-member.size // BLOCK) * BLOCK
    except tarfile.ReadError:  # empty, or cut inside the first header
        return 0
    return end


def _drop_incomplete_tail(path: Path) -> None:
    """Cut the tar after its last complete member and end it there, ready to append to."""
    end = complete_end(path)
    with path.open("r+b") as handle:
        handle.truncate(end)
        handle.seek(end)
        handle.write(b"\0" * (2 * BLOCK))  # the end-of-archive marker the append overwrites


def open_archive(path: Path, *, write: bool = False) -> Archive:
    """A ``.tar`` path (or an existing tar file) is a tar archive, anything else a directory."""
    if path.suffix == ".tar" or (path.is_file() and tarfile.is_tarfile(path)):
        if not write and not path.is_file():
            raise FileNotFoundError(f"no backup file {path}")
        return TarArchive(path, write=write)
    return DirectoryArchive(path)
