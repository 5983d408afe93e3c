"""Keep yt-dlp's network work inside the download child, where the connect-time guard sees it.

The connect-time guard patches ``socket.getaddrinfo`` of this Python process;
a program yt-dlp starts (ffmpeg for HLS it cannot decrypt, aria2c, rtmpdump)
resolves and connects by itself, around it. So in the child, after yt-dlp is
imported and before any job:

- external downloaders report themselves unavailable, so yt-dlp's own choice
  falls back to its native Python downloaders (AES-128 HLS is decrypted with
  pycryptodomex, or yt-dlp's slower pure-Python AES without it);
- any downloader yt-dlp still selects that is not one of the native ones, and
  any external downloader started from inside a native one, is refused with
  :class:`ExternalProgramRefused`;
- every ffmpeg and ffprobe yt-dlp runs for post-processing (merging, fix-ups)
  gets the transcoder's input options: local files of known containers only,
  so a downloaded "video" that is really a playlist cannot make it connect.

The patched names are checked at start-up: a yt-dlp upgrade that moves them
makes the child fail to start instead of silently running unguarded.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from prsnl_common.ffmpeg_inputs import input_arguments

# yt-dlp's downloaders that do their network work in this process, through its own
# request handlers (and so through getaddrinfo).
NATIVE_DOWNLOADERS = frozenset({"HttpFD", "HlsFD", "DashSegmentsFD", "IsmFD", "F4mFD", "MhtmlFD"})
EXTERNAL_PROGRAM_REFUSED = "external_program_refused"


class ExternalProgramRefused(Exception):
    """yt-dlp wanted a program other than its native downloaders to fetch from the network.

    Its name is :data:`~prsnl_downloader.classify.EXTERNAL_PROGRAM_EXCEPTION`,
    so the classification recognises it even if yt-dlp wraps it.
    """


def install_native_only() -> None:
    """Apply the three rules of the module docstring to the imported yt-dlp."""
    ydl_module: Any = importlib.import_module("yt_dlp.YoutubeDL")
    external: Any = importlib.import_module("yt_dlp.downloader.external")
    rtmp: Any = importlib.import_module("yt_dlp.downloader.rtmp")
    websocket: Any = importlib.import_module("yt_dlp.downloader.websocket")
    ffmpeg_pp: Any = importlib.import_module("yt_dlp.postprocessor.ffmpeg")

    external_downloaders: list[Any] = [
        value
        for value in vars(external).values()
        if isinstance(value, type) and issubclass(value, external.ExternalFD)
    ]
    for downloader in external_downloaders:
        # Several of them (FFmpegFD, CurlFD) define their own check.
        downloader.available = classmethod(_unavailable)
    # Every downloader that starts a program: the external ones, rtmpdump, ffmpeg sinks.
    for starts_a_program in (external.ExternalFD, rtmp.RtmpFD, websocket.FFmpegSinkFD):
        starts_a_program.real_download = _refuse_download
    ydl_module.get_suitable_downloader = _native_only(ydl_module.get_suitable_downloader)
    ffmpeg_pp.Popen = _local_inputs_popen(ffmpeg_pp.Popen)


def _unavailable(cls: type, path: object = None) -> bool:
    return False


def _refuse_download(self: Any, filename: str, info_dict: dict[str, Any]) -> bool:
    raise ExternalProgramRefused(
        f"yt-dlp wanted {type(self).__name__} (an external program) to download this stream; "
        "only its native downloaders may connect"
    )


def _native_only(select: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap yt-dlp's downloader selection so it never returns a non-native downloader."""

    def select_native(*args: Any, **kwargs: Any) -> Any:
        downloader = select(*args, **kwargs)
        if downloader is not None and downloader.__name__ not in NATIVE_DOWNLOADERS:
            raise ExternalProgramRefused(
                f"yt-dlp selected {downloader.__name__} for this stream; only its native "
                "downloaders may connect"
            )
        return downloader

    return select_native


def local_inputs_only(command: Sequence[str]) -> list[str]:
    """An ffmpeg/ffprobe command line with the local-files-only options before every input.

    ffprobe has one input, so the options go first; ffmpeg's input options apply
    to the next ``-i``, so they go before each one. Any other program is refused.
    """
    program = os.path.basename(str(command[0]))
    if program.startswith("ffprobe"):
        return [command[0], *input_arguments(), *command[1:]]
    if not program.startswith("ffmpeg"):
        raise ExternalProgramRefused(f"yt-dlp's post-processing wanted to run {program!r}")
    guarded = [command[0]]
    for argument in command[1:]:
        if argument == "-i":
            guarded += input_arguments()
        guarded.append(argument)
    return guarded


def _local_inputs_popen(popen: type) -> type:
    """yt-dlp's Popen, rewriting each ffmpeg/ffprobe command with :func:`local_inputs_only`."""

    class LocalInputsPopen(popen):  # type: ignore[misc]
        def __init__(self, args: Sequence[str], *remaining: Any, **kwargs: Any) -> None:
            super().__init__(local_inputs_only(args), *remaining, **kwargs)

    return LocalInputsPopen
