"""The real DownloadPool (yt-dlp in child processes) against the loopback media server."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from prsnl_common.errors import PermanentError, PipelineError, TransientError
from prsnl_common.netguard import AllowRule
from prsnl_downloader.pool import DownloadPool
from prsnl_downloader.protocol import DownloadProgress, DownloadRequest
from tests.support.clips import probe
from tests.support.media_server import MediaServer

pytestmark = pytest.mark.integration

CAP = 50 * 1024 * 1024


def job(url: str, workdir: Path, **changes: object) -> DownloadRequest:
    fields: dict[str, object] = {
        "url": url,
        "workdir": workdir,
        "max_bytes": CAP,
        "max_height": 240,
    }
    fields.update(changes)
    return DownloadRequest(**fields)  # type: ignore[arg-type]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.rglob("*"))


def fetch_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def expect_failure(
    pool: DownloadPool,
    request: DownloadRequest,
    kind: type[PipelineError],
    code: str,
    on_progress: Callable[[DownloadProgress], None] | None = None,
) -> PipelineError:
    with pytest.raises(kind) as failure:
        await pool.run(request, on_progress)
    assert failure.value.code == code, failure.value
    assert files_in(request.workdir) == [], "a failed job must leave no file behind"
    return failure.value


async def test_direct_mp4_is_downloaded_byte_for_byte_with_its_info(
    pool: DownloadPool, media_server: MediaServer, media_root: Path, workdir: Path
) -> None:
    url = media_server.url("/files/clip.mp4")
    result = await pool.run(job(url, workdir))
    assert result.path == workdir / "original.mp4"
    assert result.extension == "mp4"
    assert result.size == (media_root / "clip.mp4").stat().st_size
    assert sha256(result.path) == sha256(media_root / "clip.mp4")
    assert result.info.title == "clip"
    assert result.info.platform_video_id == "clip"
    assert result.info.extractor == "Generic"
    assert result.info.webpage_url == url
    assert files_in(workdir) == ["original.mp4"]


async def test_chunked_response_without_content_length(
    pool: DownloadPool, media_server: MediaServer, media_root: Path, workdir: Path
) -> None:
    result = await pool.run(job(media_server.url("/chunked/clip.mp4"), workdir))
    assert sha256(result.path) == sha256(media_root / "clip.mp4")


async def test_redirect_chain_is_followed(
    pool: DownloadPool, media_server: MediaServer, media_root: Path, workdir: Path
) -> None:
    media_server.reset_counters()
    result = await pool.run(job(media_server.url("/redirect/3/clip.mp4"), workdir))
    assert sha256(result.path) == sha256(media_root / "clip.mp4")
    paths = [request.path for request in media_server.requests]
    assert {"/redirect/3/clip.mp4", "/redirect/2/clip.mp4", "/redirect/1/clip.mp4"} <= set(paths)
    assert "/files/clip.mp4" in paths


async def test_hls_stream_becomes_one_playable_file(
    pool: DownloadPool, media_server: MediaServer, workdir: Path, hls_path: str
) -> None:
    result = await pool.run(job(media_server.url(hls_path), workdir))
    assert files_in(workdir) == [result.path.name]
    described = probe(result.path)
    codecs = {stream["codec_type"]: stream["codec_name"] for stream in described["streams"]}
    assert codecs == {"video": "h264", "audio": "aac"}
    assert float(described["format"]["duration"]) == pytest.approx(3.0, abs=0.3)
    assert result.info.duration == pytest.approx(3.0, abs=0.3)


async def test_progress_reports_increasing_bytes(
    pool: DownloadPool, media_server: MediaServer, media_root: Path, workdir: Path
) -> None:
    size = (media_root / "clip.mp4").stat().st_size
    reports: list[DownloadProgress] = []
    # ~0.5 s at 320 KiB/s, reported every 50 ms.
    request = job(media_server.url("/slow/clip.mp4?rate=327680"), workdir, progress_interval=0.05)
    await pool.run(request, reports.append)
    downloaded = [report.downloaded_bytes for report in reports]
    assert len(downloaded) >= 3, downloaded
    assert downloaded == sorted(downloaded)
    assert downloaded[-1] == size
    assert all(report.total_bytes == size for report in reports)


async def test_404_is_permanent_source_not_found(
    pool: DownloadPool, media_server: MediaServer, workdir: Path
) -> None:
    await expect_failure(
        pool,
        job(media_server.url("/files/missing.mp4"), workdir),
        PermanentError,
        "source_not_found",
    )


async def test_503_is_transient_and_passes_on_a_later_attempt(
    pool: DownloadPool, media_server: MediaServer, workdir: Path
) -> None:
    await expect_failure(
        pool, job(media_server.url("/status/503"), workdir), TransientError, "source_unavailable"
    )
    # The consumer retries transient failures; a flaky source answers the second time.
    flaky = job(media_server.url("/flaky/pool-503/clip.mp4?fail=1"), workdir)
    await expect_failure(pool, flaky, TransientError, "source_unavailable")
    result = await pool.run(flaky)
    assert result.size > 0


async def test_html_page_without_video_is_unsupported(
    pool: DownloadPool, media_server: MediaServer, workdir: Path
) -> None:
    await expect_failure(
        pool,
        job(media_server.url("/page/no-video.html"), workdir),
        PermanentError,
        "unsupported_url",
    )


@pytest.mark.parametrize("route", ["content-length", "chunked", "hls"])
async def test_over_the_byte_cap_is_too_large_and_leaves_nothing(
    pool: DownloadPool, media_server: MediaServer, workdir: Path, hls_path: str, route: str
) -> None:
    path = {"content-length": "/files/clip.mp4", "chunked": "/chunked/clip.mp4", "hls": hls_path}[
        route
    ]
    # The clip is ~157 KiB and the stream ~370 KiB; 100 KB fits neither.
    error = await expect_failure(
        pool, job(media_server.url(path), workdir, max_bytes=100_000), PermanentError, "too_large"
    )
    assert "size limit" in error.message


async def test_truncated_body_is_a_transient_network_error(
    pool: DownloadPool, media_server: MediaServer, workdir: Path
) -> None:
    # Content-Length promises the whole clip, half arrives, the connection closes: yt-dlp
    # retries, then gives up with "N bytes read, M more expected". A connection cut short
    # is network_error (retried with back-off), not a property of the video.
    error = await expect_failure(
        pool,
        job(media_server.url("/truncated-length/clip.mp4"), workdir),
        TransientError,
        "network_error",
    )
    assert "more expected" in error.message


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "/redirect-to?url=file:///etc/passwd"],
    ids=["direct", "redirected"],
)
async def test_file_urls_are_refused(
    pool: DownloadPool, media_server: MediaServer, workdir: Path, url: str
) -> None:
    if url.startswith("/"):
        url = media_server.url(url)
    await expect_failure(pool, job(url, workdir), PermanentError, "unsupported_scheme")


@pytest.fixture(scope="module")
def second_loopback_server(media_root: Path) -> Iterator[MediaServer]:
    """The same media on 127.0.0.2: loopback, reachable, but outside the allow-list."""
    with MediaServer(media_root, host="127.0.0.2") as server:
        yield server


async def test_redirect_to_an_address_outside_the_allow_list_is_blocked(
    pool: DownloadPool,
    media_server: MediaServer,
    second_loopback_server: MediaServer,
    workdir: Path,
) -> None:
    target = second_loopback_server.url("/files/clip.mp4")
    assert await asyncio.to_thread(fetch_status, target) == 200  # reachable without the guard
    second_loopback_server.reset_counters()
    error = await expect_failure(
        pool,
        job(media_server.url(f"/redirect-to?url={target}"), workdir),
        PermanentError,
        "blocked_address",
    )
    assert "127.0.0.2" in error.message
    # The guard refused before connecting: the server on 127.0.0.2 saw nothing.
    assert second_loopback_server.requests == []


async def test_an_empty_allow_list_blocks_loopback(
    media_server: MediaServer, workdir: Path
) -> None:
    media_server.reset_counters()
    async with DownloadPool(1, allowlist=()) as strict:
        await expect_failure(
            strict,
            job(media_server.url("/files/clip.mp4"), workdir),
            PermanentError,
            "blocked_address",
        )
    assert media_server.requests == []


@pytest.fixture(scope="module")
async def single_pool(loopback_only: list[AllowRule]) -> AsyncIterator[DownloadPool]:
    """One child with short limits: whatever kills the child, the next job needs a new one."""
    async with DownloadPool(1, allowlist=loopback_only, job_timeout=6, stall_seconds=2) as limited:
        yield limited


async def test_hard_time_limit_kills_and_replaces_the_child(
    single_pool: DownloadPool, media_server: MediaServer, workdir: Path
) -> None:
    [first_pid] = single_pool.pids
    started = time.monotonic()
    # ~157 KiB at 20 KiB/s: eight seconds with new bytes every 0.8 s, reported every 0.2 s,
    # so the 2 s stall watchdog stays quiet and only the 6 s limit can end it.
    await expect_failure(
        single_pool,
        job(media_server.url("/slow/clip.mp4?rate=20480"), workdir, progress_interval=0.2),
        TransientError,
        "download_timeout",
    )
    assert 6 <= time.monotonic() - started < 8
    assert not process_exists(first_pid)
    # The next job in the same pool runs in a fresh child and succeeds within the limit.
    result = await single_pool.run(job(media_server.url("/files/clip.mp4"), workdir))
    assert result.size > 0
    assert single_pool.pids != [first_pid]


async def test_cancelling_a_job_kills_its_child(
    single_pool: DownloadPool, media_server: MediaServer, workdir: Path
) -> None:
    downloading = asyncio.Event()
    running = asyncio.create_task(
        single_pool.run(
            job(media_server.url("/slow/clip.mp4?rate=40960"), workdir, progress_interval=0.05),
            lambda progress: downloading.set(),
        )
    )
    await asyncio.wait_for(downloading.wait(), 10)
    [busy_pid] = single_pool.pids
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert not process_exists(busy_pid)
    assert files_in(workdir) == []
    result = await single_pool.run(job(media_server.url("/files/clip.mp4"), workdir))
    assert result.size > 0


async def test_the_parent_guards_the_cap_on_disk_too(
    single_pool: DownloadPool, media_server: MediaServer, workdir: Path
) -> None:
    # Bytes the progress hook never sees (here: written behind yt-dlp's back, as an
    # external tool might) still count: the parent measures the job's files on disk.
    def sneak_in_a_large_file(progress: DownloadProgress) -> None:
        (workdir / "original.f999.mp4").write_bytes(b"\0" * 2_000_000)

    started = time.monotonic()
    error = await expect_failure(
        single_pool,
        job(
            media_server.url("/slow/clip.mp4?rate=30720"),
            workdir,
            max_bytes=1_000_000,
            progress_interval=0.2,
        ),
        PermanentError,
        "too_large",
        sneak_in_a_large_file,
    )
    assert "on disk" in error.message
    assert time.monotonic() - started < 3


async def test_a_failing_progress_callback_costs_nothing(
    pool: DownloadPool, media_server: MediaServer, workdir: Path
) -> None:
    calls = []

    def broken(progress: DownloadProgress) -> None:
        calls.append(progress)
        raise RuntimeError("a bug in a progress listener")

    result = await pool.run(job(media_server.url("/files/clip.mp4"), workdir), broken)
    assert calls and result.size == calls[-1].downloaded_bytes


async def test_an_empty_body_fails_at_once_as_empty_download(
    pool: DownloadPool, media_server: MediaServer, workdir: Path
) -> None:
    """A 200 with nothing in it is permanent: no retries for minutes, its own code."""
    started = time.monotonic()
    await expect_failure(
        pool, job(media_server.url("/files/empty.mp4"), workdir), PermanentError, "empty_download"
    )
    assert time.monotonic() - started < 20


async def test_a_trickling_source_fails_as_too_slow_within_the_stall_window(
    loopback_only: list[AllowRule], media_server: MediaServer, workdir: Path
) -> None:
    """Bytes that keep coming, but slower than the minimum rate, do not keep a job alive."""
    async with DownloadPool(
        1, allowlist=loopback_only, job_timeout=60, stall_seconds=8, min_rate=4096
    ) as trickle_pool:
        reported: list[int] = []
        started = time.monotonic()
        # 1 KB/s in 100-byte writes (yt-dlp reads 1 KiB blocks): never silent, too slow.
        url = media_server.url("/slow/clip.mp4?rate=1000&chunk=100")
        await expect_failure(
            trickle_pool,
            job(url, workdir, progress_interval=0.2),
            PermanentError,
            "source_too_slow",
            lambda progress: reported.append(progress.downloaded_bytes),
        )
        assert len(set(reported)) > 2, "bytes were still arriving"
        assert time.monotonic() - started < 45


async def test_stall_watchdog_ends_a_download_that_stops_moving(
    single_pool: DownloadPool, media_server: MediaServer, workdir: Path
) -> None:
    [first_pid] = single_pool.pids
    reported: list[float] = []
    # 1 KB/s in 16 KiB writes: one burst, then sixteen silent seconds.
    await expect_failure(
        single_pool,
        job(media_server.url("/slow/clip.mp4?rate=1000"), workdir, progress_interval=0.2),
        TransientError,
        "download_stalled",
        lambda progress: reported.append(time.monotonic()),
    )
    assert reported, "the burst was reported before the silence"
    assert 2 <= time.monotonic() - reported[-1] < 3.5
    assert not process_exists(first_pid)


async def test_warm_children_make_later_jobs_cheap(
    timed_pool: tuple[DownloadPool, float], media_server: MediaServer, tmp_path: Path
) -> None:
    pool, start_seconds = timed_pool
    timings = []
    for index in range(2):
        workdir = tmp_path / f"job-{index}"
        workdir.mkdir()
        begin = time.monotonic()
        await pool.run(job(media_server.url("/files/clip.mp4"), workdir))
        timings.append(time.monotonic() - begin)
    # A child pays for the interpreter, the yt-dlp import and the extractor warm-up once,
    # when the pool starts (two children in parallel); every job after that runs warm.
    print(
        f"\npool start (cold) {start_seconds:.3f} s; "
        f"jobs in warm children {timings[0]:.3f} s, {timings[1]:.3f} s"
    )
    assert max(timings) < start_seconds / 2


PLUGIN = textwrap.dedent(
    """
    from yt_dlp.extractor.common import InfoExtractor
    from yt_dlp.utils import ExtractorError


    class PluginProbeIE(InfoExtractor):
        _VALID_URL = r"https?://[^/]+/plugin-probe/.*"

        def _real_extract(self, url):
            raise ExtractorError("the plugin was loaded", expected=True)
    """
)


@pytest.fixture
def plugin_on_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A yt-dlp extractor plugin where yt-dlp looks for plugins by default (on sys.path)."""
    root = tmp_path / "plugins"
    package = root / "yt_dlp_plugins" / "extractor"
    package.mkdir(parents=True)
    (package / "probe.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(root))
    return root


async def test_yt_dlp_plugins_are_not_loaded(
    plugin_on_sys_path: Path,
    media_server: MediaServer,
    workdir: Path,
    loopback_only: list[AllowRule],
) -> None:
    # First prove the probe is a working plugin: stock yt-dlp picks it up.
    check = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            "import yt_dlp; ydl = yt_dlp.YoutubeDL({'quiet': True}); "
            "print('PluginProbe' in ydl._ies)",
        ],
        env={**os.environ, "PYTHONPATH": str(plugin_on_sys_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.strip() == "True", check.stderr
    # Children get the parent's sys.path, plugin included; the pool must still ignore it,
    # so the URL falls to the generic extractor and the server's 404.
    async with DownloadPool(1, allowlist=loopback_only) as isolated:
        await expect_failure(
            isolated,
            job(media_server.url("/plugin-probe/clip.mp4"), workdir),
            PermanentError,
            "source_not_found",
        )


def peak_rss_mib(pid: int) -> float:
    """The highest resident memory the process ever had (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_a_large_download_keeps_memory_flat(
    tmp_path_factory: pytest.TempPathFactory, workdir: Path, loopback_only: list[AllowRule]
) -> None:
    """D7: a file several times larger than the child's memory streams to disk."""
    from tests.support.clips import make_large_h264

    root = tmp_path_factory.mktemp("large")
    big = make_large_h264(root / "big.mp4", min_bytes=320 * 1024 * 1024)
    with MediaServer(root) as server:
        async with DownloadPool(1, allowlist=loopback_only, job_timeout=120) as single:
            (pid,) = single.pids
            before = peak_rss_mib(pid)
            request = job(server.url("/files/big.mp4"), workdir, max_bytes=400 * 2**20)
            result = await single.run(request)
            after = peak_rss_mib(pid)
    assert result.size == big.stat().st_size
    print(
        f"child peak RSS {before:.0f} MiB before, {after:.0f} MiB after a "
        f"{result.size / 2**20:.0f} MiB download"
    )
    # Buffering the file would add its 320 MiB; streaming adds a few MiB of buffers.
    assert after - before < 64
