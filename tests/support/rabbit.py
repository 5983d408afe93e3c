"""A private RabbitMQ node for tests that stop and start the broker.

Restarting the shared broker on 127.0.0.1:5672 would break every other test
and stack using it at that moment; a node of its own (own name, ports and data
directory, loopback only) can be stopped and started at will and is deleted
afterwards. Starting one takes a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.stack import free_port


@dataclass
class PrivateRabbit:
    node: str
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        )
        return result.stdout

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup")

    def restart_node(self) -> None:
        """The whole node stopped and started again (its data, and quorum queues, kept)."""
        self.ctl("stop", timeout=120)
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, check=True, timeout=60)
        _await_node(self)

    def consumers(self, prefix: str) -> dict[str, int]:
        """Consumers per queue whose name starts with ``prefix``."""
        counts: dict[str, int] = {}
        for line in self.ctl("list_queues", "name", "consumers").splitlines():
            name, _, count = line.rpartition("\t")
            if name.startswith(prefix) and count.isdigit():
                counts[name] = int(count)
        return counts


@contextlib.contextmanager
def private_rabbit(consumer_timeout_ms: int | None = None) -> Iterator[PrivateRabbit]:
    """Start a node with a data directory of its own; stop it and remove the data after.

    The directory is not under pytest's temporary root: that one is private to
    root, and the server runs as the rabbitmq user. ``consumer_timeout_ms`` sets a
    short delivery acknowledgement timeout, checked every second (the broker's
    default check runs once a minute).
    """
    name = f"prsnl-test-{uuid.uuid4().hex[:8]}@localhost"
    port, dist_port = free_port(), free_port()
    base = Path(tempfile.mkdtemp(prefix="prsnl-rabbitmq-"))
    (base / "mnesia").mkdir()
    (base / "log").mkdir()
    config = f"listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n"
    if consumer_timeout_ms is not None:
        config += f"consumer_timeout = {consumer_timeout_ms}\n"
    (base / "rabbitmq.conf").write_text(config)
    tick = 1000 if consumer_timeout_ms is not None else 60000
    (base / "advanced.config").write_text(f"[{{rabbit, [{{channel_tick_interval, {tick}}}]}}].\n")
    (base / "enabled_plugins").write_text("[].\n")
    _hand_to_rabbitmq_user(base)
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(base / "pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
    }
    subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, timeout=60)
    rabbit = PrivateRabbit(name, port, env)
    try:
        _await_node(rabbit)
        yield rabbit
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            rabbit.ctl("stop", timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _await_node(rabbit: PrivateRabbit, within: float = 90) -> None:
    """``await_startup`` fails while the node is not yet registered: retry until it answers."""
    deadline = time.monotonic() + within
    while True:
        try:
            rabbit.ctl("await_startup", timeout=within)
            return
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _hand_to_rabbitmq_user(base: Path) -> None:
    """The Debian server drops to the rabbitmq user, which must own its data directory."""
    if os.geteuid() != 0:
        return
    with contextlib.suppress(KeyError):
        user = pwd.getpwnam("rabbitmq")
        for path in (base, *base.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)


def consumed_queues(namespace: str) -> set[str]:
    """Every queue some pipeline service of a stack in ``namespace`` consumes from."""
    from prsnl_common.broker import SUBSCRIPTIONS, Topology
    from prsnl_common.settings import CommonSettings

    topology = Topology(CommonSettings(namespace=namespace))
    queues = {
        topology.queue_name(service, event.routing_key)
        for service, events in SUBSCRIPTIONS.items()
        for event in events
    }
    return queues | {topology.dead_lettered_queue().name}
