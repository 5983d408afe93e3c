"""AES-128 HLS is downloaded and decrypted inside the guarded child, never by ffmpeg.

Without pycryptodomex yt-dlp would hand such a stream to ffmpeg, which resolves
and connects by itself, around the connect-time guard. Each case runs in a
child with pycryptodomex and in one where ``Cryptodome`` cannot be imported.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from prsnl_common.errors import PermanentError
from prsnl_downloader.pool import DownloadPool
from prsnl_downloader.protocol import DownloadRequest
from tests.integration.downloader.conftest import LOOPBACK_ONLY
from tests.support.clips import make_hls, probe
from tests.support.media_server import MediaServer

pytestmark = pytest.mark.integration

AES_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
SEGMENTS = ("segment_000.ts", "segment_001.ts")
DURATION = 2.0


@pytest.fixture(scope="module")
def aes_stream(media_root: Path) -> Path:
    """An encrypted 2 s stream of 1 s segments in ``media_root/aes``, served under /hls/aes/."""
    playlist = make_hls(
        media_root / "aes",
        duration=DURATION,
        segment_seconds=1,
        width=160,
        height=120,
        aes_key=AES_KEY,
    )
    assert "METHOD=AES-128" in playlist.read_text()
    return playlist.parent


@pytest.fixture(scope="module", params=["with-pycryptodomex", "without-pycryptodomex"])
async def aes_pool(
    request: pytest.FixtureRequest, pool: DownloadPool
) -> AsyncIterator[tuple[DownloadPool, bool]]:
    """A pool whose children have pycryptodomex, or one where it cannot be imported."""
    if request.param == "with-pycryptodomex":
        yield pool, True
        return
    async with DownloadPool(
        1,
        allowlist=LOOPBACK_ONLY,
        job_timeout=60,
        stall_seconds=20,
        unavailable_modules=("Cryptodome", "Crypto"),
    ) as without:
        yield without, False


def write_playlist(directory: Path, name: str, key_base: str, segment_base: str) -> str:
    """A copy of the stream's playlist naming its key and segments by absolute URL."""

    def absolute(line: str) -> str:
        if line.startswith("#EXT-X-KEY"):
            return line.replace('URI="key.bin"', f'URI="{key_base}/key.bin"')
        return f"{segment_base}/{line}" if line in SEGMENTS else line

    lines = [absolute(line) for line in (directory / "index.m3u8").read_text().splitlines()]
    (directory / name).write_text("\n".join(lines) + "\n")
    return f"/hls/aes/{name}"


def job(url: str, workdir: Path) -> DownloadRequest:
    return DownloadRequest(url=url, workdir=workdir, max_bytes=50 * 1024 * 1024, max_height=240)


def decodes_cleanly(path: Path) -> bool:
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and not result.stderr.strip()


async def test_an_aes_stream_on_an_allowed_host_is_downloaded_and_decrypted(
    aes_pool: tuple[DownloadPool, bool],
    aes_stream: Path,
    media_server: MediaServer,
    canary: MediaServer,
    workdir: Path,
) -> None:
    pool, has_crypto = aes_pool
    base = media_server.url("/hls/aes")
    path = write_playlist(aes_stream, "local.m3u8", base, base)
    media_server.reset_counters()
    result = await pool.run(job(media_server.url(path), workdir))
    described = probe(result.path)
    codecs = {stream["codec_type"]: stream["codec_name"] for stream in described["streams"]}
    assert codecs == {"video": "h264", "audio": "aac"}
    assert float(described["format"]["duration"]) == pytest.approx(DURATION, abs=0.3)
    assert decodes_cleanly(result.path), "the segments were not decrypted correctly"
    fetched = {request.path for request in media_server.requests}
    assert {"/hls/aes/key.bin", *(f"/hls/aes/{s}" for s in SEGMENTS)} <= fetched
    # yt-dlp says so when it decrypts without pycryptodomex: proof the child lacked it.
    said_native = any("performed natively" in warning for warning in result.warnings)
    assert said_native is not has_crypto, result.warnings


@pytest.mark.parametrize(
    ("name", "key_on_canary", "segments_on_canary"),
    [("key-forbidden", True, False), ("segments-forbidden", False, True), ("all", True, True)],
)
async def test_an_aes_stream_reaching_a_blocked_address_fails_without_connecting(
    aes_pool: tuple[DownloadPool, bool],
    aes_stream: Path,
    media_server: MediaServer,
    canary: MediaServer,
    workdir: Path,
    name: str,
    key_on_canary: bool,
    segments_on_canary: bool,
) -> None:
    pool, _ = aes_pool
    allowed, forbidden = media_server.url("/hls/aes"), canary.url("/hls/aes")
    path = write_playlist(
        aes_stream,
        f"{name}.m3u8",
        forbidden if key_on_canary else allowed,
        forbidden if segments_on_canary else allowed,
    )
    with pytest.raises(PermanentError) as failure:
        await pool.run(job(media_server.url(path), workdir))
    assert failure.value.code == "blocked_address", failure.value
    assert "127.0.0.2" in failure.value.message
    assert sorted(p.name for p in workdir.rglob("*")) == []
    # The canary fixture fails the test if anything connected to 127.0.0.2.
