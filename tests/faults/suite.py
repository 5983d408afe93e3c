"""Faults injected into a running stack while captures are in flight, and the checks after each.

The stack runs on a private RabbitMQ node and a private PostgreSQL cluster, so
stopping and restarting them touches nothing else on the machine. For every
fault a load of its own (a new owner) keeps captures in flight; once a third
of them is accepted the fault is injected, then the suite waits for every
accepted capture to end and checks what must hold whatever happened:

* lost — an accepted capture without its item;
* duplicated — two items for one link, or a second original of one item;
* stuck — an item neither ready nor failed within the time bound;
* for links sent to the Telegram bot meanwhile: lost without a final answer,
  duplicated with two (or two items);
* left over — a file the catalog does not reference (scratch included) once
  the janitor had its grace; a message still queued or unacknowledged;
  a work queue without a consumer 30 s after the fault.

An item that ends ``failed`` with a code is an accepted outcome; the table
counts them. The suite fails if any of lost, duplicated, stuck or left over is
not zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from bench.report import format_table
from tests.faults.load import Load
from tests.faults.telegram import TELEGRAM_USER, TelegramLoad
from tests.support.clips import make_clip
from tests.support.media_server import MediaServer
from tests.support.postgres import PrivatePostgres, private_postgres
from tests.support.rabbit import PrivateRabbit, consumed_queues, private_rabbit
from tests.support.stack import Stack, running_stack
from tests.support.telegram import TOKEN, FakeBotApi, gateway_env

WORKERS = ("downloader", "transcoder", "storage-janitor", "telegram-gateway")
CONSUMERS_BACK_WITHIN = 30.0
# Short enough that a crashed job's scratch and an orphan are gone within a fault's checks,
# far longer than any job of these small clips.
STACK_SETTINGS = {
    "PRSNL_RETRY_DELAYS": "0.5,1,2,4",
    "PRSNL_JANITOR_SWEEP_INTERVAL_SECONDS": "1",
    "PRSNL_JANITOR_TEMP_TTL_SECONDS": "30",
    "PRSNL_JANITOR_ORPHAN_GRACE_SECONDS": "2",
    "PRSNL_JANITOR_ORPHAN_MIN_AGE_SECONDS": "2",
    "PRSNL_INGEST_CAPTURE_RATE_LIMIT": "100000/minute",
    "PRSNL_INGEST_OUTBOX_POLL_SECONDS": "0.5",
    # The media root is a small tmpfs (when one can be mounted): thresholds to match.
    "PRSNL_DOWNLOADER_MIN_FREE_DISK_MB": "16",
    "PRSNL_TRANSCODER_MIN_FREE_DISK_MB": "16",
}
# The private broker's delivery acknowledgement timeout: far above any job of these clips,
# short enough that a consumer stalled past it is seen within the suite.
CONSUMER_TIMEOUT_S = 20
MEDIA_TMPFS_MB = 512


@dataclass(frozen=True)
class Form:
    """How hard the suite pushes: captures per fault, how many in flight, time bounds."""

    captures: int
    window: int
    settle_s: float
    pause_s: float = 2.0


SHORT = Form(captures=24, window=12, settle_s=240)
FULL = Form(captures=300, window=200, settle_s=600)


@dataclass
class Outcome:
    fault: str
    in_flight: int
    accepted: int
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    left_over: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    recover_s: float = 0.0
    bot: str = ""  # links sent to the Telegram bot answered exactly once, of all sent
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck or self.left_over)


@dataclass
class Harness:
    stack: Stack
    rabbit: PrivateRabbit
    postgres: PrivatePostgres
    media: MediaServer
    clips: Path
    form: Form
    small_disk: bool  # the media root is a tmpfs of its own, which may be filled
    bot_api: FakeBotApi
    telegram_key: str  # the API key of the Telegram user's owner

    # -- faults -----------------------------------------------------------------------------

    def kill(self, service: str) -> None:
        """kill -9 of ``service``, started again after the pause."""
        self.stack.kill(service, signal.SIGKILL)
        time.sleep(self.form.pause_s)
        self.start(service)

    def terminate_all(self) -> None:
        """SIGTERM to every service while it works; all started again after the pause."""
        self.stack.stop_all()
        time.sleep(self.form.pause_s)
        self.start("ingest")
        for service in WORKERS:
            self.start(service)

    def broker_app_restart(self) -> None:
        self.rabbit.stop_app()
        time.sleep(self.form.pause_s)
        self.rabbit.start_app()

    def broker_node_restart(self) -> None:
        self.rabbit.restart_node()

    def database_restart(self) -> None:
        self.postgres.stop()
        time.sleep(self.form.pause_s)
        self.postgres.start()

    def stall(self, service: str) -> None:
        """Freeze ``service`` (SIGSTOP) past the broker's consumer timeout, then let it go."""
        for process in self.stack.processes[service]:
            process.send_signal(signal.SIGSTOP)
        time.sleep(CONSUMER_TIMEOUT_S + 5)
        for process in self.stack.processes[service]:
            process.send_signal(signal.SIGCONT)

    def fill_disk(self) -> None:
        """The media filesystem full (a few KiB left) while downloads and transcodes run."""
        filler = self.stack.media_root / "filler.bin"
        # Written while jobs write too: it stops at 64 KiB free or at ENOSPC, both full.
        with filler.open("wb") as handle, contextlib.suppress(OSError):
            while (left := self._free() - 64 * 1024) > 0:
                handle.write(b"\0" * min(left, 1024 * 1024))
                handle.flush()
        time.sleep(self.form.pause_s * 2)
        filler.unlink()

    def _free(self) -> int:
        return shutil.disk_usage(self.stack.media_root).free

    def start(self, service: str) -> None:
        extra = None
        if service == "telegram-gateway":
            extra = telegram_env(self.bot_api, self.stack, self.telegram_key)
        self.stack.start(service, extra_env=extra)
        if service == "ingest":
            self.stack.wait_ready(timeout=120)

    # -- one run ----------------------------------------------------------------------------

    def run(self, name: str, inject: Callable[[], None]) -> Outcome:
        slug = "".join(c if c.isalnum() else "-" for c in name.lower())
        owner = f"f-{slug}-{uuid.uuid4().hex[:6]}"
        load = Load(
            base_url=self.stack.base_url,
            key=self.stack.create_key(owner),
            clips=self.clips,
            clip="clip.mp4",
            media_url=self.media.url("").rstrip("/"),
            tag=owner,
            total=self.form.captures,
            window=self.form.window,
        )
        load.start()
        telegram = TelegramLoad(
            self.bot_api, self.media.url("").rstrip("/"), owner, max(2, self.form.captures // 6)
        )
        telegram.send_all()
        # The fault strikes with the whole window in flight (or all that was sent, if less).
        full = self.form.window
        _wait(lambda: self._in_flight(load, owner) >= full or load.sent_all, 300, "load")
        in_flight = self._in_flight(load, owner)
        inject()
        fault_over = time.monotonic()
        load.join()
        outcome = Outcome(name, in_flight, len(load.accepted) + telegram.total)
        outcome.notes += [f"refused: {r}" for r in load.refused]
        deadline = fault_over + self.form.settle_s

        def ended() -> bool:
            return self._ended(owner) >= len(load.accepted) and telegram.all_answered()

        finished = _wait(ended, _left(deadline), None)
        outcome.recover_s = time.monotonic() - fault_over
        self._count_items(owner, load, outcome)
        self._count_telegram(telegram, outcome)
        if not finished:
            outcome.notes.append("not every capture ended within the bound")
        outcome.left_over = self._left_over(deadline, outcome)
        self._delete_all(load.key, list(load.accepted))
        self._delete_all(self.telegram_key, self._telegram_items(telegram))
        return outcome

    def _count_telegram(self, telegram: TelegramLoad, outcome: Outcome) -> None:
        """Each link sent to the bot: one item and one final answer."""
        answers = telegram.answers()
        outcome.bot = f"{sum(1 for n in answers.values() if n == 1)}/{len(answers)}"
        outcome.lost += sum(1 for n in answers.values() if n == 0)
        outcome.duplicated += sum(n - 1 for n in answers.values() if n > 1)
        rows = asyncio.run(_fetch(self.stack.database_url, TELEGRAM_ITEMS, list(telegram.urls())))
        per_link = Counter(row["url"] for row in rows)
        outcome.duplicated += sum(n - 1 for n in per_link.values() if n > 1)
        outcome.stuck += sum(1 for r in rows if r["status"] not in ("ready", "failed"))
        outcome.failed += Counter(r["error_code"] for r in rows if r["status"] == "failed")
        if any(n != 1 for n in answers.values()):
            outcome.notes.append(f"telegram answers per link: {sorted(answers.values())}")

    def _telegram_items(self, telegram: TelegramLoad) -> list[str]:
        rows = asyncio.run(_fetch(self.stack.database_url, TELEGRAM_ITEMS, list(telegram.urls())))
        return [str(row["id"]) for row in rows]

    def _delete_all(self, key: str, item_ids: list[str]) -> None:
        """Delete the run's items through the API: the store stays small, and the next
        fault's checks see that deleting left nothing behind either."""
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=self.stack.base_url, headers=headers, timeout=30) as client:
            for item_id in item_ids:
                answer = client.delete(f"/api/v1/items/{item_id}")
                assert answer.status_code in (204, 404), answer.text

    def _ended(self, owner: str) -> int:
        rows = self._items(owner)
        return sum(1 for row in rows if row["status"] in ("ready", "failed"))

    def _items(self, owner: str) -> list[asyncpg.Record]:
        return asyncio.run(_fetch(self.stack.database_url, ITEMS_OF_OWNER, owner))

    def _in_flight(self, load: Load, owner: str) -> int:
        return len(load.accepted) - self._ended(owner)

    def _count_items(self, owner: str, load: Load, outcome: Outcome) -> None:
        rows = {str(row["id"]): row for row in self._items(owner)}
        outcome.lost = sum(1 for item_id in load.accepted if item_id not in rows)
        outcome.stuck = sum(1 for r in rows.values() if r["status"] not in ("ready", "failed"))
        outcome.failed = Counter(r["error_code"] for r in rows.values() if r["status"] == "failed")
        links = Counter(load.accepted.values())
        outcome.duplicated = sum(n - 1 for n in links.values() if n > 1)
        for item_id in rows:
            originals = list((self.stack.media_root / "items" / item_id).glob("original.*"))
            outcome.duplicated += max(0, len(originals) - 1)

    def _left_over(self, deadline: float, outcome: Outcome) -> int:
        """Unreferenced files, queued or unacknowledged messages, queues without a consumer."""
        _wait(lambda: not self._stray_files() and not self._queued(), _left(deadline, 60), None)
        strays, queued = self._stray_files(), self._queued()
        outcome.notes += [f"left file {p}" for p in strays[:5]]
        outcome.notes += [f"left in {q}: {n}" for q, n in queued.items()]
        idle = self._queues_without_consumer()
        outcome.notes += [f"no consumer on {q}" for q in idle]
        return len(strays) + sum(queued.values()) + len(idle)

    def _stray_files(self) -> list[str]:
        keys = {row["k"] for row in asyncio.run(_fetch(self.stack.database_url, KEYS))}
        root = self.stack.media_root
        files = [p for p in root.rglob("*") if p.is_file()]
        return [str(p.relative_to(root)) for p in files if str(p.relative_to(root)) not in keys]

    def _queued(self) -> dict[str, int]:
        """Messages ready or unacknowledged in the stack's queues (retry tiers included)."""
        out = self.rabbit.ctl("list_queues", "name", "messages")
        counts = {}
        for line in out.splitlines():
            name, _, count = line.rpartition("\t")
            if name.startswith(f"{self.stack.namespace}.") and count.isdigit() and int(count):
                counts[name] = int(count)
        return counts

    def _queues_without_consumer(self) -> list[str]:
        expected = consumed_queues(self.stack.namespace)

        def missing() -> list[str]:
            counts = self.rabbit.consumers(f"{self.stack.namespace}.")
            return sorted(q for q in expected if counts.get(q, 0) < 1)

        _wait(lambda: not missing(), CONSUMERS_BACK_WITHIN, None)
        return missing()


