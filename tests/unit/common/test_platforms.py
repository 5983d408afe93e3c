"""Platform recognition, video ids and URL normalisation used for de-duplication."""

from __future__ import annotations

import pytest

from prsnl_common.platforms import classify, host_matches

YT = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


@pytest.mark.parametrize(
    ("url", "platform", "video_id", "normalized"),
    [
        ("https://youtu.be/dQw4w9WgXcQ?si=abc", "youtube", "dQw4w9WgXcQ", YT),
        ("https://m.youtube.com/watch?v=dQw4w9WgXcQ&feature=share", "youtube", "dQw4w9WgXcQ", YT),
        ("https://www.youtube.com/shorts/dQw4w9WgXcQ", "youtube", "dQw4w9WgXcQ", YT),
        ("https://youtube.com/embed/dQw4w9WgXcQ?start=3", "youtube", "dQw4w9WgXcQ", YT),
        ("https://twitter.com/jack/status/20?s=20", "twitter", "20", "https://x.com/i/status/20"),
        (
            "https://x.com/i/status/1790000000000000000",
            "twitter",
            "1790000000000000000",
            "https://x.com/i/status/1790000000000000000",
        ),
        (
            "https://www.instagram.com/reel/Cabc123/?igsh=xx",
            "instagram",
            "Cabc123",
            "https://www.instagram.com/p/Cabc123/",
        ),
        (
            "https://instagram.com/someone/p/Cabc123",
            "instagram",
            "Cabc123",
            "https://www.instagram.com/p/Cabc123/",
        ),
        (
            "https://www.tiktok.com/@user/video/7234567890123456789?is_from_webapp=1",
            "tiktok",
            "7234567890123456789",
            "https://www.tiktok.com/@_/video/7234567890123456789",
        ),
        ("https://vm.tiktok.com/ZMabc/", "tiktok", None, "https://vm.tiktok.com/ZMabc"),
        (
            "http://127.0.0.1:8080/files/a.mp4?b=2&a=1#frag",
            "direct",
            None,
            "http://127.0.0.1:8080/files/a.mp4?a=1&b=2",
        ),
        (
            "HTTP://Example.COM:80/x/index.m3u8?utm_source=mail",
            "hls",
            None,
            "http://example.com/x/index.m3u8",
        ),
        ("https://vimeo.com/76979871/", "other", None, "https://vimeo.com/76979871"),
    ],
)
def test_classify(url: str, platform: str, video_id: str | None, normalized: str) -> None:
    result = classify(url)
    assert (result.platform, result.video_id, result.normalized_url) == (
        platform,
        video_id,
        normalized,
    )


def test_lookalike_hosts_are_not_the_platform() -> None:
    assert not host_matches("notyoutube.com", ("youtube.com",))
    assert host_matches("music.youtube.com", ("youtube.com",))
    assert classify("https://evil-youtube.com/watch?v=dQw4w9WgXcQ").platform == "other"
