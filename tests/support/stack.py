"""Run every PRSNL Media service as its own OS process, isolated by namespace and database.

Used by the end-to-end tests, the benchmarks and the demo: one namespace (own
exchanges and queues), one database and one media root per stack, torn down
afterwards so nothing is left in the shared RabbitMQ and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from prsnl_common.settings import CommonSettings
from prsnl_common.store import MediaStore, open_store

RABBITMQ_URL = os.environ.get("PRSNL_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get("PRSNL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")

MODULES = {
    "ingest": ["prsnl_ingest", "serve"],
    "downloader": ["prsnl_downloader"],
    "transcoder": ["prsnl_transcoder"],
    "storage-janitor": ["prsnl_janitor"],
    "telegram-gateway": ["prsnl_telegram"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_workers(pid: int) -> list[int]:
    """The gateway processes of a supervisor (PRSNL_INGEST_WORKERS): the children it spawned
    and marked as its own (not multiprocessing's resource tracker, nor another service's
    spawned children)."""
    from prsnl_ingest.serving import SUPERVISOR_PID

    marker = f"{SUPERVISOR_PID}={pid}".encode()
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    found = []
    for child in children:
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if marker in environ and b"spawn_main" in command:
            found.append(int(child))
    return found


@dataclass
class Stack:
    """A running set of services plus helpers to talk to its API."""

    root: Path
    env: dict[str, str]
    port: int
    processes: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def media_root(self) -> Path:
        return Path(self.env["PRSNL_MEDIA_ROOT"])

    @property
    def namespace(self) -> str:
        return self.env["PRSNL_NAMESPACE"]

    @property
    def database_url(self) -> str:
        return self.env["PRSNL_DATABASE_URL"]

    @functools.cached_property
    def store(self) -> MediaStore:
        """The stack's media store, as its services open it (a directory or a bucket)."""
        names = ("MEDIA_ROOT", "MEDIA_STORE", "S3_ENDPOINT", "S3_ACCESS_KEY_ID")
        names += ("S3_SECRET_ACCESS_KEY",)
        chosen = {n.lower(): self.env[f"PRSNL_{n}"] for n in names if f"PRSNL_{n}" in self.env}
        return open_store(CommonSettings(**chosen))

    def start(
        self, service: str, count: int = 1, extra_env: Mapping[str, str] | None = None
    ) -> None:
        log_dir = self.root / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            index = len(self.processes.get(service, []))
            env = {**self.env, **(extra_env or {})}
            # The child keeps its own copy of the log descriptor.
            with (log_dir / f"{service}-{index}.log").open("ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", *MODULES[service]],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.processes.setdefault(service, []).append(process)

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        for process in self.processes.pop(service, []):
            if process.poll() is None:
                os.kill(process.pid, sig)
            process.wait(timeout=30)

    def stop_all(self) -> None:
        for service in list(self.processes):
            for process in self.processes[service]:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in self.processes[service]:
                try:
                    process.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()

    def logs(self, service: str) -> str:
        return "\n".join(
            p.read_text(errors="replace")
            for p in sorted((self.root / "logs").glob(f"{service}-*.log"))
        )

    def wait_ready(self, timeout: float = 60, base_url: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        url = base_url or self.base_url
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"ingest not ready:\n{self.logs('ingest')[-4000:]}")

    def wait_consumers(self, services: list[str], timeout: float = 60) -> None:
        """Wait until every stage queue of ``services`` has a consumer (each worker is up)."""
        from prsnl_common.broker import SUBSCRIPTIONS, Topology
        from prsnl_common.settings import CommonSettings

        topology = Topology(CommonSettings(namespace=self.namespace))
        queues = [
            topology.queue_name(service, event.routing_key)
            for service in services
            for event in SUBSCRIPTIONS.get(service, ())
        ]
        deadline = time.monotonic() + timeout
        while waiting := asyncio.run(_without_consumer(self.env["PRSNL_RABBITMQ_URL"], queues)):
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"queues without a consumer after {timeout:g} s: {waiting}")
            time.sleep(0.2)

    def _check_alive(self) -> None:
        for service, processes in self.processes.items():
            for process in processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{service} exited early:\n{self.logs(service)[-4000:]}")

    def create_key(self, owner: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "prsnl_ingest", "create-key", "--owner", owner],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip().splitlines()[-1]

    def revoke_key(self, key: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "prsnl_ingest", "revoke-key", key],
            env=self.env,
            capture_output=True,
            check=True,
        )

    def client(self, key: str) -> Api:
        return Api(self.base_url, key)


