"""ffmpeg input options that keep every ffmpeg and ffprobe we run on local files of known kinds.

Shared by the transcoder (every file it probes or converts) and the downloader
(the ffmpeg and ffprobe yt-dlp runs to merge and fix up what it downloaded), so
no ffmpeg anywhere opens a network connection of its own, outside the address
guard, or follows a playlist or reference named inside an untrusted file.
"""

from __future__ import annotations

from collections.abc import Mapping

# Demuxers an untrusted file may be read with. These are the containers video sites and
# phones actually deliver (MP4/MOV/3GP, Matroska/WebM, MPEG-TS/PS, FLV, AVI, ASF/WMV) and
# plain audio files (for the audio-only profile). Deliberately absent: every demuxer that
# opens further URLs or files named inside the input (hls, dash, concat, ffmetadata with
# references, image2 patterns, tee, sdp/rtp, data/bin/tty text "formats"), plus image and
# subtitle demuxers, which are not videos. The mov demuxer's external data references are
# off by default (enable_drefs=0) and stay off.
FORMAT_WHITELIST = ",".join(
    (
        "mov",
        "mp4",
        "m4a",
        "3gp",
        "3g2",
        "mj2",
        "matroska",
        "webm",
        "mpegts",
        "mpeg",
        "flv",
        "avi",
        "asf",
        "ogg",
        "mp3",
        "aac",
        "wav",
        "flac",
    )
)

# Applied to every input we open: local files only (no http, pipe, tcp, data, crypto ...),
# and only the demuxers above; ffmpeg 5.1 checks both when opening the input.
INPUT_OPTIONS: Mapping[str, str] = {
    "protocol_whitelist": "file",
    "format_whitelist": FORMAT_WHITELIST,
}


def input_arguments() -> list[str]:
    """:data:`INPUT_OPTIONS` as command-line arguments, to be placed before an input."""
    return [arg for key, value in INPUT_OPTIONS.items() for arg in (f"-{key}", value)]
