"""Serving the web config: basic auth, client-certificate SANs and extra response headers.

The schema and the TLS context are built once at start-up (exporter.webconfig); what is here
runs on every request, so it only compares what a client sent with what was loaded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import bcrypt

from exporter import logs
from exporter.webconfig import WebConfig, normalize_san

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from _typeshed import OptExcInfo

REALM = "veeam-em-exporter"
# bcrypt reads at most 72 bytes of a password; Go and htpasswd silently ignore the rest, while
# the bcrypt package (5.x) raises instead. Truncating keeps the toolkit's behaviour.
_BCRYPT_MAX_PASSWORD = 72

_log = logs.get_logger("web")


def peer_allowed(peer_cert: Mapping[str, object] | None, allowed: frozenset[str]) -> bool:
    """Whether a verified client certificate has one of the allowed SANs (DNS, IP, email, URI)."""
    if not allowed:
        return True
    if not peer_cert:
        return False
    names = peer_cert.get("subjectAltName", ())
    if not isinstance(names, tuple):
        return False
    for entry in names:
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], str):
            kind, value = entry
            if (normalize_san(value) if kind == "IP Address" else value) in allowed:
                return True
    return False


def wrap_app(app: WSGIApplication, config: WebConfig) -> WSGIApplication:
    """``app`` behind the web config's basic auth and extra response headers."""
    if config.basic_auth_users:
        app = BasicAuth(app, config.basic_auth_users)
    if config.headers:
        app = _with_headers(app, config.headers)
    return app


def _with_headers(app: WSGIApplication, headers: tuple[tuple[str, str], ...]) -> WSGIApplication:
    names = {name.lower() for name, _ in headers}

    def with_headers(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(
            status: str,
            response_headers: list[tuple[str, str]],
            exc_info: OptExcInfo | None = None,
            /,
        ) -> Callable[[bytes], object]:
            kept = [(n, v) for n, v in response_headers if n.lower() not in names]
            return start_response(status, kept + list(headers), exc_info)

        return app(environ, start)

    return with_headers


class BasicAuth:
    """WSGI middleware: every path needs the credentials of one of ``users``.

    A bcrypt check costs around 100 ms of CPU by design, too much for every scrape, so
    successful checks are remembered: keyed by an HMAC of the exact username and password
    sent, so that any other password (or user) misses the cache and is checked in full.
    """

    CACHE_SIZE = 256

    def __init__(
        self, app: WSGIApplication, users: Mapping[str, bytes], realm: str = REALM
    ) -> None:
        self._app = app
        self._users = dict(users)
        self._challenge = f'Basic realm="{realm}"'
        # Per process and never stored, so the cache keys are useless outside this process.
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_lock = threading.Lock()
        # One bcrypt at a time: a burst of bad attempts must not take every core.
        self._bcrypt_lock = threading.Lock()
        self._decoy: bytes | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.authorized(environ.get("HTTP_AUTHORIZATION")):
            return self._app(environ, start_response)
        _log.debug(
            "unauthorized request",
            path=environ.get("PATH_INFO") or "/",
            client=environ.get("REMOTE_ADDR", ""),
        )
        body = b"Unauthorized\n"
        start_response(
            "401 Unauthorized",
            [
                ("WWW-Authenticate", self._challenge),
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

    def authorized(self, header: str | None) -> bool:
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        raw_user, password = credentials
        try:
            user = raw_user.decode("utf-8")
        except UnicodeDecodeError:
            return False
        hashed = self._users.get(user)
        key = hmac.new(self._key, raw_user + b":" + password, hashlib.sha256).digest()
        if hashed is not None and self._cached(key):
            return True
        with self._bcrypt_lock:
            if hashed is None:
                # Spend the same time on an unknown user, so timing does not reveal the names.
                _checkpw(password, self._decoy_hash())
                return False
            if self._cached(key):
                return True  # checked by another thread while this one waited
            if not _checkpw(password, hashed):
                return False
        with self._cache_lock:
            self._cache[key] = None
            if len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return True

    def _cached(self, key: bytes) -> bool:
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return True
        return False

    def _decoy_hash(self) -> bytes:
        if self._decoy is None:
            cost = max(int(h[4:6]) for h in self._users.values())
            self._decoy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
        return self._decoy


def _basic_credentials(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user, password


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], hashed)
    except ValueError:
        return False
