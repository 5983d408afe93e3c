"""Where the API is and which key to use: flags, then the environment, then the config file.

The file is TOML at ``$XDG_CONFIG_HOME/prsnl/config.toml`` (``~/.config/prsnl``
without XDG), with ``api_url`` and ``api_key``; ``prsnl login`` writes it
readable by its owner only, since it holds a key.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from prsnl_cli.errors import CliError, ExitCode

DEFAULT_API_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Config:
    api_url: str
    api_key: str | None
    path: Path

    def require_key(self) -> str:
        if not self.api_key:
            raise CliError(
                f"No API key: set PRSNL_API_KEY or run 'prsnl login' (which writes {self.path}).",
                ExitCode.AUTH,
            )
        return self.api_key


def default_path(env: Mapping[str, str]) -> Path:
    """The config file: ``PRSNL_CONFIG``, else the XDG location."""
    if env.get("PRSNL_CONFIG"):
        return Path(env["PRSNL_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or "~").expanduser() / ".config")
    return Path(base) / "prsnl" / "config.toml"


def normalize_url(url: str) -> str:
    """The API's base URL: scheme and host (and any prefix of a proxy), without ``/api/v1``."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"The API URL must start with http:// or https://: {url!r}.", ExitCode.USAGE)
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    return url


def read_file(path: Path) -> dict[str, str]:
    """The settings of the config file; empty when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"Cannot read {path}: {exc.strerror}.", ExitCode.USAGE) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"{path} is not valid TOML: {exc}.", ExitCode.USAGE) from exc
    wrong = [k for k in ("api_url", "api_key") if k in data and not isinstance(data[k], str)]
    if wrong:
        raise CliError(f"{path}: {', '.join(wrong)} must be a string.", ExitCode.USAGE)
    return {k: v for k, v in data.items() if k in ("api_url", "api_key")}


def load(env: Mapping[str, str], api_url: str | None = None, path: Path | None = None) -> Config:
    """The configuration in force: ``--api-url``, then ``PRSNL_API_URL``/``PRSNL_API_KEY``, then
    the file."""
    path = path or default_path(env)
    stored = read_file(path)
    url = api_url or env.get("PRSNL_API_URL") or stored.get("api_url") or DEFAULT_API_URL
    key = env.get("PRSNL_API_KEY") or stored.get("api_key") or None
    return Config(normalize_url(url), key.strip() if key else None, path)


def is_private(path: Path) -> bool:
    """True when only the owner may read ``path`` (no group or other bits)."""
    return not path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)


def write(path: Path, api_url: str, api_key: str) -> None:
    """Store the URL and key, readable by the owner only, replacing the file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = f"api_url = {toml_string(api_url)}\napi_key = {toml_string(api_key)}\n"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)  # an existing temporary file keeps its mode otherwise
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def toml_string(value: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, control characters as ``\\uXXXX``."""
    escaped = "".join(
        f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char
        for char in value.replace("\\", "\\\\").replace('"', '\\"')
    )
    return f'"{escaped}"'
