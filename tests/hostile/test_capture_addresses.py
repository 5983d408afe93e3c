"""Group 1: every spelling of a forbidden address is refused at capture with
blocked_address, under an allow-list that opens one port of 127.0.0.1 only."""

from __future__ import annotations

import uuid

import pytest

from prsnl_common.netguard import check_url
from prsnl_common.settings import CommonSettings
from tests.hostile.conftest import AnyClient, LeftBehind
from tests.support.media_server import MediaServer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("canary")]

# (URL template, code); {port} is the one allowed port, {other} another port of 127.0.0.1.
ADDRESSES = [
    ("http://127.0.0.2/v.mp4", "blocked_address"),
    ("http://127.0.0.2:{port}/files/clip.mp4", "blocked_address"),  # the allowed port, other host
    ("http://2130706434:{port}/files/clip.mp4", "blocked_address"),  # decimal 127.0.0.2
    ("http://0x7f000002:{port}/files/clip.mp4", "blocked_address"),  # hex
    ("http://0177.0.0.2:{port}/files/clip.mp4", "blocked_address"),  # octal
    ("http://0x7f.0.0.2:{port}/files/clip.mp4", "blocked_address"),  # hex-dotted
    ("http://127.2:{port}/files/clip.mp4", "blocked_address"),  # short form
    ("http://[::ffff:127.0.0.2]:{port}/files/clip.mp4", "blocked_address"),  # v4-mapped
    ("http://[::ffff:7f00:2]:{port}/files/clip.mp4", "blocked_address"),  # mapped, in hex
    ("http://[::127.0.0.2]:{port}/files/clip.mp4", "blocked_address"),  # v4-compatible
    ("http://[64:ff9b::7f00:2]:{port}/files/clip.mp4", "blocked_address"),  # NAT64
    ("http://[2002:7f00:2::]:{port}/files/clip.mp4", "blocked_address"),  # 6to4
    ("http://[2001:0:7f00:2::80ff:fffd]:{port}/files/clip.mp4", "blocked_address"),  # Teredo
    ("http://169.254.169.254/latest/meta-data/", "blocked_address"),
    ("http://2852039166/latest/meta-data/", "blocked_address"),  # decimal 169.254.169.254
    ("http://0xa9fea9fe/latest/meta-data/", "blocked_address"),  # hex
    ("http://0251.0376.0251.0376/latest/meta-data/", "blocked_address"),  # octal
    ("http://[::ffff:169.254.169.254]/latest/meta-data/", "blocked_address"),
    ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "blocked_address"),  # NAT64 metadata
    ("http://[fd00:ec2::254]/latest/meta-data/", "blocked_address"),
    ("http://100.100.100.200/latest/meta-data/", "blocked_address"),  # Alibaba
    ("http://168.63.129.16/metadata/instance", "blocked_address"),  # Azure
    ("http://0.0.0.0:{port}/files/clip.mp4", "blocked_address"),
    ("http://0:{port}/files/clip.mp4", "blocked_address"),  # 0.0.0.0 as one number
    ("http://[::]:{port}/files/clip.mp4", "blocked_address"),
    ("http://[::1]:{port}/files/clip.mp4", "blocked_address"),
    ("http://localhost:{other}/files/clip.mp4", "blocked_address"),
    ("http://127.0.0.1:{other}/files/clip.mp4", "blocked_address"),  # not the allowed port
    ("http://127.0.0.1/files/clip.mp4", "blocked_address"),  # default port 80
    ("https://127.0.0.1/files/clip.mp4", "blocked_address"),  # default port 443
    ("http://[::ffff:127.0.0.1]:{other}/files/clip.mp4", "blocked_address"),
    ("http://10.0.0.1/v.mp4", "blocked_address"),
    ("http://172.16.0.1/v.mp4", "blocked_address"),
    ("http://192.168.1.1/v.mp4", "blocked_address"),
    ("http://100.64.0.1/v.mp4", "blocked_address"),  # carrier-grade NAT
    ("http://[fe80::1]/v.mp4", "blocked_address"),  # link-local
    ("http://[fc00::1]/v.mp4", "blocked_address"),  # unique local
    ("http://224.0.0.1/v.mp4", "blocked_address"),  # multicast
    ("http://255.255.255.255/v.mp4", "blocked_address"),  # broadcast
    ("http://[fe80::1%lo]/v.mp4", "blocked_address"),  # with a zone id
]


def _url(template: str, allowed_media: MediaServer) -> str:
    # An unused port next to the allowed one: nothing listens there, and nothing may try.
    other = allowed_media.port + 1 if allowed_media.port < 65535 else allowed_media.port - 1
    return template.format(port=allowed_media.port, other=other)


@pytest.mark.parametrize(("template", "code"), ADDRESSES)
async def test_a_forbidden_address_is_refused_at_capture(
    client: AnyClient,
    owner: tuple[uuid.UUID, dict[str, str]],
    allowed_media: MediaServer,
    nothing_left_behind: LeftBehind,
    template: str,
    code: str,
) -> None:
    allowed_media.reset_counters()
    response = await client.post(
        "/api/v1/captures", json={"url": _url(template, allowed_media)}, headers=owner[1]
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text
    assert not allowed_media.connections, "the capture check must not fetch anything"
    await nothing_left_behind.assert_nothing_left()


async def test_the_allowed_port_itself_passes_the_same_check(
    hostile_env: CommonSettings, allowed_media: MediaServer, canary: MediaServer
) -> None:
    """Control: the refusals above are the guard's doing, not a broken allow-list."""
    parts = await check_url(
        f"http://127.0.0.1:{allowed_media.port}/files/clip.mp4", hostile_env.allow_rules
    )
    assert parts.port == allowed_media.port
