"""Unit tests of the benchmark's pure parts: wrk parsing, Lua and nginx generation, the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.capture import PipelineRun, RawRun
from bench.cli import (
    H264,
    ClipResult,
    api_report,
    capture_report,
    check_bodies,
    parse_args,
    payload_rate,
    stream_report,
)
from bench.nginx import nginx_config, quote, temp_path_modules
from bench.report import (
    fmt_count,
    fmt_mib,
    fmt_ratio,
    fmt_seconds,
    format_table,
    median,
    ratio,
)
from bench.wrk import (
    MIB,
    WrkParseError,
    WrkResult,
    parse_size,
    parse_time,
    parse_wrk,
    range_script,
    wrk_command,
)

WRK_LATENCY = """\
Running 10s test @ http://127.0.0.1:8000/api/v1/items/01a1
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.34ms    3.21ms  85.00ms   91.20%
    Req/Sec     1.31k   120.00     1.60k    70.00%
  Latency Distribution
     50%   11.90ms
     75%   13.10ms
     90%   15.00ms
     99%   31.42ms
  26123 requests in 10.01s, 30.12MB read
Requests/sec:   2609.69
Transfer/sec:      3.01MB
"""

WRK_ERRORS = """\
Running 3s test @ http://127.0.0.1:9000/healthz
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us  101.00us   2.10s    88.00%
    Req/Sec    20.10k     1.00k   22.00k    75.00%
  Latency Distribution
     50%  790.00us
     75%  850.00us
     90%    0.95ms
     99%    1.20s
  120000 requests in 3.00s, 1.02GB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 17
Requests/sec:  40000.00
Transfer/sec:    348.16KB
"""

WRK_NO_LATENCY = """\
Running 2s test @ http://127.0.0.1:9000/video.mp4
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.49ms    1.83ms  13.61ms   77.69%
    Req/Sec   184.35     32.12   230.00     65.00%
  374 requests in 1.00m, 512.00B read
