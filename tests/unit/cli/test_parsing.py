"""prsnl's parsing of what it reads: event streams, config files, headers and options."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prsnl_cli import config
from prsnl_cli.download import content_range
from prsnl_cli.errors import CliError, ExitCode
from prsnl_cli.render import parse_rate
from prsnl_cli.sse import EventParser, ServerEvent


def events_of(text: str) -> list[ServerEvent]:
    parser = EventParser()
    found = [parser.feed(line) for line in text.split("\n")]
    return [event for event in found if event is not None]


def test_events_are_named_joined_and_comments_skipped() -> None:
    stream = (
        ": keep-alive\n\n"
        'event: progress\ndata: {"a":\ndata: 1}\n\n'
        "data:plain\n\n"
        "event: empty\n\n"
        'id: 7\nretry: 100\nevent: status\r\ndata: {"status": "ready"}\r\n\r\n'
    )
    assert events_of(stream) == [
        ServerEvent("progress", '{"a":\n1}'),
        ServerEvent("message", "plain"),
        ServerEvent("status", '{"status": "ready"}'),
    ]
    assert events_of(stream)[2].json() == {"status": "ready"}
    assert ServerEvent("x", "[1]").json() == {} and ServerEvent("x", "{nope").json() == {}


def test_an_event_without_its_blank_line_is_not_dispatched() -> None:
    assert events_of("event: item\ndata: {}") == []


def test_config_precedence_flag_then_environment_then_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    config.write(path, "http://file:1", "file-key")
    env = {"PRSNL_CONFIG": str(path)}
    assert config.load(env) == config.Config("http://file:1", "file-key", path)
    env |= {"PRSNL_API_URL": "http://env:2/api/v1/", "PRSNL_API_KEY": "env-key"}
    assert config.load(env).api_url == "http://env:2" and config.load(env).api_key == "env-key"
    assert config.load(env, api_url="https://flag:3").api_url == "https://flag:3"


def test_defaults_and_the_xdg_location(tmp_path: Path) -> None:
    loaded = config.load({"XDG_CONFIG_HOME": str(tmp_path)})
    assert loaded.path == tmp_path / "prsnl" / "config.toml"
    assert loaded.api_url == config.DEFAULT_API_URL and loaded.api_key is None
    assert config.default_path({"HOME": str(tmp_path)}) == tmp_path / ".config/prsnl/config.toml"
    with pytest.raises(CliError) as missing:
        loaded.require_key()
    assert missing.value.exit_code == ExitCode.AUTH and "prsnl login" in missing.value.message


def test_login_writes_a_file_only_its_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "new" / "prsnl" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("old")
    path.chmod(0o644)
    config.write(path, "http://h:1", 'k"e\\y')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and config.is_private(path)
    assert tomllib.loads(path.read_text()) == {"api_url": "http://h:1", "api_key": 'k"e\\y'}
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]


@given(st.text())
def test_any_text_survives_the_toml_writer(value: str) -> None:
    assert tomllib.loads(f"k = {config.toml_string(value)}")["k"] == value


@pytest.mark.parametrize(
    ("text", "problem"),
    [("api_url = [", "not valid TOML"), ("api_key = 3", "must be a string")],
)
def test_a_broken_config_file_is_a_usage_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(CliError) as refused:
        config.load({"PRSNL_CONFIG": str(path)})
    assert refused.value.exit_code == ExitCode.USAGE and problem in refused.value.message


def test_an_api_url_needs_a_scheme() -> None:
    with pytest.raises(CliError):
        config.normalize_url("127.0.0.1:8000")
    assert config.normalize_url(" https://media.example/proxy/api/v1 ") == (
        "https://media.example/proxy"
    )


def test_content_range() -> None:
    assert content_range("bytes 100-199/200") == (100, 200)
    assert content_range("bytes */200") == (None, 200)
    assert content_range("items 1-2/3") == (None, None)
    assert content_range(None) == (None, None)


@pytest.mark.parametrize(
    ("text", "rate"),
    [("800", 800), ("500k", 500_000), ("2M", 2_000_000), ("1.5mb/s", 1_500_000), ("1G", 10**9)],
)
def test_rates(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "0", "0.5", "k", "-3M", "inf", "nan"])
def test_rates_that_are_none(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)
