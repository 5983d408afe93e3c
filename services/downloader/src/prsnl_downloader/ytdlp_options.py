"""The yt-dlp options of one job: format choice, safety switches and the per-platform table.

Pure functions of a :class:`~prsnl_downloader.protocol.DownloadRequest`, so the
options are unit-tested without yt-dlp; the child adds its logger and hooks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from prsnl_downloader.protocol import DownloadRequest, output_template

# Our own retry with back-off (the consumer's retry tiers) handles transient errors;
# yt-dlp's retries only smooth over a single dropped connection.
YTDLP_RETRIES = 2


@dataclass(frozen=True)
class PlatformOptions:
    """What one platform gets beyond the common options."""

    extractor_args: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    http_headers: dict[str, str] = field(default_factory=dict)


# Only documented yt-dlp extractor arguments and plain headers; a platform's cookie file
# is added separately (see cookies.py) and only for that platform's job.
PLATFORM_OPTIONS: dict[str, PlatformOptions] = {
    # We never keep subtitles, so skip building the list of auto-translated ones.
    "youtube": PlatformOptions(extractor_args={"youtube": {"skip": ["translated_subs"]}}),
    # Instagram's CDN and API expect to be called from its own pages, as a browser would.
    "instagram": PlatformOptions(http_headers={"Referer": "https://www.instagram.com/"}),
    # Same for X/Twitter's video CDN; the GraphQL API (yt-dlp's default) is left alone.
    "twitter": PlatformOptions(http_headers={"Referer": "https://x.com/"}),
    # TikTok's video URLs are tied to a page visit; a missing Referer gets 403 on some CDNs.
    "tiktok": PlatformOptions(http_headers={"Referer": "https://www.tiktok.com/"}),
}


def video_format(max_height: int) -> str:
    """Prefer H.264 video with AAC audio at most ``max_height`` high, then anything at that height.

    Each alternative is tried in order; the last two take whatever exists, so a
    source without height or codec information (a direct link) still downloads,
    and the transcoder makes it web-playable.
    """
    h = max_height
    return "/".join(
        (
            f"bv*[height<={h}][vcodec^=avc1]+ba[acodec^=mp4a]",
            f"b[height<={h}][vcodec^=avc1]",
            f"bv*[height<={h}]+ba",
            f"b[height<={h}]",
            "bv*+ba",
            "b",
        )
    )


def audio_format() -> str:
    """AAC audio if there is a separate track, any audio track, else the whole file."""
    return "ba[acodec^=mp4a]/ba/b"


def format_sort(max_height: int, audio_only: bool) -> list[str]:
    """Tie-breakers within one alternative: closest to the height, H.264, AAC, MP4 containers."""
    if audio_only:
        return ["acodec:aac", "ext:m4a"]
    return [f"res:{max_height}", "vcodec:h264", "acodec:aac", "ext:mp4:m4a"]


def build_params(request: DownloadRequest) -> dict[str, Any]:
    """yt-dlp's parameters for ``request``, without the logger and hooks the child adds."""
    platform = PLATFORM_OPTIONS.get(request.platform, PlatformOptions())
    params: dict[str, Any] = {
        # Safety: no local files, one video, names we choose, nothing read from or
        # written to the home directory.
        "enable_file_urls": False,
        "noplaylist": True,
        "playlist_items": "1",
        # An absolute template: yt-dlp puts its .part and intermediate files next to it.
        "outtmpl": {"default": output_template(request.workdir)},
        "restrictfilenames": True,
        "overwrites": True,
        "continuedl": False,
        "cachedir": False,
        "writeinfojson": False,
        "writethumbnail": False,
        "writesubtitles": False,
        # Quiet: everything goes to the logger the child installs.
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "color": "no_color",
        # Direct connections only: yt-dlp otherwise honours HTTP(S)_PROXY from the
        # environment, and through a proxy the connect-time SSRF guard would see only
        # the proxy's address, never the target's.
        "proxy": "",
        # Network bounds.
        "socket_timeout": request.socket_timeout,
        "retries": YTDLP_RETRIES,
        "fragment_retries": YTDLP_RETRIES,
        "extractor_retries": YTDLP_RETRIES,
        # A fragment that cannot be fetched fails the job instead of leaving a hole.
        "skip_unavailable_fragments": False,
        # No "max_filesize": yt-dlp applies it to each HTTP response, so for HLS/DASH to
        # each fragment, and its fragment downloader refuses silently ("fragment not
        # found"). The child's progress hook enforces the cap on the whole job instead,
        # from Content-Length as soon as it is known and from the bytes received.
        # Native HLS/DASH downloaders report every fragment to the progress hook,
        # which the byte cap and the stall watchdog rely on.
        "external_downloader": {"default": "native"},
    }
    if request.audio_only:
        params["format"] = audio_format()
    else:
        params["format"] = video_format(request.max_height)
        params["merge_output_format"] = "mp4"
    params["format_sort"] = format_sort(request.max_height, request.audio_only)
    if platform.extractor_args:
        # yt-dlp may adjust what it is given; the shared table must stay as written.
        params["extractor_args"] = copy.deepcopy(platform.extractor_args)
    if platform.http_headers:
        params["http_headers"] = dict(platform.http_headers)
    if request.cookie_file is not None:
        params["cookiefile"] = str(request.cookie_file)
    return params