ITEMS_OF_OWNER = (
    "SELECT i.id, i.status, i.error_code FROM items i JOIN owners o ON o.id = i.owner_id "
    "WHERE o.name = $1"
)
TELEGRAM_ITEMS = "SELECT id, url, status, error_code FROM items WHERE url = ANY($1::text[])"
KEYS = (
    "SELECT original_key AS k FROM items WHERE original_key IS NOT NULL UNION "
    "SELECT video_key FROM items WHERE video_key IS NOT NULL UNION "
    "SELECT t.value FROM items, jsonb_each_text(coalesce(thumbnail_keys, '{}')) AS t"
)


async def _fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    """One query on a connection of its own; [] while the database is down."""
    try:
        connection = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return []
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


def _wait(condition: Callable[[], bool], within: float, what: str | None) -> bool:
    """Wait up to ``within`` seconds for ``condition``; True if it held. With ``what``, not
    holding is an error."""
    ends = time.monotonic() + within
    while not condition():
        if time.monotonic() > ends:
            if what is not None:
                raise AssertionError(f"{what} not reached within {within:g} s")
            return False
        time.sleep(0.25)
    return True


def _left(deadline: float, at_least: float = 0.0) -> float:
    """Seconds until the monotonic ``deadline``, but at least ``at_least``."""
    return max(at_least, deadline - time.monotonic())


