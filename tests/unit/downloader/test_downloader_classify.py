"""Classification of yt-dlp failures into pipeline error codes, from messages and cause chains."""

from __future__ import annotations

import pytest

from prsnl_common.errors import ERROR_CODES, PermanentError, TransientError
from prsnl_downloader.classify import (
    BYTE_CAP_EXCEPTION,
    MAX_MESSAGE_LENGTH,
    FailureFacts,
    classify_failure,
    clean_message,
    error_for_status,
    facts_from_exception,
    http_status_of,
)
from prsnl_downloader.ytdlp_child import ByteCapExceeded

BUG_TAIL = (
    "; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out "
    "the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U"
)

# (yt-dlp's message as it reaches us, expected code, retryable); YouTube writes curly
# apostrophes, spelled \u2019 here.
MESSAGES: list[tuple[str, str, bool]] = [
    (
        "ERROR: [generic] nothere: Unable to download webpage: HTTP Error 404: Not Found "
        "(caused by <HTTPError 404: Not Found>)",
        "source_not_found",
        False,
    ),
    ("ERROR: unable to download video data: HTTP Error 410: Gone", "source_not_found", False),
    (
        "ERROR: [generic] 403: Unable to download webpage: HTTP Error 403: Forbidden "
        "(caused by <HTTPError 403: Forbidden>)",
        "source_forbidden",
        False,
    ),
    (
        "ERROR: unable to download video data: HTTP Error 401: Unauthorized",
        "source_forbidden",
        False,
    ),
    (
        "ERROR: [generic] 429: Unable to download webpage: HTTP Error 429: Too Many Requests "
        "(caused by <HTTPError 429: Too Many Requests>)",
        "source_unavailable",
        True,
    ),
    (
        "ERROR: [generic] 503: Unable to download webpage: HTTP Error 503: Service Unavailable "
        "(caused by <HTTPError 503: Service Unavailable>)",
        "source_unavailable",
        True,
    ),
    (
        "ERROR: unable to download video data: HTTP Error 502: Bad Gateway",
        "source_unavailable",
        True,
    ),
    ("ERROR: unable to download video data: HTTP Error 400: Bad Request", "download_failed", False),
    ("ERROR: Unsupported URL: http://127.0.0.1:8000/page/no-video.html", "unsupported_url", False),
    (
        "ERROR: [generic] clip: Requested format is not available. Use --list-formats for a list "
        "of available formats",
        "unsupported_url",
        False,
    ),
    (
        "ERROR: [twitter] 1234567890: No video could be found in this tweet",
        "unsupported_url",
        False,
    ),
    (
        "ERROR: [youtube] dQw4w9WgXcQ: This live event will begin in 3 hours.",
        "unsupported_url",
        False,
    ),
    (
        "live streams cannot be saved; send the link again once the stream has ended",
        "unsupported_url",
        False,
    ),
    (
        "ERROR: [youtube] dQw4w9WgXcQ: Private video. Sign in if you've been granted access to "
        "this video. Use --cookies-from-browser or --cookies for the authentication.",
        "source_forbidden",
        False,
    ),
    (
        "ERROR: [youtube] dQw4w9WgXcQ: Sign in to confirm your age. This video may be "
        "inappropriate for some users.",
        "source_forbidden",
        False,
    ),
    (
        "ERROR: [youtube] dQw4w9WgXcQ: Sign in to confirm you\u2019re not a bot. Use "
        "--cookies-from-browser or --cookies for the authentication.",
        "source_forbidden",
        False,
    ),
    (
        "ERROR: [youtube] dQw4w9WgXcQ: The uploader has not made this video available in your "
        "country",
        "source_forbidden",
        False,
    ),
    (
        "ERROR: [instagram] C0abcDEFghi: Requested content is not available, rate-limit reached "
        "or login required. Use --cookies, --cookies-from-browser, --username and --password, "
        "--netrc-cmd, or --netrc (instagram) to provide account credentials",
        "source_forbidden",
        False,
    ),
    (
        "ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video is private",
        "source_forbidden",
        False,
    ),
    (
        "ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video has been removed by the "
        "uploader",
        "source_not_found",
        False,
    ),
    (
        "ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This video is no longer available "
        "because the YouTube account associated with this video has been terminated.",
        "source_not_found",
        False,
    ),
    (
        "ERROR: [youtube] dQw4w9WgXcQ: Video unavailable. This content isn\u2019t available, "
        "try again later.",
        "source_unavailable",
        True,
    ),
    (
        "ERROR: \r[download] Got error: 80288 bytes read, 80289 more expected. Giving up after "
        "2 retries",
        "network_error",
        True,
    ),
    (
        "ERROR: [generic] x: Unable to download webpage: HTTPConnection(host='127.0.0.1', "
        "port=1): Failed to establish a new connection: [Errno 111] Connection refused",
        "network_error",
        True,
    ),
    (
        "ERROR: [generic] x: Unable to download webpage: HTTPConnection(host='no-such.invalid', "
        "port=80): Failed to resolve 'no-such.invalid' ([Errno -2] Name or service not known)",
        "network_error",
        True,
    ),
    (
        "ERROR: unable to download video data: HTTPSConnectionPool(host='cdn.example', port=443):"
        " Read timed out. (read timeout=20.0)",
        "network_error",
        True,
    ),
    ("ERROR: fragment 3 not found, unable to continue", "network_error", True),
    ("ERROR: content too short (expected 1000 bytes and served 10)", "network_error", True),
    (
        "ERROR: [generic] clip: Unable to download webpage: HTTPConnection(host='127.0.0.2', "
        "port=40605): Failed to establish a new connection: prsnl-blocked-address: 127.0.0.2 "
        "resolves to 127.0.0.2, which is not allowed",
        "blocked_address",
        False,
    ),
    (
        "file:// URLs are disabled by default in yt-dlp for security reasons. Use "
        "--enable-file-urls to enable at your own risk.",
        "unsupported_scheme",
        False,
    ),
    ("No connection adapters were found for 'file:///etc/passwd'", "unsupported_scheme", False),
    ("ERROR: unable to write data: [Errno 28] No space left on device", "insufficient_disk", True),
    ("ERROR: Postprocessing: Conversion failed!", "download_failed", True),
    (
        "ERROR: [TikTok] 7300000000000000000: Unable to extract universal data for rehydration"
        + BUG_TAIL,
        "download_failed",
        True,
    ),
]


