"""Signed, expiring media links (A9): a video or thumbnail that opens without a header.

A link names one stored file (its storage key), the owner, the API key it was
handed to (by the key's id) and an expiry; the signature is an HMAC-SHA256 of
those with the gateway's link secret. So a ``<video src>``, VLC, a Telegram
message or a CDN can fetch it, a signature covers exactly one file, a link
stops working when its key is revoked (the gateway checks the key) or its item
is deleted or re-transcoded (the file is no longer the item's), and every
replica that shares the secret accepts it.

Expiries are rounded up to a step, so answers within one step hand out the
same URLs and browsers can cache thumbnails across page loads.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any


class LinkRefused(Exception):
    """A signed link that cannot be honoured; ``code`` is the problem code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class LinkGrant:
    """What a signed link's query carries: ``exp``, ``kid`` and ``sig``."""

    expires: int
    key_id: str
    signature: str

    @classmethod
    def from_query(cls, query: dict[str, Any]) -> LinkGrant | None:
        """The grant of a request's query; None when it carries none (Bearer access)."""
        if "sig" not in query:
            return None
        exp, kid, sig = (str(query.get(name, "")) for name in ("exp", "kid", "sig"))
        if not (exp.isdigit() and len(exp) <= 12 and _is_hex(kid) and 16 <= len(sig) <= 64):
            raise LinkRefused("link_invalid", "The link's signature is malformed.")
        return cls(int(exp), kid.lower(), sig)

    def query(self) -> str:
        return f"exp={self.expires}&kid={self.key_id}&sig={self.signature}"


@dataclass(frozen=True)
class LinkSigner:
    secret: bytes
    lifetime: int  # seconds a link stays valid (at least; see the rounding step)

    @property
    def step(self) -> int:
        return max(1, min(3600, self.lifetime // 8))

    def sign(
        self, storage_key: str, owner_id: uuid.UUID, key_id: str, now: float | None = None
    ) -> LinkGrant:
        return self.grant(storage_key, owner_id, key_id, self.expires(now))

    def grant(self, storage_key: str, owner_id: uuid.UUID, key_id: str, expires: int) -> LinkGrant:
        """The grant of a link ending at ``expires``, an expiry :meth:`expires` gave."""
        return LinkGrant(expires, key_id, self._mac(storage_key, owner_id, key_id, expires))

    def expires(self, now: float | None = None) -> int:
        """The expiry of a link signed at ``now``: rounded up, so a page of links shares one."""
        moment = time.time() if now is None else now
        return math.ceil((moment + self.lifetime) / self.step) * self.step

    def verify(
        self,
        grant: LinkGrant,
        storage_key: str,
        owner_id: uuid.UUID,
        now: float | None = None,
    ) -> None:
        """Raise :class:`LinkRefused` unless ``grant`` signs this file of this owner, unexpired."""
        expected = self._mac(storage_key, owner_id, grant.key_id, grant.expires)
        if not hmac.compare_digest(expected, grant.signature):
            raise LinkRefused("link_invalid", "The link's signature does not match this file.")
        if grant.expires < (time.time() if now is None else now):
            raise LinkRefused("link_expired", "The link has expired; ask the API for a new one.")

    def _mac(self, storage_key: str, owner_id: uuid.UUID, key_id: str, expires: int) -> str:
        return _signature(self.secret, storage_key, owner_id, key_id, expires)


@functools.lru_cache(maxsize=4096)
def _signature(
    secret: bytes, storage_key: str, owner_id: uuid.UUID, key_id: str, expires: int
) -> str:
    """The HMAC of one link, kept: expiries are rounded to a step, so every read of an item
    within a step signs the same files with the same expiry again (8 % of an item read)."""
    message = f"{storage_key}\n{owner_id}\n{key_id}\n{expires}".encode()
    digest = hmac.digest(secret, message, hashlib.sha256)  # the one-shot C path
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def _is_hex(text: str) -> bool:
    return 8 <= len(text) <= 64 and all(c in "0123456789abcdefABCDEF" for c in text)


@dataclass(frozen=True)
class MediaLinks:
    """Builds the absolute links of one answer: signed for the caller's key, one expiry."""

    base: str
    signer: LinkSigner
    owner_id: uuid.UUID
    key_id: str
    now: float

    def item(self, item_id: uuid.UUID) -> str:
        return f"{self.base}/api/v1/items/{item_id}"

    def file(self, item_id: uuid.UUID, name: str, storage_key: str) -> str:
        """The link of ``…/items/<id>/<name>`` serving ``storage_key``, signed."""
        grant = self.signer.grant(storage_key, self.owner_id, self.key_id, self.expires_at)
        return f"{self.item(item_id)}/{name}?{grant.query()}"

    @functools.cached_property
    def expires_at(self) -> int:
        """The one expiry of this answer's links."""
        return self.signer.expires(self.now)
