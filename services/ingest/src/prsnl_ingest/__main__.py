"""Command line of the gateway: serve the API, create API keys, apply migrations."""

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
    commands.add_parser("migrate", help="create the database if needed and apply migrations")
    args = parser.parse_args(argv)

    common = CommonSettings()
    setup_logging("ingest", level=common.log_level, fmt=common.log_format)
    if args.command == "create-key":
        owner_id, api_key = asyncio.run(_create_key(common, args.owner, args.label))
        print(api_key)
        print(f"owner {args.owner} ({owner_id})", file=sys.stderr)
    elif args.command == "migrate":
        applied = asyncio.run(_migrate(common))
        print("\n".join(applied) if applied else "up to date")
    else:
        import uvicorn

        from prsnl_ingest.app import create_app

        settings = IngestSettings()
        host = getattr(args, "host", None) or settings.host
        port = getattr(args, "port", None) or settings.port
        uvicorn.run(
            create_app(settings, common),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )


async def _migrate(common: CommonSettings) -> list[str]:
    from prsnl_common.db import ensure_database, migrate
    from prsnl_ingest.app import MIGRATIONS

    await ensure_database(common.database_url)
    return await migrate(common.database_url, MIGRATIONS)


async def _create_key(common: CommonSettings, owner: str, label: str) -> tuple[object, str]:
    from prsnl_common.db import create_pool
    from prsnl_ingest.catalog import create_owner_key

    await _migrate(common)
    pool = await create_pool(common.database_url, max_size=2)
    try:
        return await create_owner_key(pool, owner, label)
    finally:
        await pool.close()


if __name__ == "__main__":
    main()
