"""A private PostgreSQL server for tests that restart the database.

Restarting the shared server on 127.0.0.1:5432 would break every other test
and stack using it at that moment; a cluster of its own (own data directory
and port, loopback only, trust authentication) can be restarted at will and
is deleted afterwards. Starting one takes a couple of seconds.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.stack import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"no PostgreSQL {name} under /usr/lib/postgresql")
    return found[-1]


@dataclass
class PrivatePostgres:
    data: Path
    port: int

    @property
    def url(self) -> str:
        """Server URL without a database, like PRSNL_TEST_POSTGRES_URL."""
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def ctl(self, *args: str, timeout: float = 120) -> None:
        _as_postgres([_bin("pg_ctl"), "-D", str(self.data), "-w", *args], timeout=timeout)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        self.ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "stop")

    def restart(self) -> None:
        """A fast restart: every connection is cut, as in a real database restart."""
        self.stop()
        self.start()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """initdb a cluster owned by the postgres user, start it, and remove it after."""
    base = Path(tempfile.mkdtemp(prefix="prsnl-postgres-"))
    data = base / "data"
    _hand_to_postgres(base)
    _as_postgres([_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
    server = PrivatePostgres(data, free_port())
    server.start()
    try:
        _await_ready(server)
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.ctl("-m", "immediate", "stop", timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _await_ready(server: PrivatePostgres, within: float = 60) -> None:
    deadline = time.monotonic() + within
    probe = [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(server.port)]
    while subprocess.run(probe, capture_output=True, check=False).returncode:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the private PostgreSQL on {server.port} did not start")
        time.sleep(0.2)


def _as_postgres(command: list[str], timeout: float = 120) -> None:
    """Run a server tool as the postgres user (the server refuses to run as root)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode:
        raise subprocess.CalledProcessError(
            result.returncode, command, result.stdout, result.stderr
        )


def _hand_to_postgres(base: Path) -> None:
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam("postgres")
    os.chown(base, user.pw_uid, user.pw_gid)
