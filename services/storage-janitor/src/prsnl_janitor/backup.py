"""Backup and restore of the catalog and the media store, consistent with each other.

A backup directory — or one tar file with the same layout inside — holds every
backup made into it::

    files/<sha256>                  media files by content, shared by all backups
    <UTC stamp>/catalog.dump        pg_dump, custom format
    <UTC stamp>/manifest.json       every file the catalog referenced, with its checksum

The keys are read in a REPEATABLE READ transaction whose snapshot pg_dump is
given (``--snapshot``): the dump and the list of files describe the same
moment. Files are stored by checksum, so a later backup copies only files it
has not seen (a file already backed up with the same size and mtime is not
even read again); into a tar the later backup is appended, its manifest last,
and a tail cut off by a crash is dropped before the next append. ``verify``
checks every checksum and that pg_restore can read the dump; ``restore`` does
the same, then loads the dump into an empty database and puts every file back
under its key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg

from prsnl_common.store import MediaStore
from prsnl_janitor.archive import DUMP, MANIFEST, Archive, open_archive

CHUNK = 1024 * 1024
REFERENCED_KEYS = (
    "SELECT k FROM (SELECT original_key AS k FROM items UNION SELECT video_key FROM items "
    "UNION SELECT t.value FROM items, jsonb_each_text(coalesce(thumbnail_keys, '{}')) AS t) "
    "AS keys WHERE k IS NOT NULL ORDER BY k"
)


class BackupError(Exception):
    """A backup that cannot be made, verified or restored; the message says why."""


@dataclass(frozen=True)
class Outcome:
    backup: str
    files: int
    copied: int
    bytes: int
    missing: list[str]


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return _sha256_of_stream(handle)


def _known(archive: Archive) -> dict[tuple[str, int, float], str]:
    """(key, size, mtime) → checksum, from every earlier manifest of ``archive``."""
    known: dict[tuple[str, int, float], str] = {}
    for manifest in archive.manifests().values():
        for entry in manifest["files"]:
            known[(entry["key"], entry["size"], entry.get("mtime", 0.0))] = entry["sha256"]
    return known


def _copy_files(
    store: MediaStore, keys: list[str], archive: Archive
) -> tuple[list[dict[str, Any]], int, list[str]]:
    known = _known(archive)
    entries, copied, missing = [], 0, []
    with _scratch(store, "backup") as scratch:
        for key in keys:
            stored = store.stat(key)
            checksum = stored and known.get((key, stored.size, stored.mtime))
            try:
                if stored is not None and not (checksum and archive.has_blob(checksum)):
                    checksum, added = _add_file(store, key, scratch, archive)
                    copied += added
            except FileNotFoundError:
                stored = None
            if stored is None or not checksum:
                missing.append(key)  # deleted since the snapshot; the restored row will lack it
                continue
            entries.append(
                {"key": key, "size": stored.size, "mtime": stored.mtime, "sha256": checksum}
            )
    return entries, copied, missing


def _add_file(store: MediaStore, key: str, scratch: Path, archive: Archive) -> tuple[str, int]:
    """Checksum ``key``'s file and copy it in unless the archive has it: (checksum, copied)."""
    path = store.local_file(key, scratch)
    try:
        checksum = sha256_of(path)
        if archive.has_blob(checksum):
            return checksum, 0
        archive.add_blob(checksum, path)
        return checksum, 1
    finally:
        if path.is_relative_to(scratch):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _scratch(store: MediaStore, purpose: str) -> Iterator[Path]:
    job = f"{purpose}-{uuid.uuid4().hex}"
    try:
        yield store.scratch(job)
    finally:
        store.discard_scratch(job)


