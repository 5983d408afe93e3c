"""Classify yt-dlp's failures into coded pipeline errors: retry what may pass, fail the rest.

yt-dlp reports almost everything as ``DownloadError`` with a human message, the
real cause hanging below it (``exc_info``, ``cause``, ``__cause__``). The
functions here read that chain into plain :class:`FailureFacts` (messages, type
names, HTTP status) and classify the facts with ordered rules, so the table is
unit-testable with nothing but strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from prsnl_common.errors import PermanentError, PipelineError, TransientError
from prsnl_common.netguard import BlockedAddressError

MAX_MESSAGE_LENGTH = 500
# Raised by our byte-cap progress hook inside the child; see ytdlp_child.ByteCapExceeded.
BYTE_CAP_EXCEPTION = "ByteCapExceeded"
# Raised inside the child when yt-dlp would hand network work to another program;
# see ytdlp_guard.ExternalProgramRefused.
EXTERNAL_PROGRAM_EXCEPTION = "ExternalProgramRefused"

_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
_BUG_REPORT_TAIL = re.compile(r";?\s*please report this issue on .*$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class FailureFacts:
    """What a failure says about itself: messages and exception type names, outermost first."""

    messages: tuple[str, ...]
    type_names: tuple[str, ...] = ()
    http_status: int | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.messages)


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    code: str
    retryable: bool


def _rules(code: str, retryable: bool, *patterns: str) -> list[_Rule]:
    return [_Rule(re.compile(p, re.IGNORECASE), code, retryable) for p in patterns]


# Checked in order; the first match wins. Login walls come before "unavailable" because
# sites phrase them as "Video unavailable. This video is private" or "... login required".
MESSAGE_RULES: tuple[_Rule, ...] = (
    *_rules(
        "unsupported_scheme",
        False,
        r"file:// URLs are disabled",
        r"Unsupported url scheme",
        r"No connection adapters were found",
    ),
    # A 200 with nothing in it: asking again gets nothing again.
    *_rules(
        "empty_download",
        False,
        r"\bDid not get any data blocks\b",
        r"\bThe downloaded file is empty\b",
    ),
    *_rules(
        "insufficient_disk",
        True,
        r"No space left on device",
        r"\[Errno 28\]",
        r"Disk quota exceeded",
    ),
    *_rules(
        "source_forbidden",
        False,
        r"\bprivate video\b",
        r"\bthis (?:video|account|post) is private\b",
        r"\b(?:log ?in|sign ?in)(?: is)? required\b",
        r"\brequires? (?:a )?(?:log ?in|sign ?in|authentication|account|subscription)\b",
        r"\bsign in to confirm\b",
        r"\buse --cookies\b",
        r"\bmembers?[- ]only\b",
        r"\bage[- ]restricted\b|\bconfirm your age\b|\bage verification\b",
        r"\bavailable (?:in|from) your (?:country|region|location)\b",
        r"\bgeo[- ]?restrict",
        r"\bprotected (?:tweet|account)s?\b",
        r"\bDRM[- ]protected\b|\bhas DRM\b",
        r"\byou (?:do not|don't) have (?:permission|access)\b",
    ),
    *_rules(
        "source_unavailable",
        True,
        r"\btoo many requests\b",
        r"\brate[- ]?limit",
        r"\btry again later\b",
        r"\btemporarily unavailable\b",
        r"\bservice unavailable\b",
    ),
    *_rules(
        "source_not_found",
        False,
        r"\bvideo unavailable\b",
        r"\b(?:video|post|content|tweet|media) (?:is |has been )?"
        r"(?:no longer available|removed|deleted)\b",
        r"\bhas been removed\b",
        r"\bdoes not exist\b",
        r"\baccount (?:has been )?(?:terminated|suspended)\b",
        r"\b(?:post|video|tweet) not found\b",
    ),
    *_rules(
        "unsupported_url",
        False,
        r"\bUnsupported URL\b",
        r"\bNo suitable extractor\b",
        r"\bNo video formats found\b",
        r"\bRequested format is not available\b",
        r"\bis not a valid URL\b",
        r"\bno video (?:could be found|in this|was found)\b",
        r"\bdoes not (?:contain|have) (?:a |any )?(?:video|media)\b",
        r"\blive streams? cannot be saved\b",
        r"\bnot currently live\b|\bPremieres in\b|\blive event will begin\b",
    ),
    *_rules(
        "network_error",
        True,
        r"\btimed? ?out\b",
        r"\bConnection (?:refused|reset|aborted)\b",
        r"\bRemote end closed connection\b",
        r"\bFailed to establish a new connection\b",
        r"\bFailed to resolve\b|\bName or service not known\b",
        r"\bTemporary failure in name resolution\b",
        r"\bNetwork is unreachable\b|\bNo route to host\b",
        r"\bbytes read, \d+ more expected\b",
        r"\bDownloaded \d+ bytes, expected \d+ bytes\b",
        r"\bcontent too short\b",
        r"\bIncompleteRead\b",
        r"\bfragment \d+ not found, unable to continue\b",
        r"\bCERTIFICATE_VERIFY_FAILED\b|\bSSL\b",
    ),
)

# Exception types that mean the connection failed, whatever the message says.
NETWORK_TYPES = frozenset(
    {
        "TransportError",
        "IncompleteRead",
        "ContentTooShortError",
        "ConnectionError",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "ConnectionAbortedError",
        "TimeoutError",
        "SSLError",
        "ProxyError",
    }
)


def facts_from_exception(exc: BaseException) -> FailureFacts:
    """Walk an exception's cause chain the way yt-dlp builds it and collect the facts."""
    messages: list[str] = []
    type_names: list[str] = []
    status: int | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        messages.append(str(current))
        type_names.append(type(current).__name__)
        code = getattr(current, "status", None)
        if status is None and isinstance(code, int) and 100 <= code <= 599:
            status = code
        current = _next_in_chain(current)
    return FailureFacts(tuple(messages), tuple(type_names), status)


