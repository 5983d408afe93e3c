"""Command line of the transcoder."""

from __future__ import annotations

import argparse

from prsnl_common.settings import CommonSettings
from prsnl_common.worker import run_worker
from prsnl_transcoder.app import SERVICE, make_setup
from prsnl_transcoder.settings import TranscoderSettings

DESCRIPTION = """PRSNL Media transcoder: ffprobe the downloaded original, copy or remux it
when it is already web-playable (H.264/AAC MP4), transcode it otherwise, and make
thumbnails. Settings: PRSNL_TRANSCODER_* (concurrency, max height, compression
threshold, time limits, thumbnail widths, the free disk below which it pauses) and
the shared PRSNL_* connection settings."""


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="prsnl-transcoder", description=DESCRIPTION).parse_args(argv)
    settings = TranscoderSettings()
    common = CommonSettings()
    run_worker(
        SERVICE,
        common,
        make_setup(settings, common),
        metrics_port=settings.metrics_port,
        min_free_bytes=lambda: settings.min_free_bytes,
    )


if __name__ == "__main__":
    main()
