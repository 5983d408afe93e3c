"""The SSRF guard: which links may be fetched, checked at capture and again at connect time.

Only http/https, no credentials or control characters in the URL, and every
address the host resolves to must be public unless an operator allow-list rule
admits that address and port. Numeric spellings of IPv4 addresses
(``2130706433``, ``0x7f.1``) are caught because the check is made on what the
resolver returns, not on the text; IPv6 spellings that carry an IPv4 address
(mapped, compatible, NAT64, 6to4, Teredo) are judged by the address they carry.
Cloud metadata endpoints are refused whatever the allow-list says.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from prsnl_common.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

# Cloud metadata endpoints (AWS, AWS over IPv6, Alibaba, Azure). Some lie outside the
# private ranges (100.100.100.200, 168.63.129.16), and none may be opened by an allow-list.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
# IPv6 prefixes whose low 32 bits are an IPv4 address the packet ends up at (or is
# translated to): NAT64 (RFC 6052), IPv4-translated (RFC 2765) and IPv4-compatible.
_LOW_BITS_IPV4_PREFIXES = tuple(
    ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96")
)
# Python 3.11 calls these global, but they reach networks of the operator, not the internet:
# local-use NAT64 (RFC 8215, IPv4 at a prefix-dependent offset) and deprecated site-local.
_NON_PUBLIC_IPV6 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "fec0::/10"))
MAX_URL_LENGTH = 4096


@dataclass(frozen=True)
class AllowRule:
    """One operator allow-list entry: a network, and one port of it or (None) every port."""

    network: IPNetwork
    port: int | None = None

    def admits(self, address: IPAddress, port: int | None) -> bool:
        if address not in self.network:
            return False
        return self.port is None or self.port == port

    def __str__(self) -> str:
        if self.port is None:
            return str(self.network)
        if self.network.version == 6:
            return f"[{self.network}]:{self.port}"
        return f"{self.network}:{self.port}"


def parse_allow_rule(text: str) -> AllowRule:
    """Read ``127.0.0.1:8080``, ``10.0.0.0/8:443``, ``[::1]:8080``, ``::1`` or a plain CIDR.

    Raises ValueError naming the entry when it is none of these.
    """
    entry = text.strip()
    host, port = entry, None
    if entry.startswith("["):
        host, closed, rest = entry[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r}: write an IPv6 entry as [address]:port")
        port = _rule_port(entry, rest[1:]) if rest else None
    elif entry.count(":") == 1:
        # One colon: an IPv4 address or network with a port; IPv6 has at least two.
        host, port_text = entry.split(":")
        port = _rule_port(entry, port_text)
    try:
        network = ipaddress.ip_network(host, strict=False)
    except ValueError as exc:
        raise ValueError(f"{entry!r} is not an address or network ({exc})") from None
    return AllowRule(network, port)


def parse_allow_rules(text: str) -> tuple[AllowRule, ...]:
    """The rules of a comma-separated allow-list (empty entries are ignored)."""
    return tuple(parse_allow_rule(part) for part in text.split(",") if part.strip())


def _rule_port(entry: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    return int(text)


def carried_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 spelling carries (mapped, NAT64, 6to4, Teredo, ...).

    A connection to such an address reaches, or is translated to, the IPv4 one,
    so the guard must judge that too.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return ()
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo  # (server, client)
    if any(address in prefix for prefix in _LOW_BITS_IPV4_PREFIXES):
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    return ()


def is_metadata(address: IPAddress) -> bool:
    """True for a cloud metadata endpoint in any spelling the resolver can hand back."""
    return address in METADATA_ADDRESSES or any(
        v4 in METADATA_ADDRESSES for v4 in carried_ipv4(address)
    )


def is_blocked(address: IPAddress, port: int | None, rules: Iterable[AllowRule] = ()) -> bool:
    """The one judgement of the guard: may a connection go to ``address``:``port``?

    Metadata endpoints never; an allow-list rule admits the address (an
    IPv4-mapped one as its IPv4 address) with its port; otherwise the address,
    and every IPv4 address it carries, must be public.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if is_metadata(address):
        return True
    if any(rule.admits(address, port) for rule in rules):
        return False
    return _not_public(address) or any(_not_public(v4) for v4 in carried_ipv4(address))


