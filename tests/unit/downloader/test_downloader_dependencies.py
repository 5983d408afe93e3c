"""The downloader's environment: a JS runtime for YouTube; no HTTP stack the guard misses."""

from __future__ import annotations

import importlib.util

from yt_dlp.utils._jsruntime import DenoJsRuntime


def test_a_javascript_runtime_is_available_to_yt_dlp() -> None:
    # YouTube's signature and n challenges need one; yt-dlp enables Deno by default.
    info = DenoJsRuntime().info
    assert info is not None and info.supported, info


def test_no_request_handler_resolves_names_outside_python() -> None:
    # curl_cffi (impersonation) resolves through libcurl, past the connect-time
    # guard on socket.getaddrinfo; it must not be installed.
    assert importlib.util.find_spec("curl_cffi") is None
