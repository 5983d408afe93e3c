"""Recognise a link's platform, find the platform's video id, and normalise the URL.

The normalised URL and the (platform, video id) pair are what de-duplication
compares, so two spellings of one video — ``youtu.be/ID``, ``youtube.com/shorts/ID``,
``m.youtube.com/watch?v=ID&si=...`` — become the same item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from prsnl_common.events import Platform

# Query parameters that only track the sharer; dropped from every URL.
TRACKING_PARAMS = re.compile(
    r"^(utm_.*|fbclid|gclid|dclid|msclkid|igsh|igshid|si|feature|ref|ref_src|ref_url|"
    r"s|t_ref|_r|_t|is_from_webapp|sender_device|share_.*|mc_[a-z]+|yclid|spm)$"
)

PLATFORM_DOMAINS: dict[str, tuple[str, ...]] = {
    "youtube": ("youtube.com", "youtu.be", "youtube-nocookie.com"),
    "instagram": ("instagram.com", "instagr.am"),
    "twitter": ("twitter.com", "x.com"),
    "tiktok": ("tiktok.com",),
}
DIRECT_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".ts", ".mp3", ".m4a")

_YOUTUBE_ID = r"([A-Za-z0-9_-]{11})"
_PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    "youtube": (
        re.compile(rf"^/(?:shorts|embed|live|v)/{_YOUTUBE_ID}(?:[/?]|$)"),
        re.compile(rf"^/{_YOUTUBE_ID}$"),  # youtu.be/<id>
    ),
    "instagram": (re.compile(r"^/(?:[A-Za-z0-9_.]+/)?(?:p|reel|reels|tv)/([A-Za-z0-9_-]+)"),),
    "twitter": (re.compile(r"^/(?:[A-Za-z0-9_]+|i/web|i)/status(?:es)?/(\d+)"),),
    "tiktok": (re.compile(r"^/@[^/]+/(?:video|photo)/(\d+)"), re.compile(r"^/v/(\d+)")),
}


@dataclass(frozen=True)
class Classified:
    platform: Platform
    video_id: str | None
    normalized_url: str


def host_matches(host: str, domains: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


def platform_of_host(host: str) -> Platform | None:
    for name, domains in PLATFORM_DOMAINS.items():
        if host_matches(host, domains):
            return name  # type: ignore[return-value]
    return None


def classify(url: str) -> Classified:
    """Platform, video id and canonical URL of an already validated http(s) URL."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().rstrip(".")
    platform: Platform = platform_of_host(host) or "other"
    path = re.sub(r"/{2,}", "/", parts.path or "/")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    video_id: str | None = None

    if platform == "youtube":
        ids = [v for k, v in query if k == "v" and re.fullmatch(_YOUTUBE_ID, v)]
        video_id = ids[0] if ids else _match(platform, path)
        if video_id:
            return Classified(platform, video_id, f"https://www.youtube.com/watch?v={video_id}")
    elif platform == "twitter":
        video_id = _match(platform, path)
        if video_id:
            return Classified(platform, video_id, f"https://x.com/i/status/{video_id}")
    elif platform == "instagram":
        video_id = _match(platform, path)
        if video_id:
            return Classified(platform, video_id, f"https://www.instagram.com/p/{video_id}/")
    elif platform == "tiktok":
        video_id = _match(platform, path)
        if video_id:
            return Classified(platform, video_id, f"https://www.tiktok.com/@_/video/{video_id}")
    else:
        lowered = path.lower()
        if lowered.endswith(".m3u8"):
            platform = "hls"
        elif lowered.endswith(DIRECT_EXTENSIONS):
            platform = "direct"

    kept = sorted((k, v) for k, v in query if not TRACKING_PARAMS.match(k.lower()))
    netloc = host if ":" not in host else f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    if parts.port and parts.port != default_port:
        netloc = f"{netloc}:{parts.port}"
    if len(path) > 1:
        path = path.rstrip("/")
    normalized = urlunsplit((parts.scheme.lower(), netloc, path, urlencode(kept), ""))
    return Classified(platform, video_id, normalized)


def _match(platform: str, path: str) -> str | None:
    for pattern in _PATTERNS[platform]:
        found = pattern.search(path)
        if found:
            return found.group(1)
    return None
