"""prsnl's use of the API over a fake transport: pages, problems, streams, resumes, commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from prsnl_cli.api import Api, follow, problem_of
from prsnl_cli.download import PartFile, download
from prsnl_cli.errors import ApiProblem, CliError, ExitCode, exit_code_of
from prsnl_cli.main import cli

BASE = "http://api.test"
Handler = Callable[[httpx.Request], httpx.Response]


def api(handler: Handler) -> Api:
    return Api(BASE, "key", transport=httpx.MockTransport(handler))


async def test_items_follow_the_cursor_until_the_limit() -> None:
    everything = [{"id": str(n)} for n in range(5)]
    asked: list[httpx.QueryParams] = []

    def pages(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params)
        start = int(request.url.params.get("cursor") or 0)
        end = start + 2  # the API's pages are smaller than asked for
        more = end < len(everything)
        body = {"items": everything[start:end], "next_cursor": str(end) if more else None}
        return httpx.Response(200, json=body)

    async with api(pages) as client:
        assert [i["id"] async for i in client.items(3, status="ready")] == ["0", "1", "2"]
        assert [i["id"] async for i in client.items(None)] == ["0", "1", "2", "3", "4"]
    assert asked[0]["status"] == "ready" and asked[0]["limit"] == "3"
    assert asked[1]["cursor"] == "2" and asked[1]["limit"] == "1"


async def test_requests_carry_the_bearer_key() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200, json={"id": "x"})

    async with api(answer) as client:
        await client.item("x")
    assert seen == ["Bearer key"]


def test_problems_keep_the_apis_code_and_detail() -> None:
    body = {"status": 422, "code": "blocked_address", "detail": "Private address."}
    problem = problem_of(httpx.Response(422, json=body))
    assert (problem.code, problem.detail, problem.exit_code) == (
        "blocked_address",
        "Private address.",
        ExitCode.REFUSED,
    )
    assert "blocked_address" in problem.message and "422" in problem.message
    gateway = problem_of(httpx.Response(502, text="<html>Bad gateway</html>"))
    assert gateway.code == "http_error" and gateway.exit_code == ExitCode.NETWORK


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, ExitCode.AUTH),
        (403, ExitCode.AUTH),
        (404, ExitCode.NOT_FOUND),
        (409, ExitCode.CONFLICT),
        (413, ExitCode.REFUSED),
        (416, ExitCode.CONFLICT),
        (422, ExitCode.REFUSED),
        (429, ExitCode.LIMITED),
        (500, ExitCode.SERVER),
        (503, ExitCode.NETWORK),
    ],
)
def test_exit_codes_of_statuses(status: int, code: ExitCode) -> None:
    assert exit_code_of(status) == code


async def test_following_an_item_listens_again_after_a_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    streams = iter(
        [
            'event: item\ndata: {"status": "downloading"}\n\n',  # then the connection ends
            'event: item\ndata: {"status": "downloading"}\n\n'
            'event: progress\ndata: {"status": "processing"}\n\n'
            'event: status\ndata: {"status": "ready"}\n\n'
            'event: status\ndata: {"status": "never read"}\n\n',
        ]
    )

    def stream(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/items/i/events"
        return httpx.Response(200, text=next(streams))

    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr("prsnl_cli.api.asyncio.sleep", no_wait)
    async with api(stream) as client:
        updates = [(kind, data["status"]) async for kind, data in follow(client, "i")]
    assert updates == [
        ("item", "downloading"),
        ("item", "downloading"),
        ("progress", "processing"),
        ("status", "ready"),
    ]


async def test_following_a_refused_stream_raises() -> None:
    def refused(_: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"code": "not_found", "detail": "No such item."})

    async with api(refused) as client:
        with pytest.raises(ApiProblem) as problem:
            [update async for update in follow(client, "i")]
    assert problem.value.exit_code == ExitCode.NOT_FOUND


ITEM = {"id": "i", "status": "ready", "links": {"video": f"{BASE}/v?exp=9&kid=ab&sig=cd"}}


async def test_a_part_as_long_as_the_file_is_kept_after_head_confirms_it(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    part = PartFile(target)
    part.path.write_bytes(b"x" * 10)
    part.etag_path.write_text('"a"\n')
    seen: list[tuple[str, str | None, str | None]] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/items/i":
            return httpx.Response(200, json=ITEM)
        seen.append(
            (request.method, request.headers.get("range"), request.headers.get("authorization"))
        )
        if request.method == "HEAD":
            return httpx.Response(200, headers={"ETag": '"a"', "Content-Length": "10"})
        problem = {"code": "range_not_satisfiable", "detail": "The file has 10 bytes."}
        return httpx.Response(416, json=problem, headers={"Content-Range": "bytes */10"})

    async with api(server) as client:
        done = await download(client, "i", target, lambda *_: None)
    assert (done.size, done.resumed_from) == (10, 10)
    assert target.read_bytes() == b"x" * 10 and not part.path.exists()
    assert seen == [("GET", "bytes=10-", None), ("HEAD", None, None)]


async def test_a_resume_at_the_wrong_byte_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    part = PartFile(target)
    part.path.write_bytes(b"x" * 10)
    part.etag_path.write_text('"a"\n')

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/items/i":
            return httpx.Response(200, json=ITEM)
        return httpx.Response(206, content=b"y" * 5, headers={"Content-Range": "bytes 5-9/10"})

    async with api(server) as client:
        with pytest.raises(CliError, match="not 10"):
            await download(client, "i", target, lambda *_: None)
    assert not target.exists()


def test_every_command_has_help() -> None:
    runner = CliRunner()
    commands = ["save", "ls", "show", "get", "retry", "rm", "watch", "login"]
    for command in [[], *([name] for name in commands)]:
        result = runner.invoke(cli, [*command, "--help"])
        assert result.exit_code == 0 and "Usage: " in result.output, command
    assert "Exit codes" in runner.invoke(cli, ["--help"]).output


def test_usage_errors_exit_2_and_a_missing_key_exits_3(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"PRSNL_API_KEY": "", "PRSNL_CONFIG": str(tmp_path / "none.toml")}
    assert runner.invoke(cli, ["save"], env=env).exit_code == 2
    assert runner.invoke(cli, ["ls", "--status", "done"], env=env).exit_code == 2
    assert runner.invoke(cli, ["get", "x", "--limit-rate", "fast"], env=env).exit_code == 2
    missing = runner.invoke(cli, ["ls", "--json"], env=env)
    assert missing.exit_code == 3
    assert "prsnl login" in json.loads(missing.stderr)["error"]["detail"]


def test_watch_prints_each_update_and_rides_out_an_unavailable_gateway(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    answers = iter(
        [
            httpx.Response(503, json={"code": "unavailable", "detail": "Restarting."}),
            httpx.Response(
                200,
                text="event: listening\ndata: {}\n\n"
                'event: created\ndata: {"item_id": "i1", "status": "pending"}\n\n'
                'event: status\ndata: {"item_id": "i1", "status": "ready"}\n\n',
            ),
        ]
    )

    def gateway(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/items/events"
        try:
            return next(answers)
        except StopIteration:
            raise KeyboardInterrupt from None  # the user ends watch with Ctrl-C

    async def no_wait(_: float) -> None:
        return None

    def fake_api(base_url: str, key: str, timeout: float) -> Api:
        return Api(base_url, key, timeout, transport=httpx.MockTransport(gateway))

    monkeypatch.setattr("prsnl_cli.main.Api", fake_api)
    monkeypatch.setattr("prsnl_cli.main.asyncio.sleep", no_wait)
    env = {"PRSNL_API_KEY": "k", "PRSNL_API_URL": BASE, "PRSNL_CONFIG": str(tmp_path / "c")}
    result = CliRunner().invoke(cli, ["watch", "--json"], env=env)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [
        {"event": "created", "item_id": "i1", "status": "pending"},
        {"event": "status", "item_id": "i1", "status": "ready"},
    ]
    assert "Restarting" in result.stderr and "watching" in result.stderr
