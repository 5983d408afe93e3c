"""Benchmarks of PRSNL Media against raw yt-dlp, ffmpeg and nginx, measured in the same run."""
