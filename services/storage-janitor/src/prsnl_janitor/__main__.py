"""Command line of the storage janitor."""

from __future__ import annotations

import argparse

from prsnl_common.settings import CommonSettings
from prsnl_common.worker import run_worker
from prsnl_janitor.app import SERVICE, make_setup
from prsnl_janitor.settings import JanitorSettings

DESCRIPTION = """PRSNL Media storage janitor: removes the files of deleted items and
superseded videos, sweeps scratch folders older than PRSNL_JANITOR_TEMP_TTL_SECONDS and
publishes storage usage as Prometheus metrics on PRSNL_JANITOR_METRICS_PORT.
Shared settings: PRSNL_DATABASE_URL, PRSNL_RABBITMQ_URL, PRSNL_MEDIA_ROOT, PRSNL_NAMESPACE."""


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="prsnl-storage-janitor", description=DESCRIPTION).parse_args(argv)
    settings = JanitorSettings()
    run_worker(
        SERVICE,
        CommonSettings(),
        make_setup(settings, CommonSettings()),
        metrics_port=settings.metrics_port,
    )


if __name__ == "__main__":
    main()