def faults(harness: Harness, form: Form) -> list[tuple[str, Callable[[], None]]]:
    """Every fault, in the order they run."""
    chosen: list[tuple[str, Callable[[], None]]] = [
        (f"kill -9 {service}", lambda s=service: harness.kill(s))  # type: ignore[misc]
        for service in ("ingest", *WORKERS)
    ]
    chosen += [
        ("RabbitMQ stop_app/start_app", harness.broker_app_restart),
        ("RabbitMQ node stop/start", harness.broker_node_restart),
        ("PostgreSQL restart", harness.database_restart),
        ("SIGTERM to every service", harness.terminate_all),
        ("downloader stalled past the consumer timeout", lambda: harness.stall("downloader")),
    ]
    if harness.small_disk:
        chosen.append(("media filesystem full", harness.fill_disk))
    return chosen


@contextmanager
def harness(root: Path, form: Form) -> Iterator[Harness]:
    """A stack on a private broker and database, with a media server of one small clip."""
    with ExitStack() as stack:
        rabbit = stack.enter_context(private_rabbit(consumer_timeout_ms=CONSUMER_TIMEOUT_S * 1000))
        postgres = stack.enter_context(private_postgres())
        clips = root / "clips"
        clips.mkdir(parents=True)
        make_clip(clips / "clip.mp4", duration=2, width=320, height=240)
        media = stack.enter_context(MediaServer(clips))
        small_disk = _mount_tmpfs(root / "stack" / "media", MEDIA_TMPFS_MB)
        if small_disk:
            stack.callback(_unmount, root / "stack" / "media")
        running = stack.enter_context(
            running_stack(
                root / "stack",
                downloaders=1,
                transcoders=1,
                PRSNL_RABBITMQ_URL=rabbit.url,
                PRSNL_DATABASE_URL=f"{postgres.url}/prsnl_faults",
                **STACK_SETTINGS,
            )
        )
        bot_api = stack.enter_context(FakeBotApi(TOKEN))
        key = running.create_key("f-telegram")
        running.start("telegram-gateway", extra_env=telegram_env(bot_api, running, key))
        running.wait_consumers(["telegram-gateway"])
        yield Harness(running, rabbit, postgres, media, clips, form, small_disk, bot_api, key)


