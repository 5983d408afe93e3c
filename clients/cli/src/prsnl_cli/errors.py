"""What can go wrong in the client, and the exit code each outcome gives scripts.

Every failure is a :class:`CliError` carrying its :class:`ExitCode`; the API's
problem answers become :class:`ApiProblem` with the stable ``code`` and the
``detail`` the gateway sent, so a script can tell a refused link from a wrong
key or an unreachable server by the exit status alone.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit statuses of ``prsnl`` (documented in ``prsnl --help`` and the README)."""

    OK = 0
    FAILED = 1  # an item ended failed (save/retry --wait), or has no video to get
    USAGE = 2  # wrong arguments or options (Click's own code for usage errors)
    AUTH = 3  # no key, an unknown or revoked key, a refused signed link (401/403)
    NOT_FOUND = 4  # no such item for this key (404)
    REFUSED = 5  # the API refused the link or the request (422, 413, 415)
    NETWORK = 6  # the API cannot be reached, timed out or is unavailable (502-504)
    CONFLICT = 7  # the item's state does not allow it: not ready, not retryable (409, 416)
    LIMITED = 8  # a rate or stream limit of the API (429)
    SERVER = 9  # the API failed (500) or answered something unexpected
    INTERRUPTED = 130  # Ctrl-C


EXIT_CODE_HELP = """Exit codes: 0 ok; 1 an item failed (or has no video yet); 2 usage error;
3 no key, wrong or revoked key, refused signed link; 4 unknown id; 5 link or request
refused by the API; 6 API unreachable or unavailable; 7 the item's state does not allow
it (not ready, not retryable); 8 rate or stream limit; 9 server error; 130 interrupted."""


class CliError(Exception):
    """A failure to report on stderr and end with ``exit_code``."""

    exit_code: ExitCode = ExitCode.SERVER

    def __init__(self, message: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class NetworkError(CliError):
    """The API could not be reached, or the connection broke."""

    exit_code = ExitCode.NETWORK


class ItemFailed(CliError):
    """An item ended failed (or has no playable video)."""

    exit_code = ExitCode.FAILED


class ApiProblem(CliError):
    """A problem answer (RFC 9457) of the API, with its stable ``code``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{detail} [{code}, HTTP {status}]", exit_code_of(status))
        self.status = status
        self.code = code
        self.detail = detail

    def as_dict(self) -> dict[str, object]:
        return {"status": self.status, "code": self.code, "detail": self.detail}


def exit_code_of(status: int) -> ExitCode:
    """The exit code for an HTTP error status of the API."""
    if status in (401, 403):
        return ExitCode.AUTH
    if status == 404:
        return ExitCode.NOT_FOUND
    if status in (409, 416):
        return ExitCode.CONFLICT
    if status == 429:
        return ExitCode.LIMITED
    if status in (502, 503, 504):
        return ExitCode.NETWORK
    if 400 <= status < 500:
        return ExitCode.REFUSED
    return ExitCode.SERVER
