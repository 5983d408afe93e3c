"""Abandoned multipart uploads on the object store, aborted once older than the scratch TTL.

An upload cut off (the store stopped mid-upload, a worker killed) leaves its
parts in the bucket, invisible to listings and reads but stored and billed;
the job's retry uploads again under a new upload id. obstore offers no call to
list or abort uploads, so this sweep uses botocore, the reference S3 client,
only here (the services' hot paths keep obstore's lower CPU and memory).

An upload is not aborted when an object of exactly its parts' size was written
at its key after it began: on SeaweedFS 4.47 and 4.48 a finished upload can
stay listed, and aborting it deletes the chunks the finished object still uses
(seaweedfs/seaweedfs#11382). A cut-off upload holds fewer bytes than the file
its retry stored, so it is aborted.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prsnl_common.errors import TransientError
from prsnl_common.s3store import S3MediaStore
from prsnl_common.store import MediaStore
from prsnl_janitor.orphans import Finding

logger = logging.getLogger(__name__)
REASON = "upload-abandoned"


@dataclass(frozen=True)
class Upload:
    key: str  # the store's key (under its prefix)
    upload_id: str
    initiated: float  # epoch seconds


@functools.cache
def client_for(store: S3MediaStore) -> Any:
    """The botocore S3 client for the store's endpoint, region and keys (path-style)."""
    import botocore.session
    from botocore.config import Config

    options = store.options
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=options.endpoint or None,
        region_name=options.region,
        aws_access_key_id=options.access_key_id or None,
        aws_secret_access_key=options.secret_access_key or None,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 2},
        ),
    )


def uploads(store: S3MediaStore, client: Any) -> Iterator[Upload]:
    """Every multipart upload in progress under the store's prefix."""
    prefix = f"{store.prefix}/" if store.prefix else ""
    paginator = client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=store.bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            started: dt.datetime = upload["Initiated"]
            yield Upload(upload["Key"][len(prefix) :], upload["UploadId"], started.timestamp())


def sweep_uploads(
    store: MediaStore, ttl_seconds: float, now: float | None = None, *, dry_run: bool = False
) -> list[Finding]:
    """Abort uploads older than ``ttl_seconds`` that nothing completed after (or list them).

    Nothing to do on a directory: its partial files are scratch and ``.part`` names.
    """
    if not isinstance(store, S3MediaStore):
        return []
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _sweep(store, client_for(store), now or time.time(), ttl_seconds, dry_run)
    except (BotoCoreError, ClientError) as exc:
        raise TransientError("store_unavailable", f"object store: uploads: {exc}") from exc


def _sweep(
    store: S3MediaStore, client: Any, now: float, ttl_seconds: float, dry_run: bool
) -> list[Finding]:
    findings = []
    for upload in uploads(store, client):
        if now - upload.initiated <= ttl_seconds:
            continue
        stored = store.stat(upload.key)
        if (
            stored is not None
            and stored.mtime >= upload.initiated
            and _parts_bytes(store, client, upload) == stored.size
        ):
            # Written when or after the upload began, with exactly its parts' bytes: maybe
            # this very upload, finished. A cut-off one holds fewer bytes than its retry.
            detail = "an object of its parts' size was written at its key after it began"
            findings.append(Finding("kept", upload.key, 0, REASON, detail))
            continue
        if not dry_run:
            client.abort_multipart_upload(
                Bucket=store.bucket, Key=_full_key(store, upload.key), UploadId=upload.upload_id
            )
            logger.info("aborted abandoned upload %s of %s", upload.upload_id, upload.key)
        action = "would-remove" if dry_run else "removed"
        findings.append(Finding(action, upload.key, 0, REASON, f"upload {upload.upload_id}"))
    return findings


def _parts_bytes(store: S3MediaStore, client: Any, upload: Upload) -> int:
    paginator = client.get_paginator("list_parts")
    pages = paginator.paginate(
        Bucket=store.bucket, Key=_full_key(store, upload.key), UploadId=upload.upload_id
    )
    return sum(part["Size"] for page in pages for part in page.get("Parts", []))


def _full_key(store: S3MediaStore, key: str) -> str:
    return f"{store.prefix}/{key}" if store.prefix else key
