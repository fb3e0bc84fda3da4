"""The values only the exporter's configuration has: an EM base URL and a CA bundle."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from exporter.schema import INVALID, FilePath, Invalid, SchemaChecker, Text


def normalize_url(value: str) -> str:
    """``scheme://host[:port]`` from an EM base URL, or ValueError saying what is wrong.

    Messages never quote the whole URL: it may carry credentials (``https://user:pw@host``).
    """
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if any(char.isspace() for char in text):
        raise ValueError("must not contain whitespace")
    if "://" not in text:
        raise ValueError("must start with http:// or https:// (e.g. https://em01.example.com:9398)")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"scheme must be http or https, got {parts.scheme!r}")
    if "@" in parts.netloc:
        raise ValueError("must not contain credentials; use username and password instead")
    host = parts.hostname
    if not host:
        raise ValueError("has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port; it must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("has an invalid port; it must be a number from 1 to 65535")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError("must not have a query string or fragment")
    path = parts.path
    if path.rstrip("/").lower() == "/api":
        raise ValueError(
            "must not end with /api: the exporter appends /api itself; "
            "give only scheme://host:port (e.g. https://em01.example.com:9398)"
        )
    if path not in ("", "/"):
        # An "@" here means a mangled user:password@host; do not quote it back.
        shown = f", got {path!r}" if "@" not in path else ""
        raise ValueError(f"must not have a path{shown}; give only scheme://host:port")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}"


class Url(Text):
    """An EM base URL, kept as ``scheme://host[:port]``."""

    def check(self, value: object, minimum: float | None = None) -> str:
        return normalize_url(super().check(value))


class CABundle(FilePath):
    """A PEM CA bundle: loaded once here, rather than failing every poll's TLS handshake."""

    def read(self, checker: SchemaChecker, value: object, where: str) -> str | Invalid:
        name = super().read(checker, value, where)
        if isinstance(name, Invalid) or checker.read_file(where, name) is None:
            return INVALID
        try:
            ssl.create_default_context().load_verify_locations(cafile=name)
        except (ssl.SSLError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            checker.add(where, f"{name} is not a PEM CA certificate bundle ({reason})")
            return INVALID
        return name
