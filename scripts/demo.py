"""Fill a running PRSNL Media (``make run``) with sample items made from generated clips.

The clips are generated with ffmpeg's test sources, served from a small web
server on 127.0.0.1 (the local allow-list of ``make run`` admits it) and
captured through the real API, so each one goes through download, processing
and the catalog like any link would.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.clips import make_clip, make_hls  # noqa: E402
from tests.support.media_server import MediaServer  # noqa: E402

# A fixed port, so make run's allow-list can open this one port of 127.0.0.1 and no other.
DEMO_MEDIA_PORT = 8765

SAMPLES = [
    ("files/demo-720p-h264.mp4", "720p H.264/AAC (copied, no re-encode)"),
    ("files/demo-vp9.webm", "VP9/Opus WebM (transcoded to H.264/AAC)"),
    ("files/demo-phone-portrait.mp4", "phone clip with rotation metadata (upright output)"),
    ("files/demo-short.mp4", "2-second clip (thumbnails from a frame that exists)"),
    ("hls/demo-hls/index.m3u8", "HLS stream"),
]


def make_samples(directory: Path) -> None:
    make_clip(directory / "demo-720p-h264.mp4", duration=8, width=1280, height=720)
    make_clip(
        directory / "demo-vp9.webm", duration=5, width=854, height=480, vcodec="vp9", acodec="opus"
    )
    make_clip(directory / "demo-phone-portrait.mp4", duration=4, width=960, height=540, rotate=90)
    make_clip(directory / "demo-short.mp4", duration=2, width=640, height=360)
    make_hls(directory / "demo-hls", duration=6, width=640, height=360)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="base URL of the gateway")
    parser.add_argument(
        "--key-file",
        type=Path,
        default=ROOT / "var" / "api-key",
        help="file holding the API key (make run writes var/api-key)",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for all")
    parser.add_argument(
        "--media-port",
        type=int,
        default=DEMO_MEDIA_PORT,
        help="port of the sample media server on 127.0.0.1; make run's allow-list opens only "
        "this port (both follow DEMO_MEDIA_PORT)",
    )
    args = parser.parse_args(argv)

    if not args.key_file.exists():
        parser.error(f"{args.key_file} not found: start the services with `make run` first")
    headers = {"Authorization": f"Bearer {args.key_file.read_text().strip()}"}
    try:
        httpx.get(f"{args.api}/readyz", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        parser.error(f"the API at {args.api} is not ready ({exc}); is `make run` running?")

    media_dir = ROOT / "var" / "demo-media"
    media_dir.mkdir(parents=True, exist_ok=True)
    print("generating sample clips with ffmpeg ...", flush=True)
    make_samples(media_dir)
    with MediaServer(media_dir, port=args.media_port) as server:
        ids: dict[str, str] = {}
        for path, label in SAMPLES:
            url = server.url(f"/{path}")
            response = httpx.post(
                f"{args.api}/api/v1/captures", json={"url": url}, headers=headers, timeout=30
            )
            if response.status_code not in (200, 202):
                print(f"  refused: {label}: {response.json().get('detail')}", file=sys.stderr)
                continue
            ids[response.json()["id"]] = label
            print(f"  captured {label}")
        deadline = time.monotonic() + args.timeout
        pending = dict(ids)
        while pending and time.monotonic() < deadline:
            for item_id in list(pending):
                item = httpx.get(
                    f"{args.api}/api/v1/items/{item_id}", headers=headers, timeout=10
                ).json()
                if item["status"] in ("ready", "failed"):
                    detail = (
                        f"{item['width']}x{item['height']} {item['video_codec']}/"
                        f"{item['audio_codec']} ({item['action']})"
                        if item["status"] == "ready"
                        else item["error"]["message"]
                    )
                    print(f"  {item['status']:6} {pending.pop(item_id)}: {detail}")
            time.sleep(0.5)
    if pending:
        print(f"{len(pending)} sample(s) not finished in {args.timeout:.0f}s", file=sys.stderr)
        return 1
    print(f"\n{len(ids)} sample items: curl -H 'Authorization: Bearer ...' {args.api}/api/v1/items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