def _not_public(address: IPAddress) -> bool:
    if not address.is_global or address.is_multicast:
        return True
    return isinstance(address, ipaddress.IPv6Address) and any(
        address in network for network in _NON_PUBLIC_IPV6
    )


def parse_http_url(url: str) -> SplitResult:
    """Check the shape of a capture URL; raise only PermanentError, with a stable code."""
    text = url.strip()
    if not text or len(text) > MAX_URL_LENGTH or any(c.isspace() for c in text):
        raise PermanentError("invalid_url", "The link is empty, too long or contains spaces.")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise PermanentError("invalid_url", "The link contains control characters.")
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
    _check_host_name(parts.hostname)
    return parts


def _check_host_name(host: str) -> None:
    # The resolver encodes names with IDNA and raises UnicodeError for an empty label or
    # one over 63 characters; refuse those here, as a bad link rather than a crash.
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise PermanentError("invalid_url", f"The host name is not valid ({exc}).") from None


def default_port(parts: SplitResult) -> int:
    """The port a connection to ``parts`` uses: the explicit one or the scheme's default."""
    return parts.port or (443 if parts.scheme.lower() == "https" else 80)


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The addresses of ``host``; an address literal is itself (no trip to a resolver thread)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass  # a name, or a form only getaddrinfo reads (127.1, 2130706433): resolved below
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise PermanentError("unresolvable_host", f"The host {host!r} does not resolve.") from exc
    return [str(info[4][0]) for info in infos]


async def check_url(
    url: str,
    rules: Iterable[AllowRule] = (),
    resolver: Resolver = system_resolver,
) -> SplitResult:
    """Validate ``url`` and the addresses its host resolves to (capture-time guard)."""
    parts = parse_http_url(url)
    host = parts.hostname or ""
    port = default_port(parts)
    allowed = tuple(rules)
    addresses = await resolver(host, port)
    if not addresses:
        raise PermanentError("unresolvable_host", f"The host {host!r} does not resolve.")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if is_blocked(address, port, allowed):
            raise PermanentError(
                "blocked_address",
                f"The host {host!r} resolves to {address} (port {port}), a private or "
                "reserved address the allow-list does not open.",
            )
    return parts


class BlockedAddressError(OSError):
    """Raised inside the download child when a connection would reach a blocked address."""

    MARKER = "prsnl-blocked-address"

    def __init__(self, host: str, address: str, port: object) -> None:
        super().__init__(
            f"{self.MARKER}: {host} resolves to {address} (port {port}), which is not allowed"
        )


def install_connect_guard(rules: Iterable[AllowRule]) -> None:
    """Make every later ``socket.getaddrinfo`` in this process refuse blocked (address, port)s.

    Used in the downloader's child process: every HTTP library there (yt-dlp's
    urllib and requests handlers alike) resolves through ``getaddrinfo`` before
    connecting, so redirects and HLS keys and segments on private hosts or
    other ports fail at connect time, after the capture-time check has long
    passed. The port judged is the one the resolver hands back, the one the
    socket will connect to.
    """
    allowed = tuple(rules)
    original = socket.getaddrinfo

    def guarded_getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        results = original(host, port, *args, **kwargs)
        for result in results:
            address = ipaddress.ip_address(str(result[4][0]).split("%", 1)[0])
            resolved_port = int(result[4][1])
            if is_blocked(address, resolved_port, allowed):
                raise BlockedAddressError(str(host), str(address), resolved_port)
        return results

    socket.getaddrinfo = guarded_getaddrinfo
