"""Command line of the storage janitor: run the service, or sweep once."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from prsnl_common.observability import setup_logging
from prsnl_common.settings import CommonSettings
from prsnl_common.worker import run_worker
from prsnl_janitor.app import SERVICE, make_setup
from prsnl_janitor.backup import BackupError
from prsnl_janitor.settings import JanitorSettings

DESCRIPTION = """PRSNL Media storage janitor: removes the files of deleted items and
superseded videos, sweeps scratch folders older than PRSNL_JANITOR_TEMP_TTL_SECONDS, finds
files no item references (announced as file.orphaned, removed after
PRSNL_JANITOR_ORPHAN_GRACE_SECONDS) and publishes storage usage as Prometheus metrics on
PRSNL_JANITOR_METRICS_PORT.
Shared settings: PRSNL_DATABASE_URL, PRSNL_RABBITMQ_URL, PRSNL_MEDIA_ROOT, PRSNL_NAMESPACE."""

SWEEP_HELP = """Sweep the media store once, now: remove expired scratch, announce newly found
orphans, remove announced orphans whose grace has passed and that are still unreferenced.
Prints one line per file or scratch folder: action, size in bytes, reason, path, detail.
Actions: removed, announced, kept (with why), waiting (still in its grace), and with
--dry-run would-remove / would-announce."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="prsnl-storage-janitor",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the janitor service (default)")
    sweep = commands.add_parser(
        "sweep",
        help="sweep once and list what was removed",
        description=SWEEP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument(
        "--dry-run", action="store_true", help="change nothing; list what a sweep would do"
    )
    backup = commands.add_parser(
        "backup",
        help="back up the catalog (pg_dump) and every file it references, with checksums",
    )
    backup.add_argument(
        "--to",
        type=Path,
        required=True,
        help="backup directory, or a .tar file (reused: later backups copy only new files; "
        "into a tar they are appended)",
    )
    restore = commands.add_parser(
        "restore", help="restore a backup into an empty install, or --verify it"
    )
    restore.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        help="a backup folder, or a backup directory or .tar file (its newest backup)",
    )
    restore.add_argument(
        "--verify",
        action="store_true",
        help="only check the dump and every file's checksum; restore nothing",
    )
    args = parser.parse_args(argv)
    settings = JanitorSettings()
    common = CommonSettings()
    if args.command in ("backup", "restore"):
        setup_logging(SERVICE, level="WARNING", fmt="text")
        try:
            print(asyncio.run(_backup_or_restore(args, common)))
        except (BackupError, OSError) as exc:
            sys.exit(f"prsnl-storage-janitor {args.command}: {exc}")
        return
    if args.command == "sweep":
        setup_logging(SERVICE, level="WARNING", fmt="text")
        try:
            lines = asyncio.run(_sweep(settings, common, dry_run=args.dry_run))
        except OSError as exc:
            sys.exit(f"cannot sweep: {exc}")
        print("\n".join(lines))
        return
    run_worker(SERVICE, common, make_setup(settings, common), metrics_port=settings.metrics_port)


async def _backup_or_restore(args: argparse.Namespace, common: CommonSettings) -> str:
    from prsnl_common.store import open_store
    from prsnl_janitor import backup

    store = open_store(common)
    started = time.monotonic()
    if args.command == "backup":
        made = await backup.backup(common.database_url, store, args.to)
        missing = f", {len(made.missing)} deleted since the snapshot" if made.missing else ""
        return (
            f"backup {made.backup}: {made.files} files ({made.bytes} bytes), {made.copied} "
            f"copied now{missing}, in {time.monotonic() - started:.1f} s"
        )
    chosen = backup.resolve(args.source)
    source = f"{args.source} ({chosen.stamp})"
    try:
        if args.verify:
            problems = backup.verify(chosen)
            if problems:
                raise BackupError(f"{source} does not verify:\n  " + "\n  ".join(problems))
            return f"backup {source} verifies"
        from prsnl_common.db import ensure_database

        await ensure_database(common.database_url)
        restored = await backup.restore(chosen, common.database_url, store)
    finally:
        chosen.archive.close()
    return f"restored {source}: catalog and {restored} files in {time.monotonic() - started:.1f} s"


async def _sweep(settings: JanitorSettings, common: CommonSettings, *, dry_run: bool) -> list[str]:
    from prsnl_common.broker import EventPublisher, Topology, create_broker
    from prsnl_common.db import create_pool, ensure_database, migrate
    from prsnl_common.store import open_store
    from prsnl_janitor import sweep

    await ensure_database(common.database_url)
    await migrate(common.database_url, sweep.MIGRATIONS)
    store = open_store(common)
    pool = await create_pool(common.database_url, max_size=3)
    try:
        if dry_run:
            findings = await sweep.dry_run(pool, store, settings)
        else:
            broker = create_broker(common)
            topology = Topology(common)
            await broker.connect()
            try:
                await topology.declare(service=SERVICE)
                publish = EventPublisher(broker, topology).publish
                findings = await sweep.sweep_once(pool, store, publish, settings)
            finally:
                await broker.stop()
    finally:
        await pool.close()
    return [f.line() for f in findings]


if __name__ == "__main__":
    main()