def telegram_env(bot_api: FakeBotApi, stack: Stack, key: str) -> dict[str, str]:
    return gateway_env(bot_api, stack, {TELEGRAM_USER: key}, PRSNL_LOG_LEVEL="INFO")


def _mount_tmpfs(path: Path, size_mb: int) -> bool:
    """Mount a tmpfs of ``size_mb`` at ``path``; False where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    command = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)]
    try:
        return subprocess.run(command, capture_output=True, check=False).returncode == 0
    except FileNotFoundError:
        return False


def _unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, check=False)


def table(outcomes: list[Outcome]) -> str:
    """The suite's report: one row per fault, then the notes of each."""
    headers = ["fault", "in flight", "accepted", "lost", "duplicated", "stuck", "left over"]
    headers += ["failed (codes)", "bot answered once", "recovered in"]
    rows = [
        [
            o.fault,
            *(str(n) for n in (o.in_flight, o.accepted, o.lost, o.duplicated, o.stuck)),
            str(o.left_over),
            ", ".join(f"{code} {n}" for code, n in o.failed.items()) or "0",
            o.bot,
            f"{o.recover_s:.1f} s",
        ]
        for o in outcomes
    ]
    notes = [f"  {o.fault}: {note}" for o in outcomes for note in o.notes]
    return "\n".join([format_table(headers, rows), *notes])
