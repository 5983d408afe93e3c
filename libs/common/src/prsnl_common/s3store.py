"""The media store on an S3-compatible object store (AWS S3, SeaweedFS, MinIO, R2...).

Chosen with ``PRSNL_MEDIA_STORE=s3://bucket/prefix``. Keys are the same as on
disk, under ``prefix``. obstore does the S3 work: a file is uploaded from its
path in 8 MiB parts (multipart above one part, two parts in flight), reads are
streamed or ranged, links are presigned; no call holds a whole file in memory.
An object appears only when its upload completes, so a reader never sees half
a file; an upload cut off leaves an incomplete multipart upload, which the
janitor aborts (:mod:`prsnl_janitor.uploads`).

Scratch space stays on local disk (``media_root/tmp``): ffmpeg and yt-dlp work
on files. :meth:`S3MediaStore.free_bytes` is that disk's free space.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from prsnl_common.errors import TransientError
from prsnl_common.store import ScratchSpace, StoredFile, key_parts

if TYPE_CHECKING:
    from obstore.store import ClientConfig

PART_BYTES = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 2
READ_BYTES = 1024 * 1024  # a local copy is written in pieces of this size
DELETE_BATCH = 1000  # S3's DeleteObjects limit


@contextlib.contextmanager
def answered(what: str, key: str) -> Iterator[None]:
    """obstore's errors as ours: a missing object is FileNotFoundError, the rest unavailable."""
    try:
        yield
    except NotFoundError as exc:
        raise FileNotFoundError(key) from exc
    except BaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TransientError("store_unavailable", f"object store: {what} {key}: {first}") from exc


class S3MediaStore(ScratchSpace):
    """Media store in one bucket (and prefix) of an S3-compatible object store."""

    def __init__(self, url: str, options: S3Options, scratch_root: Path) -> None:
        super().__init__(scratch_root)
        self.bucket, self.prefix = parse_store_url(url)
        self.url = url
        self.options = options
        self.client = S3Store(
            self.bucket,
            prefix=self.prefix or None,
            **options.config(),
            client_options=options.client_options(),
            retry_config={"max_retries": 3, "retry_timeout": dt.timedelta(seconds=20)},
        )

    def put_file(self, key: str, source: Path) -> StoredFile:
        """Upload ``source`` to ``key`` (multipart when large), then remove ``source``."""
        key_parts(key)
        with answered("upload", key):
            obstore.put(
                self.client, key, source, chunk_size=PART_BYTES, max_concurrency=PARTS_IN_FLIGHT
            )
        source.unlink(missing_ok=True)
        stored = self.stat(key)
        if stored is None:  # deleted between the upload and the look
            raise FileNotFoundError(key)
        return stored

    def stat(self, key: str) -> StoredFile | None:
        key_parts(key)
        try:
            with answered("stat", key):
                return _stored(obstore.head(self.client, key))
        except FileNotFoundError:
            return None

    async def head(self, key: str) -> StoredFile | None:
        key_parts(key)
        try:
            with answered("stat", key):
                return _stored(await obstore.head_async(self.client, key))
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def delete(self, key: str) -> bool:
        """Remove one object; True if it existed."""
        if self.stat(key) is None:
            return False
        with answered("delete", key):
            obstore.delete(self.client, key)
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix``; returns how many."""
        keys = [stored.key for stored in self.list(prefix)]
        for start in range(0, len(keys), DELETE_BATCH):
            with answered("delete", f"{prefix}/"):
                obstore.delete(self.client, keys[start : start + DELETE_BATCH])
        return len(keys)

    def list(self, prefix: str = "") -> Iterator[StoredFile]:
        """Every object under ``prefix`` (a whole path segment), in key order."""
        if prefix:
            key_parts(prefix)
        with answered("list", f"{prefix}/"):
            for batch in obstore.list(self.client, prefix=prefix or None, chunk_size=1000):
                yield from (_stored(meta) for meta in batch)

    def local_file(self, key: str, scratch: Path) -> Path:
        """A local copy of ``key`` in ``scratch``, streamed to disk."""
        target = scratch / key_parts(key)[-1]
        with answered("read", key), target.open("wb") as out:
            for chunk in obstore.get(self.client, key).stream(min_chunk_size=READ_BYTES):
                out.write(chunk)
        return target

    async def read_range(
        self, key: str, start: int, length: int, chunk_size: int
    ) -> AsyncIterator[bytes]:
        """``length`` bytes of ``key`` from ``start``, streamed from the store."""
        if length <= 0:
            return
        key_parts(key)
        with answered("read", key):
            result = await obstore.get_async(
                self.client, key, options={"range": (start, start + length)}
            )
            async for chunk in result.stream(min_chunk_size=chunk_size):
                yield bytes(chunk)

    def presigned_url(self, key: str, seconds: int, method: str = "GET") -> str | None:
        """A link to ``key`` the store itself honours (Range included) for ``seconds``."""
        key_parts(key)
        verb: Literal["GET", "HEAD"] = "HEAD" if method == "HEAD" else "GET"
        with answered("sign", key):
            return obstore.sign(self.client, verb, key, dt.timedelta(seconds=seconds))

    def describe(self) -> str:
        return f"{self.url} at {self.options.endpoint or 'AWS'}"


class S3Options:
    """Where the object store is and how to sign for it, from the common settings."""

    def __init__(
        self, endpoint: str, region: str, access_key_id: str, secret_access_key: str
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"region": self.region}
        if self.endpoint:
            config["endpoint"] = self.endpoint
        if self.access_key_id:
            config["access_key_id"] = self.access_key_id
            config["secret_access_key"] = self.secret_access_key
        return config

    def client_options(self) -> ClientConfig:
        return {
            "allow_http": self.endpoint.startswith("http://"),
            "connect_timeout": dt.timedelta(seconds=5),
            "timeout": dt.timedelta(seconds=120),
        }


def parse_store_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → (bucket, prefix without slashes at either end)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"expected s3://bucket[/prefix], got {url!r}")
    prefix = parts.path.strip("/")
    if prefix:
        key_parts(prefix)
    return parts.netloc, prefix


def _stored(meta: Any) -> StoredFile:
    return StoredFile(meta["path"], int(meta["size"]), meta["last_modified"].timestamp())