Requests/sec:    183.18
Transfer/sec:      1.62GB
"""


# -- wrk output ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("812.00us", 812e-6),
        ("1.23ms", 1.23e-3),
        ("2.00s", 2.0),
        ("1.50m", 90.0),
        ("1.00h", 3600.0),
    ],
)
def test_parse_time_units(text: str, seconds: float) -> None:
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512.00B", 512),
        ("348.16KB", 348.16 * 1024),
        ("3.01MB", 3.01 * 1024**2),
        ("1.02GB", 1.02 * 1024**3),
    ],
)
def test_parse_size_units(text: str, size: float) -> None:
    assert parse_size(text) == pytest.approx(size)


@pytest.mark.parametrize("text", ["", "12", "1.2 ms", "3ns", "fast"])
def test_parse_time_refuses_other_text(text: str) -> None:
    with pytest.raises(WrkParseError):
        parse_time(text)


@pytest.mark.parametrize("text", ["", "12", "1.2MiB", "3.0XB", "1.5 MB"])
def test_parse_size_refuses_other_text(text: str) -> None:
    with pytest.raises(WrkParseError):
        parse_size(text)


def test_parse_wrk_with_latency_distribution() -> None:
    result = parse_wrk(WRK_LATENCY)
    assert result.requests == 26123
    assert result.elapsed_s == pytest.approx(10.01)
    assert result.bytes_read == pytest.approx(30.12 * MIB)
    assert result.requests_per_s == pytest.approx(2609.69)
    assert result.transfer_per_s == pytest.approx(3.01 * MIB)
    assert result.latency_avg_s == pytest.approx(0.01234)
    assert result.latency_max_s == pytest.approx(0.085)
    assert result.p50_s == pytest.approx(0.0119)
    assert result.p99_s == pytest.approx(0.03142)
    assert set(result.percentiles) == {50.0, 75.0, 90.0, 99.0}
    assert result.errors == 0
    assert result.mib_per_s == pytest.approx(3.01)


def test_parse_wrk_microseconds_seconds_and_errors() -> None:
    result = parse_wrk(WRK_ERRORS)
    assert result.latency_avg_s == pytest.approx(812e-6)
    assert result.latency_max_s == pytest.approx(2.1)
    assert result.p50_s == pytest.approx(790e-6)
    assert result.percentiles[90.0] == pytest.approx(0.95e-3)
    assert result.p99_s == pytest.approx(1.2)
    assert result.bytes_read == pytest.approx(1.02 * 1024**3)
    assert result.transfer_per_s == pytest.approx(348.16 * 1024)
    assert result.requests_per_s == pytest.approx(40000.0)
    assert dict(result.socket_errors) == {"connect": 1, "read": 2, "write": 3, "timeout": 4}
    assert result.non_2xx_3xx == 17
    assert result.errors == 27


def test_parse_wrk_without_latency_flag() -> None:
    result = parse_wrk(WRK_NO_LATENCY)
    assert result.percentiles == {}
    assert result.p99_s is None
    assert result.elapsed_s == pytest.approx(60.0)
    assert result.bytes_read == pytest.approx(512)
    assert result.transfer_per_s == pytest.approx(1.62 * 1024**3)
    assert result.requests_per_s == pytest.approx(183.18)
    assert result.latency_avg_s == pytest.approx(5.49e-3)


def test_parse_wrk_needs_totals() -> None:
    with pytest.raises(WrkParseError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
    no_rate = WRK_LATENCY.replace("Requests/sec:   2609.69\n", "")
    with pytest.raises(WrkParseError):
        parse_wrk(no_rate)


def test_wrk_result_bytes_per_request_and_json() -> None:
    result = WrkResult(
        requests=4,
        elapsed_s=1.0,
        bytes_read=4 * MIB,
        requests_per_s=4.0,
        transfer_per_s=4.0 * MIB,
        percentiles={99.0: 0.5},
    )
    assert result.bytes_per_request == MIB
    assert WrkResult(0, 1.0, 0.0, 0.0, 0.0).bytes_per_request == 0.0
    data = result.to_json()
    assert data["percentiles_s"] == {"p99": 0.5}
    assert data["mib_per_s"] == 4.0


def test_wrk_command_line() -> None:
    command = wrk_command(
        "http://127.0.0.1:8000/x",
        threads=2,
        connections=32,
        duration_s=10,
        headers={"Authorization": "Bearer k"},
        script=Path("/tmp/r.lua"),
        binary="/usr/bin/wrk",
    )
    assert command == [
        "/usr/bin/wrk",
        "-t2",
        "-c32",
        "-d10s",
        "--latency",
        "-H",
        "Authorization: Bearer k",
        "-s",
        "/tmp/r.lua",
        "http://127.0.0.1:8000/x",
    ]
    plain = wrk_command("http://h/", threads=1, connections=1, duration_s=3, latency=False)
    assert plain == ["wrk", "-t1", "-c1", "-d3s", "http://h/"]
    with pytest.raises(ValueError):
        wrk_command("http://h/", threads=1, connections=1, duration_s=0)


# -- Lua script ----------------------------------------------------------------------------


def test_range_script_asks_for_whole_ranges_inside_the_file() -> None:
    script = range_script(size=9_490_678, chunk=MIB, seed=7)
    assert "local size = 9490678" in script
    assert f"local chunk = {MIB}" in script
    assert "local seed = 7" in script
    # The first byte is drawn so that first + chunk - 1 is still inside the file.
    assert "math.random(0, size - chunk)" in script
    assert 'string.format("bytes=%d-%d", first, first + chunk - 1)' in script
    # Headers from -H (the API key) are kept: wrk.headers is edited, not replaced.
    assert 'wrk.headers["Range"]' in script
    assert "return wrk.format()" in script
    # One seed per thread, so the threads do not ask for the same ranges.
    assert 'thread:set("id", threads)' in script
    assert "math.randomseed(seed + (id or 0))" in script
    for function in ("setup(thread)", "init(args)", "request()"):
        assert f"function {function}" in script


def test_range_script_refuses_files_smaller_than_a_range() -> None:
    assert "local size = 1024" in range_script(size=1024, chunk=1024)
    with pytest.raises(ValueError):
        range_script(size=1023, chunk=1024)
    with pytest.raises(ValueError):
        range_script(size=10, chunk=0)


# -- nginx configuration -------------------------------------------------------------------


def test_nginx_config_serves_root_privately(tmp_path: Path) -> None:
    config = nginx_config(
        root=Path("/srv/media root"),
        port=41234,
        runtime_dir=tmp_path,
        temp_modules=["client_body", "proxy"],
    )
    lines = [line.strip() for line in config.splitlines()]
    for directive in (
        "daemon off;",
        "master_process off;",
        "access_log off;",
        "sendfile on;",
        "listen 127.0.0.1:41234;",
        'root "/srv/media root";',
        f'pid "{tmp_path}/nginx.pid";',
        f'error_log "{tmp_path}/error.log" warn;',
        f'client_body_temp_path "{tmp_path}/client_body";',
        f'proxy_temp_path "{tmp_path}/proxy";',
        "video/mp4 mp4;",
    ):
        assert directive in lines, directive
    assert "fastcgi_temp_path" not in config
    assert config.count("{") == config.count("}")


def test_temp_path_modules_follow_the_build() -> None:
    full = "configure arguments: --with-http_ssl_module --with-threads"
    assert temp_path_modules(full) == ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    light = "configure arguments: --without-http_uwsgi_module --without-http_scgi_module"
    assert temp_path_modules(light) == ["client_body", "proxy", "fastcgi"]


def test_quote_escapes_and_refuses_variables() -> None:
    assert quote("/a b") == '"/a b"'
    assert quote('/a"b\\c') == '"/a\\"b\\\\c"'
    with pytest.raises(ValueError):
        quote("/srv/$root")


# -- numbers and tables --------------------------------------------------------------------


def test_median_and_ratio() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0]) == 2.5
    assert median([7.5]) == 7.5
    with pytest.raises(ValueError):
        median([])
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) is None
    assert ratio(None, 2.0) is None
    assert ratio(1.0, None) is None


def test_number_formats() -> None:
    assert fmt_ratio(1.234) == "1.23x"
    assert fmt_ratio(12.34) == "12.3x"
    assert fmt_ratio(123.4) == "123x"
    assert fmt_ratio(0.004567) == "0.0046x"
    assert fmt_ratio(None) == "n/a"
    assert fmt_seconds(0.000812) == "812 us"
    assert fmt_seconds(0.01234) == "12.3 ms"
    assert fmt_seconds(0.456) == "456 ms"
    assert fmt_seconds(1.234) == "1.23 s"
    assert fmt_seconds(73.44) == "73.4 s"
    assert fmt_seconds(None) == "n/a"
    assert fmt_count(12345.6) == "12,346"
    assert fmt_count(1234.56, 1) == "1,234.6"
    assert fmt_mib(1536 * MIB) == "1,536.0"


def test_format_table_aligns_columns() -> None:
    table = format_table(["name", "req/s"], [["a", "1"], ["longer", "12,345"]])
    assert table.splitlines() == [
        "  name     req/s",
        "  ------  ------",
        "  a            1",
        "  longer  12,345",
    ]
    with pytest.raises(ValueError):
        format_table(["a", "b"], [["only one"]])


# -- report sections -----------------------------------------------------------------------


def _wrk(rps: float, p50: float, p99: float, body: int = 100, requests: int = 1000) -> WrkResult:
    return WrkResult(
        requests=requests,
        elapsed_s=10.0,
        bytes_read=requests * body,
        requests_per_s=rps,
        transfer_per_s=rps * body,
        latency_avg_s=p50,
        percentiles={50.0: p50, 99.0: p99},
    )


def test_api_report_puts_items_next_to_healthz() -> None:
    text = api_report(_wrk(4000, 0.007, 0.020), _wrk(1000, 0.03, 0.05), 10)
    assert "wrk -t2 -c32 -d10s --latency" in text
    assert "/healthz (no database)" in text
    ratio_line = next(line for line in text.splitlines() if "items / healthz" in line)
    assert "0.25x" in ratio_line and "2.50x" in ratio_line


def test_stream_report_ratios_are_ours_over_nginx() -> None:
    ours = _wrk(200, 0.15, 0.4, body=MIB)
    nginx = _wrk(4000, 0.008, 0.02, body=MIB)
    text = stream_report(
        10 * MIB, ours, nginx, _wrk(30, 0.03, 0.05), _wrk(300, 3e-3, 5e-3), "1.22.1", 10, 3
    )
    assert "nginx 1.22.1" in text
    assert "10.0 MiB" in text
    lines = [line for line in text.splitlines() if line.strip().startswith("ours / nginx")]
    assert len(lines) == 2
    assert "0.05x" in lines[0]
    assert "0.10x" in lines[1]
    assert "200.0" in text  # 200 responses/s x 1 MiB


def test_stream_report_shows_the_nginx_offload_next_to_nginx() -> None:
    nginx = _wrk(4000, 0.008, 0.02, body=MIB)
    text = stream_report(
        10 * MIB,
        _wrk(200, 0.15, 0.4, body=MIB),
        nginx,
        _wrk(30, 0.03, 0.05),
        _wrk(300, 3e-3, 5e-3),
        "1.22.1",
        10,
        3,
        offload=_wrk(2000, 0.016, 0.04, body=MIB),
        offload_full=_wrk(150, 6e-3, 9e-3),
        signed=_wrk(3600, 0.009, 0.02, body=MIB),
        signed_full=_wrk(270, 3e-3, 5e-3),
    )
    assert text.count("ours via nginx X-Accel-Redirect") == 2
    assert text.count("ours via nginx, signed link") == 2
    signed = [line for line in text.splitlines() if line.strip().startswith("signed link / nginx")]
    assert len(signed) == 2 and "0.90x" in signed[0] and "0.90x" in signed[1]
    lines = [line for line in text.splitlines() if line.strip().startswith("offloaded / nginx")]
    assert len(lines) == 2
    assert "0.50x" in lines[0] and "0.50x" in lines[1]


def test_payload_rate_and_body_checks() -> None:
    good = _wrk(100, 0.1, 0.2, body=MIB + 300, requests=1000)
    assert payload_rate(good, MIB) == 100 * MIB
    check_bodies("good", good, MIB, 32)
    # In-flight partial bodies at the end of the run are allowed (one per connection).
    tail = WrkResult(1000, 10.0, 1000 * MIB + 32 * MIB, 100.0, 103.2 * MIB)
    check_bodies("tail", tail, MIB, 32)
    whole_file = _wrk(100, 0.1, 0.2, body=9 * MIB, requests=1000)
    with pytest.raises(RuntimeError):
        check_bodies("whole", whole_file, MIB, 32)
    with pytest.raises(RuntimeError):
        check_bodies("none", WrkResult(0, 1.0, 0.0, 0.0, 0.0), MIB, 1)
    errors = WrkResult(1000, 10.0, 1000 * MIB, 100.0, 100.0 * MIB, non_2xx_3xx=1)
    with pytest.raises(RuntimeError):
        check_bodies("errors", errors, MIB, 32)


def test_capture_report_medians_and_ratio() -> None:
    pipeline = [
        PipelineRun(
            url="u",
            item_id=str(i),
            total_s=t,
            download_s=t / 2,
            process_s=t / 2,
            item={"action": "remuxed"},
        )
        for i, t in enumerate([1.0, 3.0, 2.0])
    ]
    raw = [
        RawRun(url="u", action="remuxed", steps={"yt-dlp": 0.5, "2x ffprobe": 0.1}, total_s=t)
        for t in [1.0, 1.0, 4.0]
    ]
    text = capture_report([ClipResult(H264, pipeline, raw)], 3)
    row = next(line for line in text.splitlines() if line.strip().startswith(H264.label))
    assert "remuxed" in row
    assert "2.00 s" in row and "1.00 s" in row and "2.00x" in row
    assert "1.00 3.00 2.00" in row
    assert "median of 3 runs" in text
    steps = text.splitlines()[-4:]
    assert "yt-dlp" in steps[0] and "2x ffprobe" in steps[0]
    assert "500 ms" in steps[2] and "100 ms" in steps[2]


def test_clip_run_links_are_distinct_names_for_the_same_file(tmp_path: Path) -> None:
    (tmp_path / H264.name).write_bytes(b"clip")
    first = H264.run_link(tmp_path, "run1")
    again = H264.run_link(tmp_path, "run1")
    second = H264.run_link(tmp_path, "run2")
    assert first == again != second
    assert first.startswith("runs/") and first.endswith(".mp4")
    assert (tmp_path / first).read_bytes() == b"clip"


def test_parse_args_quick_only_and_json(tmp_path: Path) -> None:
    quick = parse_args(["--quick", "--only", "stream,api", "--json", str(tmp_path / "r.json")])
    assert quick.runs == 1 and quick.quick
    assert quick.sections == ("api", "stream")
    assert quick.api_seconds < 10 and quick.stream_seconds < 10
    assert quick.json_path == tmp_path / "r.json"
    default = parse_args([])
    assert default.runs == 3
    assert default.sections == ("capture", "api", "stream", "throughput", "intake")
    assert default.api_seconds == 10
    assert default.batch_jobs == 40 and quick.batch_jobs == 8
    assert parse_args(["--batch", "5"]).batch_jobs == 5
    with pytest.raises(SystemExit):
        parse_args(["--only", "nothing"])
    with pytest.raises(SystemExit):
        parse_args(["--batch", "0"])