@dataclass
class Api:
    base_url: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def post(self, path: str, json: Any = None) -> httpx.Response:
        return httpx.post(f"{self.base_url}{path}", json=json, headers=self.headers, timeout=30)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return httpx.get(
            f"{self.base_url}{path}", headers={**self.headers, **(headers or {})}, timeout=60
        )

    def head(self, path: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return httpx.head(
            f"{self.base_url}{path}", headers={**self.headers, **(headers or {})}, timeout=30
        )

    def delete(self, path: str) -> httpx.Response:
        return httpx.delete(f"{self.base_url}{path}", headers=self.headers, timeout=30)

    def capture(self, url: str, **options: Any) -> httpx.Response:
        return self.post("/api/v1/captures", {"url": url, **options})

    def item(self, item_id: str) -> dict[str, Any]:
        response = self.get(f"/api/v1/items/{item_id}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def wait_for(
        self,
        item_id: str,
        statuses: tuple[str, ...] = ("ready", "failed"),
        timeout: float = 120,
        predicate: Any = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        item: dict[str, Any] = {}
        while time.monotonic() < deadline:
            item = self.item(item_id)
            if item["status"] in statuses and (predicate is None or predicate(item)):
                return item
            time.sleep(0.2)
        raise AssertionError(f"item {item_id} still {item.get('status')} after {timeout}s: {item}")


def stack_env(root: Path, **overrides: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRSNL_")}
    env.update(
        {
            "PRSNL_NAMESPACE": f"t{tag}",
            "PRSNL_DATABASE_URL": f"{POSTGRES_URL}/prsnl_t{tag}",
            "PRSNL_RABBITMQ_URL": RABBITMQ_URL,
            "PRSNL_MEDIA_ROOT": str(root / "media"),
            "PRSNL_SSRF_ALLOWLIST": "127.0.0.1/32",
            "PRSNL_LOG_FORMAT": "json",
            "PRSNL_INGEST_PORT": "0",
            "PRSNL_INGEST_METRICS_PORT": "0",
            "PRSNL_DOWNLOADER_METRICS_PORT": "0",
            "PRSNL_TRANSCODER_METRICS_PORT": "0",
            "PRSNL_JANITOR_METRICS_PORT": "0",
            "PRSNL_TELEGRAM_METRICS_PORT": "0",
        }
    )
    env.update(overrides)
    return env


@contextlib.contextmanager
def running_stack(
    root: Path, *, downloaders: int = 2, transcoders: int = 1, **overrides: str
) -> Iterator[Stack]:
    """Start ingest, downloaders, transcoders and the janitor; tear everything down after."""
    env = stack_env(root, **overrides)
    port = free_port()
    env["PRSNL_INGEST_PORT"] = str(port)
    stack = Stack(root=root, env=env, port=port)
    try:
        stack.start("ingest")
        stack.wait_ready()
        stack.start("downloader", downloaders)
        stack.start("transcoder", transcoders)
        stack.start("storage-janitor")
        stack.wait_consumers(["downloader", "transcoder", "storage-janitor"])
        yield stack
    finally:
        stack.stop_all()
        asyncio.run(remove_namespace(env["PRSNL_NAMESPACE"]))
        asyncio.run(drop_database(env["PRSNL_DATABASE_URL"]))


async def _without_consumer(url: str, queues: list[str]) -> list[str]:
    """The queues among ``queues`` that have no consumer yet (or do not exist yet)."""
    import aio_pika

    waiting = []
    connection = await aio_pika.connect(url)
    async with connection:
        for name in queues:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                waiting.append(name)
                continue
            if not queue.declaration_result.consumer_count:
                waiting.append(name)
            await channel.close()
    return waiting


def _rabbit_names(kind: str) -> list[str]:
    result = subprocess.run(
        ["rabbitmqctl", "-q", f"list_{kind}", "name"], capture_output=True, text=True, check=False
    )
    return result.stdout.split()


async def remove_namespace(namespace: str) -> None:
    """Delete every queue and exchange of ``namespace`` from RabbitMQ."""
    import aio_pika

    names = await asyncio.to_thread(_rabbit_names, "queues")
    exchanges = await asyncio.to_thread(_rabbit_names, "exchanges")
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        for name in names:
            if name.startswith(f"{namespace}."):
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)
        for name in exchanges:
            if name.startswith(f"{namespace}."):
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(name)


async def drop_database(dsn: str) -> None:
    import asyncpg

    base, name = dsn.rsplit("/", 1)
    connection = await asyncpg.connect(f"{base}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
