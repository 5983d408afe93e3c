"""The SSRF guard decides on resolved addresses, with an operator allow-list."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import pytest

from prsnl_common.errors import PermanentError
from prsnl_common.netguard import (
    BlockedAddressError,
    check_url,
    install_connect_guard,
    is_blocked,
    parse_http_url,
)


def resolver_for(*addresses: str):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> Sequence[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
        "100.100.100.200",
    ],
)
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert is_blocked(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert not is_blocked(ipaddress.ip_address(address))


def test_allow_list_admits_only_its_networks() -> None:
    allow = [ipaddress.ip_network("127.0.0.1/32")]
    assert not is_blocked(ipaddress.ip_address("127.0.0.1"), allow)
    assert is_blocked(ipaddress.ip_address("127.0.0.2"), allow)
    assert is_blocked(ipaddress.ip_address("169.254.169.254"), allow)


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
    ],
)
def test_malformed_urls(url: str, code: str) -> None:
    with pytest.raises(PermanentError) as error:
        parse_http_url(url)
    assert error.value.code == code


async def test_a_host_resolving_to_a_private_address_is_refused() -> None:
    with pytest.raises(PermanentError) as error:
        await check_url(
            "https://innocent.example/v.mp4", resolver=resolver_for("93.184.215.14", "10.0.0.7")
        )
    assert error.value.code == "blocked_address"
    await check_url("https://fine.example/v.mp4", resolver=resolver_for("93.184.215.14"))


async def test_no_addresses_means_unresolvable() -> None:
    with pytest.raises(PermanentError) as error:
        await check_url("https://nothing.example/", resolver=resolver_for())
    assert error.value.code == "unresolvable_host"


def test_connect_guard_refuses_blocked_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", socket.getaddrinfo)  # restored after the test
    install_connect_guard([ipaddress.ip_network("127.0.0.1/32")])
    assert socket.getaddrinfo("127.0.0.1", 80)
    with pytest.raises(BlockedAddressError, match=BlockedAddressError.MARKER):
        socket.getaddrinfo("127.0.0.2", 80)
    with pytest.raises(BlockedAddressError):
        socket.getaddrinfo("2130706434", 80)  # decimal 127.0.0.2
