"""Storage usage, counted once for the API and the metrics: bytes and files by kind and owner.

The counts come from the media tree itself (every regular file, by its
apparent size, as ``du -b --apparent-size`` and ``find -type f`` count them;
folders are not counted), and the catalog only says which item folder belongs
to which owner. A folder under ``items/`` that no row owns is "unowned".
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

from prsnl_common.store import MediaStore, StoredFile, item_prefix, kind_of

# The store's kinds and their names in the API.
KIND_NAMES = {
    "original": "originals",
    "video": "videos",
    "thumbnail": "thumbnails",
    "temp": "scratch",
}


@dataclass
class Count:
    bytes: int = 0
    files: int = 0


@dataclass
class Usage:
    """Bytes and files by kind (the store's kind names)."""

    kinds: dict[str, Count] = field(default_factory=lambda: {k: Count() for k in KIND_NAMES})

    def add(self, stored: StoredFile) -> None:
        count = self.kinds[kind_of(stored.key)]
        count.bytes += stored.size
        count.files += 1

    @property
    def total(self) -> Count:
        return Count(
            sum(c.bytes for c in self.kinds.values()), sum(c.files for c in self.kinds.values())
        )


@dataclass
class Owner:
    owner_id: uuid.UUID
    name: str
    usage: Usage


@dataclass
class StorageReport:
    everything: Usage
    owners: list[Owner]
    unowned: Usage
    free_bytes: int
    disk_bytes: int


def count(files: Iterable[StoredFile]) -> Usage:
    usage = Usage()
    for stored in files:
        usage.add(stored)
    return usage


def _by_folder(store: MediaStore) -> dict[str, Usage]:
    """Usage per item folder name (``""`` for files outside any item folder)."""
    folders: dict[str, Usage] = {}
    for stored in store.list():
        parts = stored.key.split("/")
        folder = parts[1] if parts[0] == "items" and len(parts) > 2 else ""
        folders.setdefault(folder, Usage()).add(stored)
    return folders


def _merge(into: Usage, other: Usage) -> None:
    for kind, counted in other.kinds.items():
        into.kinds[kind].bytes += counted.bytes
        into.kinds[kind].files += counted.files


async def storage_report(pool: asyncpg.Pool, store: MediaStore) -> StorageReport:
    """Usage of the whole store, of every owner (also those with nothing stored), free disk."""
    folders = await asyncio.to_thread(_by_folder, store)
    owners = {
        row["id"]: Owner(row["id"], row["name"], Usage())
        for row in await pool.fetch("SELECT id, name FROM owners ORDER BY name")
    }
    rows = await pool.fetch(
        "SELECT id::text AS id, owner_id FROM items WHERE id::text = ANY($1::text[])",
        [name for name in folders if name],
    )
    owner_of = {row["id"]: row["owner_id"] for row in rows}
    everything, unowned = Usage(), Usage()
    for folder, usage in folders.items():
        _merge(everything, usage)
        if folder:  # an item folder: its owner's, or nobody's
            owner = owners.get(owner_of.get(folder))
            _merge(owner.usage if owner else unowned, usage)
    disk = shutil.disk_usage(store.root)
    return StorageReport(everything, list(owners.values()), unowned, disk.free, disk.total)


async def owner_usage(pool: asyncpg.Pool, store: MediaStore, owner_id: uuid.UUID) -> Usage:
    """What one owner stores: every file in the folders of the owner's items."""
    ids = [
        row["id"] for row in await pool.fetch("SELECT id FROM items WHERE owner_id = $1", owner_id)
    ]

    def walk() -> Usage:
        return count(stored for item_id in ids for stored in store.list(item_prefix(item_id)))

    return await asyncio.to_thread(walk)