@pytest.mark.parametrize(("message", "code", "retryable"), MESSAGES)
def test_message_is_classified(message: str, code: str, retryable: bool) -> None:
    error = classify_failure(FailureFacts((message,)))
    assert (error.code, error.retryable) == (code, retryable)
    assert error.code in ERROR_CODES
    assert isinstance(error, TransientError if retryable else PermanentError)
    assert not error.message.startswith("ERROR")
    assert "please report this issue" not in error.message


def test_the_blocked_address_marker_wins_over_the_connection_failure_around_it() -> None:
    facts = FailureFacts(
        (
            "ERROR: [generic] clip: Unable to download webpage: Failed to establish a new "
            "connection: prsnl-blocked-address: 10.0.0.5 resolves to 10.0.0.5, which is not "
            "allowed",
            "prsnl-blocked-address: 10.0.0.5 resolves to 10.0.0.5, which is not allowed",
        ),
        ("DownloadError", "BlockedAddressError"),
    )
    error = classify_failure(facts)
    assert error.code == "blocked_address"
    assert error.message == (
        "A connection was refused by the address guard: 10.0.0.5 resolves to 10.0.0.5, which is "
        "not allowed"
    )


def test_the_byte_cap_exception_is_too_large_even_when_wrapped() -> None:
    assert ByteCapExceeded.__name__ == BYTE_CAP_EXCEPTION
    facts = FailureFacts(
        ("ERROR: something went wrong", "The download passed the size limit of 1.0 MiB"),
        ("DownloadError", BYTE_CAP_EXCEPTION),
    )
    assert classify_failure(facts).code == "too_large"


def test_network_exception_types_count_even_without_a_known_message() -> None:
    facts = FailureFacts(
        ("ERROR: unable to download video data: <weird>", "<weird>"),
        ("DownloadError", "TransportError"),
    )
    assert classify_failure(facts).code == "network_error"


def test_the_status_of_the_exception_beats_the_words_of_the_message() -> None:
    # "try again later" alone would be transient, but the server said 404.
    facts = FailureFacts(("Not here, try again later",), ("HTTPError",), http_status=404)
    assert classify_failure(facts).code == "source_not_found"


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (404, "source_not_found", False),
        (410, "source_not_found", False),
        (401, "source_forbidden", False),
        (403, "source_forbidden", False),
        (451, "source_forbidden", False),
        (408, "source_unavailable", True),
        (429, "source_unavailable", True),
        (500, "source_unavailable", True),
        (503, "source_unavailable", True),
        (599, "source_unavailable", True),
        (400, "download_failed", False),
    ],
)
def test_http_status_table(status: int, code: str, retryable: bool) -> None:
    error = error_for_status(status, "message")
    assert error is not None
    assert (error.code, error.retryable) == (code, retryable)


def test_success_and_redirect_statuses_are_not_errors() -> None:
    assert error_for_status(200, "ok") is None
    assert error_for_status(302, "found") is None


def test_status_is_read_from_the_message_when_no_exception_carries_it() -> None:
    assert http_status_of(FailureFacts(("x: HTTP Error 418: I'm a teapot",))) == 418
    assert http_status_of(FailureFacts(("no status here",))) is None


class HTTPError(Exception):
    """Shaped like yt_dlp.networking.exceptions.HTTPError."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP Error {status}")
        self.status = status


class ExtractorError(Exception):
    """Shaped like yt_dlp.utils.ExtractorError: the cause hangs on ``cause``."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.cause = cause


class DownloadError(Exception):
    """Shaped like yt_dlp.utils.DownloadError: the original sits in ``exc_info``."""

    def __init__(self, message: str, original: BaseException) -> None:
        super().__init__(message)
        self.exc_info = (type(original), original, None)


def test_facts_follow_yt_dlps_cause_chain() -> None:
    error = DownloadError(
        "ERROR: [generic] x: Unable to download webpage",
        ExtractorError("Unable to download webpage", HTTPError(403)),
    )
    facts = facts_from_exception(error)
    assert facts.type_names == ("DownloadError", "ExtractorError", "HTTPError")
    assert facts.http_status == 403
    assert classify_failure(facts).code == "source_forbidden"


def test_facts_follow_python_causes_and_stop_at_cycles() -> None:
    inner = ConnectionResetError("Connection reset by peer")
    try:
        try:
            raise inner
        except ConnectionResetError as exc:
            raise RuntimeError("read failed") from exc
    except RuntimeError as outer:
        inner.__context__ = outer  # a cycle, as tracebacks sometimes build
        facts = facts_from_exception(outer)
    assert facts.type_names == ("RuntimeError", "ConnectionResetError")
    assert classify_failure(facts).code == "network_error"


def test_clean_message_strips_yt_dlp_decorations() -> None:
    assert clean_message("ERROR: \r[download] Got error" + BUG_TAIL) == "[download] Got error"
    assert clean_message("  \n ") == "yt-dlp failed without a message"
    long = clean_message("x" * (MAX_MESSAGE_LENGTH * 2))
    assert len(long) == MAX_MESSAGE_LENGTH
    assert long.endswith("…")
