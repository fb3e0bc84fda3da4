"""A password file, read the same way wherever it is read.

The configuration reads it at load, the client before every logon (so a rotated secret is used
without a restart) and the poller to notice a change while logons are suspended. Secret files
are commonly written with a trailing newline (echo, editors, Kubernetes secrets), so
surrounding whitespace is stripped; a BOM is dropped. Messages name the file, never its content.
"""

from __future__ import annotations

from pathlib import Path

# A password is a few bytes; a bigger file is a wrong path, and reading stops there.
LIMIT = 64 * 1024


class SecretFileError(ValueError):
    """Why a password file gives no password."""

    def __init__(self, path: str, detail: str, *, unreadable: bool = False) -> None:
        self.path = path
        self.detail = detail
        self.unreadable = unreadable
        super().__init__(self.describe())

    def describe(self, what: str = "") -> str:
        """``cannot read PATH: why`` or ``PATH is empty``; ``what`` names the file first."""
        name = f"{what} {self.path}".strip()
        return f"cannot read {name}: {self.detail}" if self.unreadable else f"{name} {self.detail}"


def read_secret_file(path: str) -> str:
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(LIMIT + 1)
    except OSError as exc:
        raise SecretFileError(path, exc.strerror or type(exc).__name__, unreadable=True) from None
    if len(data) > LIMIT:
        raise SecretFileError(path, "is larger than 64KiB")
    try:
        secret = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise SecretFileError(path, "is not valid UTF-8") from None
    if not secret:
        raise SecretFileError(path, "is empty")
    return secret
