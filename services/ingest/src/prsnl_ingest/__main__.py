"""Command line of the gateway: serve the API, create, list and revoke API keys, quotas, migrate."""

from __future__ import annotations

import argparse
import asyncio
import sys

from prsnl_common.observability import setup_logging
from prsnl_common.settings import CommonSettings
from prsnl_ingest.settings import IngestSettings

DESCRIPTION = """PRSNL Media gateway: capture API, catalog, queries and streaming.

Settings come from the environment: PRSNL_DATABASE_URL, PRSNL_RABBITMQ_URL,
PRSNL_MEDIA_ROOT, PRSNL_NAMESPACE, PRSNL_SSRF_ALLOWLIST and PRSNL_INGEST_* (see
the README for every variable)."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="prsnl-ingest",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the HTTP API and the catalog (default)")
    serve.add_argument("--host", help="override PRSNL_INGEST_HOST")
    serve.add_argument("--port", type=int, help="override PRSNL_INGEST_PORT")
    key = commands.add_parser("create-key", help="create an owner (if new) and print a new API key")
    key.add_argument("--owner", required=True, help="owner name, e.g. alice")
    key.add_argument("--label", default="", help="what the key is for")
    key.add_argument(
        "--role",
        choices=("owner", "admin"),
        default="owner",
        help="owner (default) sees its own usage; admin also sees every owner's storage",
    )
    listing = commands.add_parser(
        "list-keys", help="list API keys: id, owner, label, created, last used or revoked"
    )
    listing.add_argument("--owner", help="only this owner's keys")
    revoke = commands.add_parser(
        "revoke-key",
        help="revoke an API key; every gateway replica refuses it within a second",
    )
    revoke.add_argument("key", help="the key itself, or its id from list-keys")
    quota = commands.add_parser(
        "set-quota",
        help="override an owner's quotas (PRSNL_INGEST_QUOTA_* are the defaults)",
        description="Set an owner's limits. A size takes a K, M, G or T suffix (powers of "
        "1024); 0 means unlimited; 'default' goes back to the PRSNL_INGEST_QUOTA_* default.",
    )
    quota.add_argument("--owner", required=True, help="owner name")
    quota.add_argument("--bytes", dest="max_bytes", default="default", help="e.g. 20G, 0, default")
    quota.add_argument(
        "--captures-per-day", dest="max_captures", default="default", help="e.g. 50, 0, default"
    )
    retention = commands.add_parser(
        "set-retention",
        help="set an owner's retention policy (off by default; neither limit turns it off)",
    )
    retention.add_argument("--owner", required=True, help="owner name")
    retention.add_argument(
        "--older-than-days", type=int, help="remove finished items older than this many days"
    )
    retention.add_argument(
        "--max-size", help="remove the oldest finished items while the owner stores more (20G)"
    )
    applying = commands.add_parser(
        "apply-retention",
        help="remove what the retention policies say; prints owner, item, created, bytes, why",
    )
    applying.add_argument(
        "--dry-run", action="store_true", help="list what would be removed, remove nothing"
    )
    commands.add_parser("migrate", help="create the database if needed and apply migrations")
    args = parser.parse_args(argv)

    common = CommonSettings()
    setup_logging("ingest", level=common.log_level, fmt=common.log_format)
    if args.command == "create-key":
        owner_id, api_key = asyncio.run(_create_key(common, args.owner, args.label, args.role))
        print(api_key)
        print(f"owner {args.owner} ({owner_id})", file=sys.stderr)
    elif args.command == "list-keys":
        for line in asyncio.run(_list_keys(common, args.owner)):
            print(line)
    elif args.command == "revoke-key":
        revoked = asyncio.run(_revoke_key(common, args.key))
        if revoked is None:
            sys.exit("no such key (or the id prefix matches several keys)")
        print(f"revoked {revoked}")
    elif args.command == "set-quota":
        try:
            limits = (_limit(args.max_bytes, sizes=True), _limit(args.max_captures, sizes=False))
        except ValueError as exc:
            sys.exit(str(exc))
        if not asyncio.run(_set_quota(common, args.owner, *limits)):
            sys.exit(f"no owner named {args.owner!r} (create-key makes one)")
        print(f"quota of {args.owner}: bytes {_shown(limits[0])}, captures/day {_shown(limits[1])}")
    elif args.command == "set-retention":
        try:
            max_bytes = _limit(args.max_size, sizes=True) if args.max_size else None
        except ValueError as exc:
            sys.exit(str(exc))
        if args.older_than_days is not None and args.older_than_days <= 0:
            sys.exit("--older-than-days must be a positive number of days")
        if not asyncio.run(_set_retention(common, args.owner, args.older_than_days, max_bytes)):
            sys.exit(f"no owner named {args.owner!r} (create-key makes one)")
        print(f"retention of {args.owner}: days {args.older_than_days}, bytes {max_bytes}")
    elif args.command == "apply-retention":
        for line in asyncio.run(_apply_retention(common, dry_run=args.dry_run)):
            print(line)
    elif args.command == "migrate":
        applied = asyncio.run(_migrate(common))
        print("\n".join(applied) if applied else "up to date")
    else:
        from prsnl_ingest.serving import serve as serve_api

        settings = IngestSettings()
        host = getattr(args, "host", None) or settings.host
        port = getattr(args, "port", None) or settings.port
        serve_api(settings, common, host, port)


async def _migrate(common: CommonSettings) -> list[str]:
    from prsnl_common.db import ensure_database, migrate
    from prsnl_ingest.app import MIGRATIONS

    await ensure_database(common.database_url)
    return await migrate(common.database_url, MIGRATIONS)


async def _create_key(
    common: CommonSettings, owner: str, label: str, role: str
) -> tuple[object, str]:
    from prsnl_common.db import create_pool
    from prsnl_ingest.catalog import create_owner_key

    await _migrate(common)
    pool = await create_pool(common.database_url, max_size=2)
    try:
        return await create_owner_key(pool, owner, label, role)
    finally:
        await pool.close()


async def _list_keys(common: CommonSettings, owner: str | None) -> list[str]:
    from prsnl_common.db import create_pool
    from prsnl_ingest.catalog import list_keys

    await _migrate(common)
    pool = await create_pool(common.database_url, max_size=2)
    try:
        keys = await list_keys(pool, owner)
    finally:
        await pool.close()
    lines = ["id\towner\tlabel\tcreated\tlast used\trevoked"]
    for key in keys:
        used = _stamp(key.last_used_at) or "never"
        revoked = _stamp(key.revoked_at) or "-"
        created = _stamp(key.created_at)
        lines.append(f"{key.key_id}\t{key.owner}\t{key.label}\t{created}\t{used}\t{revoked}")
    return lines


async def _revoke_key(common: CommonSettings, key: str) -> str | None:
    from prsnl_common.db import create_pool
    from prsnl_ingest.catalog import revoke_key

    await _migrate(common)
    pool = await create_pool(common.database_url, max_size=2)
    try:
        info = await revoke_key(pool, key)
    finally:
        await pool.close()
    return None if info is None else f"{info.key_id} ({info.owner}, {info.label or 'no label'})"


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _limit(text: str, *, sizes: bool) -> int | None:
    """A quota limit from the command line: None for 'default', else a count (or size)."""
    if text.strip().lower() == "default":
        return None
    value = text.strip().upper().removesuffix("B") if sizes else text.strip()
    unit = value[-1:] if sizes and value[-1:] in _UNITS else ""
    try:
        number = float(value[: len(value) - len(unit)]) if sizes else int(value)
    except ValueError:
        kind = "a size such as 500M or 20G" if sizes else "a whole number"
        raise ValueError(f"{text!r} is not {kind}, 0 or 'default'") from None
    if number < 0:
        raise ValueError(f"{text!r}: a limit cannot be negative")
    return int(number * _UNITS[unit])


def _shown(limit: int | None) -> str:
    return "default" if limit is None else ("unlimited" if limit == 0 else str(limit))


async def _set_quota(
    common: CommonSettings, owner: str, max_bytes: int | None, max_captures: int | None
) -> bool:
    from prsnl_common.db import create_pool
    from prsnl_ingest.quotas import set_limits

    await _migrate(common)
    pool = await create_pool(common.database_url, max_size=2)
    try:
        return await set_limits(pool, owner, max_bytes, max_captures)
    finally:
        await pool.close()


async def _set_retention(
    common: CommonSettings, owner: str, days: int | None, max_bytes: int | None
) -> bool:
    from prsnl_common.db import create_pool
    from prsnl_ingest.retention import set_policy

    await _migrate(common)
    pool = await create_pool(common.database_url, max_size=2)
    try:
        return await set_policy(pool, owner, days, max_bytes or None)
    finally:
        await pool.close()


async def _apply_retention(common: CommonSettings, *, dry_run: bool) -> list[str]:
    from prsnl_common.db import create_pool
    from prsnl_common.store import open_store
    from prsnl_ingest import retention

    await _migrate(common)
    pool = await create_pool(common.database_url, max_size=2)
    store = open_store(common)
    try:
        removals = await (retention.plan if dry_run else retention.apply)(pool, store)
    finally:
        await pool.close()
    return [("would-remove\t" if dry_run else "removed\t") + r.line() for r in removals]


def _stamp(moment: object) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S%z}" if moment is not None else ""


if __name__ == "__main__":
    main()
