"""The SSRF guard decides on resolved addresses and ports, with an operator allow-list."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prsnl_common.errors import PermanentError
from prsnl_common.netguard import (
    AllowRule,
    BlockedAddressError,
    carried_ipv4,
    check_url,
    install_connect_guard,
    is_blocked,
    parse_allow_rule,
    parse_allow_rules,
    parse_http_url,
)


def resolver_for(*addresses: str):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> Sequence[str]:
        return list(addresses)

    return resolve


def blocked(address: str, port: int = 443, allow: str = "") -> bool:
    return is_blocked(ipaddress.ip_address(address), port, parse_allow_rules(allow))


# Every spelling the guard must see through: (address, what it carries or is).
BLOCKED_SPELLINGS = [
    ("127.0.0.1", "loopback"),
    ("10.0.0.5", "private"),
    ("172.16.3.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata, link-local"),
    ("100.64.0.1", "CGNAT"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("100.100.100.200", "metadata (Alibaba)"),
    ("168.63.129.16", "metadata (Azure), otherwise global"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fc00::1", "unique local"),
    ("fd00:ec2::254", "metadata (AWS IPv6)"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
    ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of the metadata address"),
    ("64:ff9b::a00:5", "NAT64 of 10.0.0.5"),
    ("64:ff9b::a83f:8110", "NAT64 of Azure metadata"),
    ("64:ff9b:1::808:808", "local-use NAT64, refused whatever it carries"),
    ("2002:7f00:1::", "6to4 of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 of the metadata address"),
    ("2002:c0a8:101::", "6to4 of 192.168.1.1"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::169.254.169.254", "IPv4-compatible metadata"),
    ("::ffff:0:127.0.0.1", "IPv4-translated loopback"),
    ("::ffff:0:100.100.100.200", "IPv4-translated metadata"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:0:7f00:1:8000:63bf:3fff:fdd2", "Teredo with a loopback server"),
    ("fec0::1", "site-local"),
]
PUBLIC_SPELLINGS = [
    "93.184.215.14",
    "8.8.8.8",
    "2606:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize(("address", "why"), BLOCKED_SPELLINGS)
def test_non_public_spellings_are_blocked(address: str, why: str) -> None:
    assert blocked(address), why


@pytest.mark.parametrize("address", PUBLIC_SPELLINGS)
def test_public_addresses_pass(address: str) -> None:
    assert not blocked(address)


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("::ffff:127.0.0.1", ["127.0.0.1"]),
        ("64:ff9b::7f00:1", ["127.0.0.1"]),
        ("2002:7f00:1::", ["127.0.0.1"]),
        ("::127.0.0.1", ["127.0.0.1"]),
        ("::ffff:0:127.0.0.1", ["127.0.0.1"]),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", ["65.54.227.120", "192.0.2.45"]),
        ("2606:4700::1111", []),
        ("8.8.8.8", []),
    ],
)
def test_carried_ipv4(address: str, carried: list[str]) -> None:
    assert [str(a) for a in carried_ipv4(ipaddress.ip_address(address))] == carried


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
        "::ffff:169.254.169.254",
        "::169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::",
    ],
)
def test_metadata_overrides_the_allow_list(address: str) -> None:
    wide_open = "0.0.0.0/0,::/0,169.254.169.254,fd00:ec2::254"
    assert blocked(address, 80, wide_open)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("127.0.0.1", AllowRule(ipaddress.ip_network("127.0.0.1/32"))),
        ("127.0.0.1:8080", AllowRule(ipaddress.ip_network("127.0.0.1/32"), 8080)),
        ("10.0.0.0/8:443", AllowRule(ipaddress.ip_network("10.0.0.0/8"), 443)),
        ("10.1.2.3/8", AllowRule(ipaddress.ip_network("10.0.0.0/8"))),
        ("::1", AllowRule(ipaddress.ip_network("::1/128"))),
        ("[::1]", AllowRule(ipaddress.ip_network("::1/128"))),
        ("[::1]:8080", AllowRule(ipaddress.ip_network("::1/128"), 8080)),
        ("[fd00::/8]:443", AllowRule(ipaddress.ip_network("fd00::/8"), 443)),
        (" fd00::/8 ", AllowRule(ipaddress.ip_network("fd00::/8"))),
    ],
)
def test_allow_rule_spellings(text: str, rule: AllowRule) -> None:
    assert parse_allow_rule(text) == rule
    assert parse_allow_rule(str(rule)) == rule


@pytest.mark.parametrize(
    "text", ["127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", "[::1", "[::1]8080", "localhost"]
)
def test_bad_allow_rules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_allow_rule(text)


def test_a_rule_without_a_port_opens_every_port() -> None:
    assert not blocked("127.0.0.1", 5432, "127.0.0.1/32")
    assert not blocked("127.0.0.1", 8080, "127.0.0.1")
    assert blocked("127.0.0.2", 8080, "127.0.0.1/32")


def test_a_rule_with_a_port_opens_only_that_port() -> None:
    allow = "127.0.0.1:8080,10.0.0.0/8:443,[::1]:8080"
    assert not blocked("127.0.0.1", 8080, allow)
    for port in (5432, 5672, 9100, 80):
        assert blocked("127.0.0.1", port, allow)
    assert not blocked("10.9.8.7", 443, allow)
    assert blocked("10.9.8.7", 80, allow)
    assert not blocked("::1", 8080, allow)
    assert blocked("::1", 8081, allow)
    # An IPv4-mapped spelling is the IPv4 address, with the same ports.
    assert not blocked("::ffff:127.0.0.1", 8080, allow)
    assert blocked("::ffff:127.0.0.1", 5432, allow)


def test_an_ipv4_rule_does_not_open_translated_spellings() -> None:
    # NAT64 and 6to4 go through a gateway, not to this host: an IPv4 rule is not about them.
    assert blocked("64:ff9b::7f00:1", 8080, "127.0.0.1:8080")
    assert blocked("2002:7f00:1::", 8080, "127.0.0.1:8080")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("", "invalid_url"),
        ("just words", "invalid_url"),
        ("//no-scheme.example/x", "invalid_url"),
        ("javascript:alert(1)", "unsupported_scheme"),
        ("gopher://x/", "unsupported_scheme"),
        ("http://u:p@example.com/", "credentials_in_url"),
        ("http://u@example.com/", "credentials_in_url"),
        ("http:///path-only", "invalid_url"),
        ("http://example.com:99999/", "invalid_url"),
        ("http://example.com:0/", "invalid_url"),
        ("http://" + "a" * 5000, "invalid_url"),
        ("http://" + "ü" * 64 + ".example/", "invalid_url"),  # a label over 63 characters
        ("http://" + "a" * 64 + ".example/", "invalid_url"),
        ("http://a..example/", "invalid_url"),  # an empty label
        ("http://example.com/\x00.mp4", "invalid_url"),
        ("http://exa\x00mple.com/", "invalid_url"),
        ("http://example.com/\x1b[31m", "invalid_url"),
        ("http://example.com/\x7f", "invalid_url"),
        ("http://example.com/\x85x", "invalid_url"),
    ],
)
def test_malformed_urls(url: str, code: str) -> None:
    with pytest.raises(PermanentError) as error:
        parse_http_url(url)
    assert error.value.code == code


def test_an_idn_host_is_accepted() -> None:
    assert parse_http_url("https://bücher.example/v.mp4").hostname == "bücher.example"


_URL_ALPHABET = st.sampled_from(list("hH:/[]@%.:?#-_0123456789abcfüÿ\x00\x1f\x7f\u200b \x85"))
_URLISH = st.builds(
    lambda scheme, rest: scheme + rest,
    st.sampled_from(["", "http://", "https://", "HTTP://", "ftp://", "http:", "//"]),
    st.one_of(st.text(), st.text(_URL_ALPHABET), st.text(_URL_ALPHABET, min_size=60)),
)


@settings(max_examples=400, deadline=None)
@given(_URLISH)
async def test_the_guard_raises_nothing_but_permanent_errors(text: str) -> None:
    for resolved in (("93.184.215.14",), ("127.0.0.1",), ()):
        with contextlib.suppress(PermanentError):
            parse_http_url(text)
        with contextlib.suppress(PermanentError):
            await check_url(text, parse_allow_rules("127.0.0.1:8080"), resolver_for(*resolved))


async def test_a_host_resolving_to_a_private_address_is_refused() -> None:
    with pytest.raises(PermanentError) as error:
        await check_url(
            "https://innocent.example/v.mp4", resolver=resolver_for("93.184.215.14", "10.0.0.7")
        )
    assert error.value.code == "blocked_address"
    await check_url("https://fine.example/v.mp4", resolver=resolver_for("93.184.215.14"))


async def test_capture_judges_the_port_of_the_link() -> None:
    rules = parse_allow_rules("127.0.0.1:8080")
    await check_url("http://media.local:8080/v.mp4", rules, resolver_for("127.0.0.1"))
    for url in ("http://media.local/v.mp4", "http://media.local:5432/", "https://media.local/"):
        with pytest.raises(PermanentError) as error:
            await check_url(url, rules, resolver_for("127.0.0.1"))
        assert error.value.code == "blocked_address"


async def test_no_addresses_means_unresolvable() -> None:
    with pytest.raises(PermanentError) as error:
        await check_url("https://nothing.example/", resolver=resolver_for())
    assert error.value.code == "unresolvable_host"


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", socket.getaddrinfo)  # restored after the test
    install_connect_guard(parse_allow_rules("127.0.0.1:8080"))


@pytest.mark.usefixtures("guarded")
def test_connect_guard_refuses_blocked_addresses_and_ports() -> None:
    assert socket.getaddrinfo("127.0.0.1", 8080)
    for host, port in [
        ("127.0.0.1", 5432),
        ("127.0.0.1", 80),
        ("127.0.0.2", 8080),
        ("2130706434", 8080),  # decimal 127.0.0.2
        ("0251.0376.0251.0376", 80),  # octal 169.254.169.254
        ("0xa9fea9fe", 80),  # hex 169.254.169.254
        ("::ffff:127.0.0.1", 5432),
        ("64:ff9b::7f00:1", 8080),
    ]:
        with pytest.raises(BlockedAddressError, match=BlockedAddressError.MARKER):
            socket.getaddrinfo(host, port)


@pytest.mark.usefixtures("guarded")
def test_connect_guard_judges_the_port_a_service_name_resolves_to() -> None:
    with pytest.raises(BlockedAddressError, match="port 80"):
        socket.getaddrinfo("127.0.0.1", "http")


def test_the_setting_is_parsed_into_rules_and_fails_fast_on_a_bad_entry() -> None:
    from pydantic import ValidationError

    from prsnl_common.settings import CommonSettings

    settings = CommonSettings(ssrf_allowlist="127.0.0.1:8765, [::1]:8080")
    assert settings.allow_rules == parse_allow_rules("127.0.0.1:8765,[::1]:8080")
    with pytest.raises(ValidationError, match="port"):
        CommonSettings(ssrf_allowlist="127.0.0.1:http")
