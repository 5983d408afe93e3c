"""Command line of the downloader: ``prsnl-downloader`` (or ``python -m prsnl_downloader``)."""

from __future__ import annotations

import argparse
import sys
import textwrap

from pydantic import ValidationError

from prsnl_common.settings import CommonSettings
from prsnl_downloader.settings import DownloaderSettings

DESCRIPTION = """PRSNL Media downloader: consumes url.captured, downloads the link with yt-dlp
in warm, killable child processes and stores the original in the media store,
then publishes video.downloaded (progress as video.download.progress). Run as
many replicas as needed: they share one queue as competing consumers."""


# The shared settings this service reads (it has no database).
COMMON_VARIABLES = (
    "rabbitmq_url",
    "namespace",
    "media_root",
    "ssrf_allowlist",
    "retry_delays",
    "max_attempts",
    "delivery_limit",
    "log_level",
    "log_format",
)


def environment_help() -> str:
    """The environment variables the downloader reads, with their meaning and defaults."""
    entries: list[tuple[str, str | None, object]] = []
    for name, field in DownloaderSettings.model_fields.items():
        variable = f"PRSNL_DOWNLOADER_{name.upper()}"
        if name == "max_video_size_mb":
            variable += " or MAX_VIDEO_SIZE_MB"
        entries.append((variable, field.description, field.default))
    for name in COMMON_VARIABLES:
        field = CommonSettings.model_fields[name]
        entries.append((f"PRSNL_{name.upper()}", field.description, field.default))
    lines = ["environment variables:"]
    for variable, description, default in entries:
        lines.append(f"  {variable} (default: {default!s})")
        if description:
            lines.extend(
                textwrap.wrap(description, 76, initial_indent="      ", subsequent_indent="      ")
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, read the settings and run the worker until SIGTERM."""
    argparse.ArgumentParser(
        prog="prsnl-downloader",
        description=DESCRIPTION,
        epilog=environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    try:
        settings = DownloaderSettings()
        common = CommonSettings()
    except ValidationError as error:
        sys.exit(f"prsnl-downloader: invalid configuration\n{error}")
    # Imported here, not at the top: each yt-dlp child process re-imports this module
    # as its __main__ (multiprocessing's spawn), and needs none of the broker code.
    from prsnl_common.worker import run_worker
    from prsnl_downloader.app import SERVICE, make_setup

    run_worker(
        SERVICE,
        common,
        make_setup(settings),
        metrics_port=settings.metrics_port,
        min_free_bytes=lambda: settings.min_free_bytes,
    )


if __name__ == "__main__":
    main()
