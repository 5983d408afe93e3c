"""The SSRF guard: which links may be fetched, checked at capture and again at connect time.

Only http/https, no credentials in the URL, and every address the host
resolves to must be public unless it falls in the operator allow-list. Numeric
spellings of addresses (``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``)
are caught because the check is made on what the resolver returns, not on the
text.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from urllib.parse import SplitResult, urlsplit

from prsnl_common.errors import PermanentError
from prsnl_common.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

# Cloud metadata endpoints that are not covered by the private/link-local ranges.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
MAX_URL_LENGTH = 4096


def parse_http_url(url: str) -> SplitResult:
    """Check the shape of a capture URL; raise a PermanentError with a stable code."""
    text = url.strip()
    if not text or len(text) > MAX_URL_LENGTH or any(c.isspace() for c in text):
        raise PermanentError("invalid_url", "The link is empty, too long or contains spaces.")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise PermanentError("invalid_url", f"The link is not a valid URL ({exc}).") from exc
    if not parts.scheme:
        raise PermanentError("invalid_url", "The link has no scheme; use http:// or https://.")
    if parts.scheme.lower() not in ("http", "https"):
        raise PermanentError(
            "unsupported_scheme", f"{parts.scheme}:// links are not accepted; use http or https."
        )
    if parts.username is not None or parts.password is not None:
        raise PermanentError("credentials_in_url", "Remove the user name and password.")
    if not parts.hostname:
        raise PermanentError("invalid_url", "The link has no host.")
    if port == 0:
        raise PermanentError("invalid_url", "Port 0 is not a valid port.")
    return parts


def is_blocked(address: IPAddress, allowlist: Iterable[IPNetwork] = ()) -> bool:
    """True when ``address`` is not public and no allow-list network contains it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowlist):
        return False
    return address in METADATA_ADDRESSES or not address.is_global or address.is_multicast


async def system_resolver(host: str, port: int) -> Sequence[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PermanentError("unresolvable_host", f"The host {host!r} does not resolve.") from exc
    return [str(info[4][0]) for info in infos]


async def check_url(
    url: str,
    allowlist: Iterable[IPNetwork] = (),
    resolver: Resolver = system_resolver,
) -> SplitResult:
    """Validate ``url`` and the addresses its host resolves to (capture-time guard)."""
    parts = parse_http_url(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    networks = tuple(allowlist)
    addresses = await resolver(host, port)
    if not addresses:
        raise PermanentError("unresolvable_host", f"The host {host!r} does not resolve.")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if is_blocked(address, networks):
            raise PermanentError(
                "blocked_address",
                f"The host {host!r} resolves to {address}, a private or reserved address.",
            )
    return parts


class BlockedAddressError(OSError):
    """Raised inside the download child when a connection would reach a blocked address."""

    MARKER = "prsnl-blocked-address"

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{self.MARKER}: {host} resolves to {address}, which is not allowed")


def install_connect_guard(allowlist: Iterable[IPNetwork]) -> None:
    """Make every later ``socket.getaddrinfo`` in this process refuse blocked addresses.

    Used in the downloader's child process: every HTTP library there (yt-dlp's
    urllib and requests handlers alike) resolves through ``getaddrinfo`` before
    connecting, so redirects and HLS segments on private hosts fail at connect
    time, after the capture-time check has long passed.
    """
    networks = tuple(allowlist)
    original = socket.getaddrinfo

    def guarded_getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        results = original(host, port, *args, **kwargs)
        for result in results:
            address = ipaddress.ip_address(str(result[4][0]).split("%", 1)[0])
            if is_blocked(address, networks):
                raise BlockedAddressError(str(host), str(address))
        return results

    socket.getaddrinfo = guarded_getaddrinfo
