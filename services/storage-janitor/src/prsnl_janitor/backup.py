"""Backup and restore of the catalog and the media store, consistent with each other.

A backup directory holds every backup made into it::

    <dir>/files/<sha256>                  media files by content, shared by all backups
    <dir>/<UTC stamp>/catalog.dump        pg_dump, custom format
    <dir>/<UTC stamp>/manifest.json       every file the catalog referenced, with its checksum

The keys are read in a REPEATABLE READ transaction whose snapshot pg_dump is
given (``--snapshot``): the dump and the list of files describe the same
moment. Files are stored by checksum, so a later backup copies only files it
has not seen (a file already backed up with the same size and mtime is not
even read again). ``verify`` checks every checksum and that pg_restore can read
the dump; ``restore`` does the same, then loads the dump into an empty
database and puts every file back under its key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from prsnl_common.store import LocalMediaStore

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
    backup: Path
    files: int
    copied: int
    bytes: int
    missing: list[str]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _known(directory: Path) -> dict[tuple[str, int, float], str]:
    """(key, size, mtime) → checksum, from every earlier manifest in ``directory``."""
    known: dict[tuple[str, int, float], str] = {}
    for manifest in sorted(directory.glob("*/manifest.json")):
        for entry in json.loads(manifest.read_text())["files"]:
            known[(entry["key"], entry["size"], entry.get("mtime", 0.0))] = entry["sha256"]
    return known


def _copy_files(
    store: LocalMediaStore, keys: list[str], directory: Path
) -> tuple[list[dict[str, Any]], int, list[str]]:
    known = _known(directory)
    blobs = directory / "files"
    blobs.mkdir(parents=True, exist_ok=True)
    entries, copied, missing = [], 0, []
    for key in keys:
        stored = store.stat(key)
        if stored is None:
            missing.append(key)  # deleted since the snapshot; the restored row will lack it
            continue
        checksum = known.get((key, stored.size, stored.mtime)) or sha256_of(store.path(key))
        blob = blobs / checksum
        if not blob.exists():
            partial = blob.with_suffix(".part")
            shutil.copyfile(store.path(key), partial)
            os.replace(partial, blob)
            copied += 1
        entries.append({"key": key, "size": stored.size, "mtime": stored.mtime, "sha256": checksum})
    return entries, copied, missing


async def backup(database_url: str, store: LocalMediaStore, directory: Path) -> Outcome:
    """One consistent backup of the catalog and the files it references into ``directory``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = directory / stamp
    target.mkdir(parents=True)
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
                    f"--file={target / 'catalog.dump'}",
                    f"--dbname={database_url}",
                ]
            )
    finally:
        await connection.close()
    entries, copied, missing = _copy_files(store, keys, directory)
    manifest = {
        "created_at": stamp,
        "catalog": {"file": "catalog.dump", "sha256": sha256_of(target / "catalog.dump")},
        "files": entries,
        "missing": missing,
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=1))
    size = sum(e["size"] for e in entries)
    return Outcome(target, len(entries), copied, size, missing)


def resolve(path: Path) -> Path:
    """A backup named by its own folder, or the newest one in a backup directory."""
    if (path / "manifest.json").is_file():
        return path
    newest = sorted(p.parent for p in path.glob("*/manifest.json"))
    if not newest:
        raise BackupError(f"no backup (manifest.json) in {path}")
    return newest[-1]


def verify(backup_dir: Path) -> list[str]:
    """Every problem of a backup (a missing or changed file, an unreadable dump); [] if sound."""
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    problems = []
    dump = backup_dir / manifest["catalog"]["file"]
    if not dump.is_file() or sha256_of(dump) != manifest["catalog"]["sha256"]:
        problems.append(f"catalog dump {dump.name}: missing or checksum mismatch")
    elif subprocess.run(
        ["pg_restore", "--list", str(dump)], check=False, capture_output=True
    ).returncode:
        problems.append(f"catalog dump {dump.name}: pg_restore cannot read it")
    blobs = backup_dir.parent / "files"
    for entry in manifest["files"]:
        blob = blobs / entry["sha256"]
        if not blob.is_file():
            problems.append(f"{entry['key']}: its copy {blob.name} is missing")
        elif sha256_of(blob) != entry["sha256"]:
            problems.append(f"{entry['key']}: checksum mismatch in {blob.name}")
    return problems


async def restore(backup_dir: Path, database_url: str, store: LocalMediaStore) -> int:
    """Verify, then load the catalog into an empty database and put every file back."""
    problems = verify(backup_dir)
    if problems:
        raise BackupError("the backup does not verify:\n  " + "\n  ".join(problems))
    connection = await asyncpg.connect(database_url)
    try:
        present = await connection.fetchval("SELECT to_regclass('items') IS NOT NULL")
        if present and await connection.fetchval("SELECT count(*) FROM items"):
            raise BackupError("the catalog is not empty: restore only into an empty install")
    finally:
        await connection.close()
    _run(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--exit-on-error",
            f"--dbname={database_url}",
            str(backup_dir / "catalog.dump"),
        ]
    )
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    for entry in manifest["files"]:
        target = store.path(entry["key"])
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.restore.part")
        shutil.copyfile(backup_dir.parent / "files" / entry["sha256"], partial)
        os.replace(partial, target)
    return len(manifest["files"])


def _run(command: list[str]) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode:
        raise BackupError(f"{command[0]} failed: {result.stderr.strip()[-2000:]}")