def _next_in_chain(exc: BaseException) -> BaseException | None:
    # DownloadError keeps the original in exc_info, ExtractorError in cause; Python in the rest.
    exc_info = getattr(exc, "exc_info", None)
    if (
        isinstance(exc_info, tuple)
        and len(exc_info) == 3
        and isinstance(exc_info[1], BaseException)
        and exc_info[1] is not exc
    ):
        return exc_info[1]
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    return exc.__cause__ or exc.__context__


def clean_message(text: str) -> str:
    """yt-dlp's message without its ``ERROR:`` prefix, carriage returns and bug-report plea."""
    text = text.replace("\r", "").strip()
    text = _BUG_REPORT_TAIL.sub("", text)
    text = re.sub(r"^(?:ERROR:\s*)+", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > MAX_MESSAGE_LENGTH:
        text = text[: MAX_MESSAGE_LENGTH - 1] + "…"
    return text or "yt-dlp failed without a message"


def http_status_of(facts: FailureFacts) -> int | None:
    """The HTTP status behind the failure, from the exception or from yt-dlp's message."""
    if facts.http_status is not None:
        return facts.http_status
    for message in facts.messages:
        found = _HTTP_STATUS.search(message)
        if found:
            return int(found.group(1))
    return None


def error_for_status(status: int, message: str) -> PipelineError | None:
    """The pipeline error an HTTP error status means (None for statuses that are not errors)."""
    if status in (404, 410):
        return PermanentError("source_not_found", message)
    if status in (401, 403, 451):
        return PermanentError("source_forbidden", message)
    if status in (408, 425, 429) or 500 <= status <= 599:
        return TransientError("source_unavailable", message)
    if 400 <= status <= 499:
        return PermanentError("download_failed", message)
    return None


def classify_failure(facts: FailureFacts) -> PipelineError:
    """The pipeline error for a yt-dlp failure; unknown failures are retried as download_failed."""
    message = clean_message(facts.messages[0] if facts.messages else "")
    text = facts.text
    if BlockedAddressError.MARKER in text:
        return PermanentError("blocked_address", _blocked_message(facts))
    if EXTERNAL_PROGRAM_EXCEPTION in facts.type_names:
        return PermanentError("external_program_refused", message)
    if BYTE_CAP_EXCEPTION in facts.type_names:
        return PermanentError("too_large", message)
    status = http_status_of(facts)
    if status is not None:
        error = error_for_status(status, message)
        if error is not None:
            return error
    for rule in MESSAGE_RULES:
        if rule.pattern.search(text):
            kind = TransientError if rule.retryable else PermanentError
            return kind(rule.code, message)
    if NETWORK_TYPES.intersection(facts.type_names):
        return TransientError("network_error", message)
    return TransientError("download_failed", message)


def _blocked_message(facts: FailureFacts) -> str:
    # The guard's own sentence names the host and address; the wrappers around it add nothing.
    for message in reversed(facts.messages):
        if message.startswith(BlockedAddressError.MARKER):
            return "A connection was refused by the address guard: " + clean_message(
                message.removeprefix(BlockedAddressError.MARKER + ": ")
            )
    return clean_message(facts.messages[0])


def summarize(messages: Iterable[str], limit: int = 5) -> tuple[str, ...]:
    """The last ``limit`` distinct cleaned messages (yt-dlp's warnings, for the logs)."""
    unique = list(dict.fromkeys(clean_message(m) for m in messages if m.strip()))
    return tuple(unique[-limit:])
