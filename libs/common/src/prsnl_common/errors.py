"""The error vocabulary every stage shares: typed pipeline errors with stable codes.

A stage raises :class:`PermanentError` for what retrying cannot fix (unsupported
site, private address, too large, not a video) and :class:`TransientError` for
what may pass (network, 5xx, timeouts). The consumer policy in
:mod:`prsnl_common.consumer` turns them into retries or an ``item.failed``
event; the HTTP edge turns capture errors into problem details. Codes are part
of the public contract: add new ones, never rename.
"""

from __future__ import annotations

ERROR_CODES: dict[str, str] = {
    # capture (HTTP 422 unless stated)
    "invalid_url": "The text is not an absolute http(s) URL.",
    "unsupported_scheme": "Only http and https links are accepted (not file://, ftp://, ...).",
    "credentials_in_url": "The link carries a user name or password; remove them.",
    "blocked_address": "The host is, or resolves to, a private, loopback, link-local or "
    "metadata address that the operator allow-list does not permit.",
    "unresolvable_host": "The host name does not resolve.",
    "invalid_option": "A capture option is out of range (max_height, audio_only).",
    "invalid_request": "The request body or a parameter is malformed: 400 when the body "
    "cannot be decoded (not UTF-8, not JSON, nested too deeply), 422 when it decodes "
    "but does not fit the schema.",
    # auth and lookup
    "unauthorized": "Missing or unknown API key (HTTP 401).",
    "not_found": "No such item for this owner (HTTP 404).",
    "link_invalid": "A signed media link whose signature does not match the item's current "
    "file, or whose key was revoked (HTTP 403).",
    "link_expired": "A signed media link past its expiry; fetch the item again (HTTP 403).",
    "not_retryable": "Only failed items can be retried (HTTP 409).",
    "not_ready": "The item has no playable video yet (HTTP 409).",
    "unknown_profile": "The transcode profile is not one of the documented ones (HTTP 422).",
    "unavailable": "The catalog database is unreachable for a moment; retry (HTTP 503).",
    "range_not_satisfiable": "The requested byte range lies outside the file (HTTP 416).",
    # limits and protocol
    "method_not_allowed": "The path exists but not with this HTTP method (HTTP 405).",
    "payload_too_large": "The request body is larger than the gateway accepts (HTTP 413).",
    "unsupported_media_type": "A JSON body must be sent as Content-Type: application/json "
    "(HTTP 415).",
    "rate_limited": "Too many captures with this API key; wait Retry-After seconds (HTTP 429).",
    "quota_exceeded": "The owner is over a storage quota: the bytes stored or the captures "
    "of the last 24 hours (HTTP 422 at capture; a download that would pass the bytes quota "
    "is stopped and fails with this code). The message names the limit and the numbers.",
    "too_many_streams": "This owner has the most live event streams open that the gateway "
    "allows; close one (HTTP 429).",
    # download stage
    "unsupported_url": "yt-dlp found no video at this link (an HTML page without media, "
    "an unsupported site).",
    "source_not_found": "The source answered 404 or 410.",
    "source_forbidden": "The source refused access (401/403, private or login required).",
    "source_unavailable": "The source answered 429 or 5xx (retried with back-off).",
    "network_error": "Connection failed, reset or timed out (retried with back-off).",
    "too_large": "The video is larger than MAX_VIDEO_SIZE_MB (checked while downloading).",
    "download_timeout": "The download exceeded its hard time limit (retried).",
    "download_stalled": "No progress for the stall window; the job was ended (retried).",
    "empty_download": "The source answered with an empty body: nothing to save (not retried).",
    "source_too_slow": "The source sent less than the minimum rate for the whole stall window "
    "(a trickling or hostile server); not retried.",
    "insufficient_disk": "Free disk below the reserve before starting (retried later).",
    "download_failed": "yt-dlp failed for another reason; the message says which.",
    "external_program_refused": "yt-dlp would have handed the download to an external "
    "program (ffmpeg, aria2c, rtmpdump), which connects outside the address guard.",
    # process stage
    "invalid_media": "The file is truncated, corrupt or not a media file ffprobe can read.",
    "no_video_stream": "The file has no video stream (and audio-only was not requested).",
    "processing_timeout": "ffmpeg exceeded its hard time limit (retried).",
    "processing_stalled": "ffmpeg made no progress for the stall window (retried).",
    "processing_failed": "ffmpeg failed for another reason; the message says which.",
    "source_missing": "The original file named by the event is not in the media store.",
    # any stage
    "dead_lettered": "A message for this item exhausted its deliveries and sits in the "
    "stage's dead-letter queue for an operator to inspect and replay.",
    "store_unavailable": "The object store holding the media did not answer or refused "
    "(down, unreachable, wrong credentials); jobs retry, the API answers 503.",
    "internal_error": "An unexpected error: in a worker after all retries, or in the "
    "gateway (HTTP 500, a defect to report).",
}


class PipelineError(Exception):
    """Base of every error a stage reports with a stable ``code``."""

    retryable: bool = False

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"undocumented error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class PermanentError(PipelineError):
    """Retrying cannot help: fail the item at once."""

    retryable = False


class TransientError(PipelineError):
    """May pass on its own: retry with back-off, then fail the item."""

    retryable = True
