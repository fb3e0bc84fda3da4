"""Why a poll failed: the reasons of ``veeam_em_poll_errors_total`` and the error carrying one.

The client raises :class:`PollError`, the poller counts it by its reason, and the
self-metrics create one series per reason for every server up front. All three import the
reasons from here, so the list is written once and nothing here needs a network library.
"""

from __future__ import annotations

from exporter.redact import redact

REASONS: tuple[str, ...] = ("connection", "timeout", "tls", "auth", "http", "parse")


class PollError(Exception):
    """A failed poll, classified by one of REASONS; str() is safe to show (no secrets).

    The message is redacted when the error is made: it may quote an EM's answer, and an EM
    may echo the token or the credentials back.
    """

    reason: str
    message: str

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown poll error reason {reason!r}")
        message = redact(message)
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"PollError({self.reason!r}, {self.message!r})"


class LogonRefused(PollError):
    """The EM refused the logon itself (401 or 403 to the credentials; reason ``auth``).

    The only failure that counts towards suspending logons: a token refused after an
    accepted logon, a resource the account's role may not read, or a password file that
    cannot be read (nothing was sent) say nothing about whether the password is wrong.
    """

    def __init__(self, message: str) -> None:
        super().__init__("auth", message)

    def __repr__(self) -> str:
        return f"LogonRefused({self.message!r})"


class Forbidden(PollError):
    """A resource answered 403 to a token the caller keeps (reason ``auth``): the account's
    role may not read it. Not a refused logon, so it never counts towards a suspension."""

    def __init__(self, message: str) -> None:
        super().__init__("auth", message)

    def __repr__(self) -> str:
        return f"Forbidden({self.message!r})"


class StatusError(PollError):
    """The EM answered with an error status other than 401/403 (reason ``http``).

    ``status`` lets a caller tell the one answer it expects from the rest: a lookup of a
    session the EM no longer has answers 404.
    """

    status: int

    def __init__(self, status: int, message: str) -> None:
        super().__init__("http", message)
        self.status = status

    def __repr__(self) -> str:
        return f"StatusError({self.status}, {self.message!r})"
