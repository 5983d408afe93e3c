"""Operator cookies per platform (D10): each job gets only its own platform's cookies.

An operator drops ``<platform>.txt`` (Netscape format, as browsers' export
extensions write it) into ``cookies_dir``. A job for that platform gets a
filtered copy in its scratch directory holding only cookies whose domain is one
of the platform's hosts, so a stray line for another site never leaves, and a
job for any other platform gets no cookie file at all. yt-dlp may write the
jar back when it finishes; it writes to the copy, which goes with the scratch
directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from prsnl_common.platforms import PLATFORM_DOMAINS, host_matches

COOKIE_FILE_NAME = "cookies.txt"
NETSCAPE_HEADER = "# Netscape HTTP Cookie File"
# Browsers' exports mark HttpOnly cookies by prefixing the domain; the line is a cookie,
# not a comment.
HTTP_ONLY_PREFIX = "#HttpOnly_"
NETSCAPE_FIELDS = 7


def cookie_domain(line: str) -> str | None:
    """The domain of a Netscape cookie line, or None for comments, blanks and malformed lines."""
    text = line.rstrip("\r\n")
    if text.startswith(HTTP_ONLY_PREFIX):
        text = text[len(HTTP_ONLY_PREFIX) :]
    elif not text.strip() or text.lstrip().startswith("#"):
        return None
    fields = text.split("\t")
    if len(fields) != NETSCAPE_FIELDS:
        return None
    domain = fields[0].strip().lstrip(".").lower()
    return domain or None


def filter_cookies(text: str, domains: tuple[str, ...]) -> list[str]:
    """The cookie lines of ``text`` whose domain is one of ``domains`` or below them."""
    kept = []
    for line in text.splitlines():
        domain = cookie_domain(line)
        if domain is not None and host_matches(domain, domains):
            kept.append(line.rstrip("\r\n"))
    return kept


def prepare_cookie_file(platform: str, cookies_dir: Path | None, workdir: Path) -> Path | None:
    """Write the platform's filtered cookie jar into ``workdir``; None when there is none to use."""
    domains = PLATFORM_DOMAINS.get(platform)
    if cookies_dir is None or domains is None:
        return None
    source = cookies_dir / f"{platform}.txt"
    try:
        text = source.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    lines = filter_cookies(text, domains)
    if not lines:
        return None
    target = workdir / COOKIE_FILE_NAME
    # Cookies are credentials: readable by the service's user only, from the first byte.
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join([NETSCAPE_HEADER, "", *lines]) + "\n")
    return target