async def backup(database_url: str, store: MediaStore, target: Path) -> Outcome:
    """One consistent backup of the catalog and the files it references into ``target``.

    ``target`` is a backup directory, or a ``.tar`` file the backup is appended to.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    archive = open_archive(target, write=True)
    try:
        dump = archive.dump_target(stamp)
        keys = await _dump_catalog(database_url, dump)
        entries, copied, missing = _copy_files(store, keys, archive)
        manifest = {
            "created_at": stamp,
            "catalog": {"file": DUMP, "sha256": sha256_of(dump)},
            "files": entries,
            "missing": missing,
        }
        name = archive.add_backup(stamp, manifest)
    finally:
        archive.close()
    return Outcome(name, len(entries), copied, sum(e["size"] for e in entries), missing)


async def _dump_catalog(database_url: str, dump: Path) -> list[str]:
    """pg_dump into ``dump``; the keys the catalog references, read in the same snapshot."""
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await connection.fetchval("SELECT pg_export_snapshot()")
            keys = [row["k"] for row in await connection.fetch(REFERENCED_KEYS)]
            _run(
                [
                    "pg_dump",
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    f"--file={dump}",
                    f"--dbname={database_url}",
                ]
            )
    finally:
        await connection.close()
    return keys


@dataclass
class Chosen:
    """One backup to verify or restore: the archive that holds it and its stamp."""

    archive: Archive
    stamp: str
    manifest: dict[str, Any]


def resolve(path: Path) -> Chosen:
    """A backup named by its own folder, or the newest one in a backup directory or tar."""
    if (path / MANIFEST).is_file():
        path, wanted = path.parent, path.name
    else:
        wanted = None
    archive = open_archive(path)
    manifests = archive.manifests()
    if not manifests or (wanted is not None and wanted not in manifests):
        archive.close()
        raise BackupError(f"no backup ({MANIFEST}) in {path}")
    stamp = wanted or max(manifests)
    return Chosen(archive, stamp, manifests[stamp])


def verify(chosen: Chosen) -> list[str]:
    """Every problem of a backup (a missing or changed file, an unreadable dump); [] if sound."""
    problems = []
    with chosen.archive.dump(chosen.stamp) as dump:
        if dump is None or sha256_of(dump) != chosen.manifest["catalog"]["sha256"]:
            problems.append(f"catalog dump {DUMP}: missing or checksum mismatch")
        elif subprocess.run(
            ["pg_restore", "--list", str(dump)], check=False, capture_output=True
        ).returncode:
            problems.append(f"catalog dump {DUMP}: pg_restore cannot read it")
    for entry in chosen.manifest["files"]:
        with chosen.archive.blob(entry["sha256"]) as blob:
            if blob is None:
                problems.append(f"{entry['key']}: its copy {entry['sha256']} is missing")
            elif _sha256_of_stream(blob) != entry["sha256"]:
                problems.append(f"{entry['key']}: checksum mismatch in {entry['sha256']}")
    return problems


async def restore(chosen: Chosen, database_url: str, store: MediaStore) -> int:
    """Verify, then load the catalog into an empty database and put every file back."""
    problems = verify(chosen)
    if problems:
        raise BackupError("the backup does not verify:\n  " + "\n  ".join(problems))
    connection = await asyncpg.connect(database_url)
    try:
        present = await connection.fetchval("SELECT to_regclass('items') IS NOT NULL")
        if present and await connection.fetchval("SELECT count(*) FROM items"):
            raise BackupError("the catalog is not empty: restore only into an empty install")
    finally:
        await connection.close()
    with chosen.archive.dump(chosen.stamp) as dump:
        assert dump is not None  # verified
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--exit-on-error",
                f"--dbname={database_url}",
                str(dump),
            ]
        )
    with _scratch(store, "restore") as scratch:
        for entry in chosen.manifest["files"]:
            _put_back(chosen.archive, entry, store, scratch)
    return len(chosen.manifest["files"])


def _put_back(archive: Archive, entry: dict[str, Any], store: MediaStore, scratch: Path) -> None:
    """Write the file to scratch, then store it under its key (atomically, as every put)."""
    partial = scratch / "restored"
    with archive.blob(entry["sha256"]) as blob, partial.open("wb") as out:
        assert blob is not None  # verified
        shutil.copyfileobj(blob, out, CHUNK)
    store.put_file(entry["key"], partial)


def _sha256_of_stream(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _run(command: list[str]) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode:
        raise BackupError(f"{command[0]} failed: {result.stderr.strip()[-2000:]}")
