"""REST client for one Veeam Backup Enterprise Manager: logon, token reuse, fetch, logout.

The client hands the (gzip-decoded) body of ``GET /api/systemSessions?format=Entity``, or of
any other ``GET /api/...`` a feed asks for (:meth:`EMClient.get`), to a caller-supplied
``consume`` callable and never parses session data itself. The feeds of one server share its
client from their own threads: they share one logon session too, and a logon in progress is
waited for rather than repeated. Every request is
bounded: ``timeout`` is a deadline for the whole exchange, body included, and the decoded body
is capped at ``max_answer_size`` (see exporter.emhttp). Redirects are never followed. Every
failure of a poll leaves as a :class:`~exporter.reasons.PollError` whose reason is one of
``REASONS`` and whose message is built here from known-safe pieces, so it can be logged as it
is.

Secrets handled here: the password, the ``Authorization`` header, the ``X-RestSvcSessionId``
token, and the logon ``SessionId`` (the token is base64 of that GUID, so it is as sensitive).
"""

from __future__ import annotations

import base64
import contextlib
import http
import http.client
import http.cookiejar
import json
import re
import socket
import ssl
import threading
import urllib.parse
import urllib.request
import warnings
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, Final, TypeVar, cast

import requests
import requests.auth
import urllib3.exceptions
from lxml import etree

from exporter import __version__, emhttp
from exporter.config import ServerConfig
from exporter.emformat import HARDENED_XML, fold_keys, strip_bom
from exporter.logs import get_logger
from exporter.reasons import Forbidden, LogonRefused, PollError, StatusError
from exporter.redact import register_credentials, register_token
from exporter.secretfile import SecretFileError, read_secret_file
from exporter.sizes import format_size

T = TypeVar("T")

TOKEN_HEADER: Final = "X-RestSvcSessionId"  # noqa: S105 - a header name, not a secret
LOGON_PATH: Final = "/api/sessionMngr/?v=latest"
SESSIONS_PATH: Final = "/api/systemSessions?format=Entity"
LOGOUT_PATH: Final = "/api/logonSessions/"

_LOGON_OP: Final = "POST /api/sessionMngr/"
_FETCH_OP: Final = "GET /api/systemSessions"
_LOGOUT_OP: Final = "DELETE /api/logonSessions/"
# Error and logon bodies are small; a misbehaving server must not make us buffer more.
_SMALL_BODY_LIMIT: Final = 64 * 1024
_EM_MESSAGE_LIMIT: Final = 300
_AUTH_STATUSES: Final = frozenset({401, 403})
_USERINFO_RE: Final = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]*@")
_WHITESPACE_RE: Final = re.compile(r"\s+")
_IO_ERRORS: Final = (
    urllib3.exceptions.HTTPError,
    requests.RequestException,
    http.client.HTTPException,
    OSError,
)

PasswordSource = Callable[[], str]


def password_source(server: ServerConfig) -> PasswordSource:
    """What logs on with: the inline password, or ``password_file`` read afresh each time,
    so that a rotated secret is used without a restart. A failure is PollError("auth") naming
    the file, never its content."""
    if not server.password_file:
        inline = server.password
        return lambda: inline
    path = server.password_file

    def read() -> str:
        try:
            return read_secret_file(path)
        except SecretFileError as exc:
            raise PollError("auth", _one_line(exc.describe("password_file"))) from None

    return read


class _BasicAuth(requests.auth.AuthBase):
    """Basic credentials whose repr() never shows them."""

    def __init__(self, username: str, password: str) -> None:
        pair = f"{username}:{password}"
        # requests' own HTTPBasicAuth only takes latin-1; fall back to UTF-8 (RFC 7617)
        # rather than fail on an account name outside it.
        try:
            raw = pair.encode("latin-1")
        except UnicodeEncodeError:
            raw = pair.encode("utf-8")
        self.credentials = base64.b64encode(raw).decode("ascii")
        self.header_value = f"Basic {self.credentials}"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self.header_value
        return r

    def __repr__(self) -> str:
        return "_BasicAuth(<redacted>)"


class _Rejected:
    """A fetch answered 401 or 403: the token is no good."""

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text


class _NoAuth(requests.auth.AuthBase):
    """Explicit "no credentials", so requests does not add ~/.netrc ones to token requests."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class _RejectAllCookies(http.cookiejar.DefaultCookiePolicy):
    """The EM prefers a token cookie over the header; a stale one kept by the session's
    cookie jar would override every fresh token, so the jar must never store any."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False


_NO_AUTH: Final = _NoAuth()


class EMClient:
    """One EM server's REST client, used by one poller thread; close() may come from another."""

    def __init__(
        self,
        server: ServerConfig,
        *,
        on_logon: Callable[[], None] | None = None,
        http: requests.Session | None = None,
        password: PasswordSource | None = None,
    ) -> None:
        """``password`` is called before every logon (default: :func:`password_source`)."""
        self._name = server.name
        self._log = get_logger("emclient", server=server.name)
        self._base_url = strip_userinfo(server.url).rstrip("/")
        self._timeout = server.timeout
        self._max_answer_size = server.max_answer_size
        self._accept = "application/json" if server.format == "json" else "application/xml"
        self._verify: bool | str
        if server.tls.insecure_skip_verify:
            self._verify = False
            _silence_insecure_warning(self._base_url)
        elif server.tls.ca_file:
            self._verify = server.tls.ca_file
        else:
            self._verify = True
        self._on_logon = on_logon
        self._owns_http = http is None
        self._http = http if http is not None else requests.Session()
        if self._owns_http:
            for prefix in ("https://", "http://"):
                self._http.mount(prefix, emhttp.WatchedAdapter())
        self._http.cookies.set_policy(_RejectAllCookies())
        self._username = server.username
        self._password = password if password is not None else password_source(server)
        self._lock = threading.Lock()
        # Held while logging on: a second feed that needs a token waits for this logon and
        # uses its token instead of logging on again.
        self._logon_lock = threading.Lock()
        # Every password and Basic credential used so far: scrubbed from outside text.
        self._known_secrets: set[str] = set()
        self._remember(server.password)
        self._token: str | None = None
        self._session_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"EMClient(name={self._name!r}, url={self._base_url!r}, "
            f"accept={self._accept!r}, logged_on={self.logged_on})"
        )

    def __enter__(self) -> EMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def logged_on(self) -> bool:
        with self._lock:
            return self._token is not None

    def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T:
        """GET the system sessions and return ``consume(body)``.

        ``consume`` reads the decoded body as a stream. I/O errors it lets through become
        PollError("connection"/"timeout"), an answer past ``max_answer_size`` or the deadline
        PollError("parse"/"timeout") whatever consume made of it; anything else it raises
        propagates unchanged.
        """
        return self._get(SESSIONS_PATH, _FETCH_OP, consume)

    def get(
        self, path: str, consume: Callable[[BinaryIO], T], *, forbidden_relogon: bool = True
    ) -> T:
        """GET ``path`` (``/api/...`` with its query, already encoded) and return ``consume(body)``.

        The same exchange as :meth:`fetch_sessions`: the shared logon session (one fresh logon
        and one retry after a 401 or 403), the deadline, ``max_answer_size``, no redirects,
        redacted messages. An error status other than 401/403 raises :class:`StatusError`
        (reason ``http``) carrying the status, so that a lookup can tell a 404 from a failure.
        Messages name the path without its query.

        With ``forbidden_relogon=False`` a 403 is taken for what Veeam documents it to be, an
        account whose role may not read this resource: it raises :class:`Forbidden` (reason
        ``auth``) at once, and the logon session, which another feed may be using, is kept.
        A 401 still means one fresh logon and one retry.
        """
        if not path.startswith("/api/") or any(c in path for c in "\r\n#"):
            raise ValueError("path must start with /api/ and hold no line break or fragment")
        return self._get(
            path, "GET " + path.partition("?")[0], consume, forbidden_relogon=forbidden_relogon
        )

    def close(self, timeout: float = 3.0) -> None:
        """Log out if logged on (best effort, bounded by ``timeout``); never raises."""
        try:
            with self._lock:
                token, session_id = self._token, self._session_id
                self._token = self._session_id = None
            if token is not None and session_id is not None:
                self._logout(token, session_id, timeout)
            if self._owns_http:
                self._http.close()
        except Exception:  # noqa: S110 - shutdown must go on whatever the EM or the socket does
            pass

    # -- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _exchange(
        self,
        op: str,
        method: str,
        url: str,
        *,
        token: str | None,
        auth: requests.auth.AuthBase,
        timeout: float,
    ) -> Iterator[tuple[requests.Response, emhttp.Deadline]]:
        """One request under one deadline, from connecting to closing the response."""
        with emhttp.active(emhttp.Deadline(timeout)) as deadline:
            try:
                response = self._send(method, url, token=token, auth=auth, timeout=timeout)
            except Exception as exc:
                if deadline.expired:
                    raise PollError("timeout", f"{op}: no answer within {timeout:g}s") from None
                if isinstance(exc, requests.RequestException):
                    raise _request_error(op, exc, timeout, self._scrub) from None
                raise
            try:
                if deadline.expired:  # the headers were cut short: not an answer
                    raise PollError("timeout", f"{op}: no answer within {timeout:g}s")
                yield response, deadline
            finally:
                _close_quietly(response)

    def _get(
        self,
        path: str,
        op: str,
        consume: Callable[[BinaryIO], T],
        *,
        forbidden_relogon: bool = True,
    ) -> T:
        token = self._shared_token()
        outcome = self._get_once(path, op, token, consume)
        if isinstance(outcome, _Rejected):
            self._check_forbidden(op, outcome, forbidden_relogon)
            self._discard_token(token, logout=outcome.status == 403)
            token = self._shared_token(rejected=token)
            outcome = self._get_once(path, op, token, consume)
            if isinstance(outcome, _Rejected):
                self._check_forbidden(op, outcome, forbidden_relogon)
                self._discard_token(token, logout=outcome.status == 403)
                raise PollError("auth", f"{op}: {outcome.text} again after a fresh logon")
        return outcome

    @staticmethod
    def _check_forbidden(op: str, outcome: _Rejected, forbidden_relogon: bool) -> None:
        """Unless a 403 is to be taken for a dead token, it is this resource refused: the
        token stays, since a fresh logon with the same account gets the same role."""
        if outcome.status == 403 and not forbidden_relogon:
            raise Forbidden(
                f"{op}: {outcome.text}: the account's Enterprise Manager role does not allow "
                "this resource"
            )

    def _shared_token(self, rejected: str | None = None) -> str:
        """The logon session's token, logging on when there is none (or only ``rejected``).

        Another feed's thread may be logging on right now: its logon is waited for and its
        token used, so feeds that start together, or that both see the token expire, cost one
        logon, not one each.
        """
        with self._logon_lock:
            with self._lock:
                token = self._token
            if token is not None and token != rejected:
                return token
            return self._logon()

    def _get_once(
        self, path: str, op: str, token: str, consume: Callable[[BinaryIO], T]
    ) -> T | _Rejected:
        url = self._base_url + path
        timeout = self._timeout
        with self._exchange(op, "GET", url, token=token, auth=_NO_AUTH, timeout=timeout) as (
            response,
            deadline,
        ):
            status = response.status_code
            if status in _AUTH_STATUSES:
                return _Rejected(status, self._status_text(response))
            if not 200 <= status < 300:
                raise StatusError(status, self._status_message(op, response))
            body = self._body(op, response, self._max_answer_size)
            try:
                result = consume(cast(BinaryIO, body))
            except Exception as exc:
                if body.too_large:
                    raise self._too_large(op) from None
                if deadline.expired:
                    raise _body_timeout(op, timeout) from None
                if isinstance(exc, zlib.error):
                    raise _undecodable(op) from None
                if isinstance(exc, _IO_ERRORS):
                    raise _read_error(op, exc, timeout) from None
                raise
            if body.too_large:  # consume swallowed the error: the answer still was too large
                raise self._too_large(op)
            return result

    def _body(self, op: str, response: requests.Response, limit: int) -> emhttp.Body:
        raw = response.raw
        if raw is None:
            raise PollError("connection", f"{op}: response has no body stream")
        header = response.headers.get("Content-Encoding")
        try:
            coding = emhttp.content_coding(header)
        except emhttp.UnsupportedEncoding:
            shown = self._scrub(_one_line(header or ""))
            raise PollError("parse", f"{op}: unsupported Content-Encoding {shown!r}") from None
        length = _content_length(response)
        if coding == "identity" and length is not None and length > limit:
            # Refused before reading: the EM says how large the answer is.
            raise PollError(
                "parse",
                f"{op}: the answer ({length} bytes) exceeds max_answer_size ({format_size(limit)})",
            )
        return emhttp.Body(raw, coding, limit)

    def _too_large(self, op: str) -> PollError:
        return PollError(
            "parse",
            f"{op}: the answer exceeded max_answer_size "
            f"({format_size(self._max_answer_size)}) after decoding",
        )

    def _send(
        self,
        method: str,
        url: str,
        *,
        token: str | None,
        auth: requests.auth.AuthBase,
        timeout: float,
    ) -> requests.Response:
        return self._http.request(
            method,
            url,
            headers=self._headers(token),
            auth=auth,
            timeout=(timeout, timeout),
            verify=self._verify,
            stream=True,
            # A redirect would carry the token header to wherever the Location points.
            allow_redirects=False,
        )

    def _headers(self, token: str | None) -> dict[str, str]:
        headers = {
            "Accept": self._accept,
            "Accept-Encoding": "gzip",
            "User-Agent": f"veeam-em-exporter/{__version__}",
        }
        if token is not None:
            headers[TOKEN_HEADER] = token
        return headers

    def _logon(self) -> str:
        auth = self._remember(self._password())
        timeout = self._timeout
        with self._exchange(
            _LOGON_OP, "POST", self._base_url + LOGON_PATH, token=None, auth=auth, timeout=timeout
        ) as (response, deadline):
            status = response.status_code
            if status in _AUTH_STATUSES:
                raise LogonRefused(self._status_message("logon refused", response))
            if status not in (200, 201):
                raise PollError("http", self._status_message(_LOGON_OP, response))
            token = _token_from(response)
            if token is None:
                raise PollError(
                    "http", f"{_LOGON_OP}: {self._status_text(response)} without a {TOKEN_HEADER}"
                )
            body = _read_small(response)
            if deadline.expired:
                raise PollError(
                    "timeout", f"{_LOGON_OP}: reading the body timed out after {timeout:g}s"
                )
            # The logout needs the logon session's id: the body's SessionId, or else the
            # Location of the new logon session.
            session_id = _session_id_from(body) if body is not None else None
            if session_id is None:
                session_id = _session_id_from_location(response.headers.get("Location"))
        # An EM may echo its token in an error body or a session's message; never show it.
        register_token(token)
        if session_id is not None:
            register_token(session_id)
        with self._lock:
            self._token = token
            self._session_id = session_id
        if self._on_logon is not None:
            self._on_logon()
        return token

    def _remember(self, password: str) -> _BasicAuth:
        """Basic credentials for this password, which is from now on scrubbed everywhere."""
        auth = _BasicAuth(self._username, password)
        # The process-wide redactor learns every form this password is sent in, whoever
        # built the client (poller, --em.check, a rotated password_file).
        register_credentials(self._username, password)
        with self._lock:
            self._known_secrets.update((password, auth.credentials))
        return auth

    def _discard_token(self, token: str, *, logout: bool) -> None:
        """Forget a rejected token; after a 403 the EM session still lives, so end it."""
        with self._lock:
            if self._token != token:
                return
            session_id = self._session_id
            self._token = self._session_id = None
        if logout and session_id is not None:
            self._logout(token, session_id, min(3.0, self._timeout))

    def _logout(self, token: str, session_id: str, timeout: float) -> None:
        """Best effort, within ``timeout`` whatever the EM does; a 401 means already gone."""
        url = self._base_url + LOGOUT_PATH + urllib.parse.quote(session_id, safe="")
        try:
            with self._exchange(
                _LOGOUT_OP, "DELETE", url, token=token, auth=_NO_AUTH, timeout=max(0.1, timeout)
            ) as (response, _):
                status, text = response.status_code, self._status_text(response)
        except PollError as exc:
            self._log.info("logout failed", reason=exc.reason, err=str(exc))
            return
        except Exception as exc:
            self._log.info("logout failed", err=f"{_LOGOUT_OP}: {type(exc).__name__}")
            return
        if 200 <= status < 300:
            self._log.info("logged out")
        else:
            self._log.info("logout failed", err=f"{_LOGOUT_OP}: {text}")

    def _status_message(self, prefix: str, response: requests.Response) -> str:
        message = f"{prefix}: {self._status_text(response)}"
        if 300 <= response.status_code < 400:
            # Following would hand the token or the credentials to wherever Location points.
            location = self._scrub(_one_line(response.headers.get("Location", "")))
            message += f" (redirect to {location} not followed)" if location else " (not followed)"
        em_message = _em_error_message(_read_small(response))
        if em_message:
            message += f": {self._scrub(em_message)}"
        return message

    def _status_text(self, response: requests.Response) -> str:
        # The reason phrase is the server's text, so it is scrubbed like an EM message.
        return self._scrub(_status_text(response))

    def _scrub(self, text: str) -> str:
        """Remove anything secret from text that came from outside (EM, TLS library)."""
        text = strip_userinfo(text)
        with self._lock:
            secrets = [self._token, self._session_id, *self._known_secrets]
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            text = text.replace(secret, "<redacted>")
        return text


def strip_userinfo(text: str) -> str:
    """Drop ``user:password@`` from every URL in ``text``."""
    return _USERINFO_RE.sub(r"\1", text)


def _silence_insecure_warning(base_url: str) -> None:
    # The caller logs one warning of its own; urllib3 would warn on every request. The
    # filter is process-wide (warnings filters always are) but matches only this host, and
    # no request to a verified host ever emits this warning.
    host = urllib.parse.urlsplit(base_url).hostname
    if not host:
        return
    warnings.filterwarnings(
        "ignore",
        message=re.escape(f"Unverified HTTPS request is being made to host '{host}'."),
        category=urllib3.exceptions.InsecureRequestWarning,
    )


def _close_quietly(response: requests.Response) -> None:
    # Nothing useful can be done about a socket that fails to close.
    with contextlib.suppress(Exception):
        response.close()


def _status_text(response: requests.Response) -> str:
    status = response.status_code
    reason = _one_line(response.reason or "")
    if not reason:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    return f"HTTP {status} {reason}".rstrip()


def _one_line(text: str) -> str:
    text = _WHITESPACE_RE.sub(" ", text).strip()
    if len(text) > _EM_MESSAGE_LIMIT:
        text = text[:_EM_MESSAGE_LIMIT] + "..."
    return text


def _read_small(response: requests.Response) -> bytes | None:
    """At most 64 KiB of the decoded body, or None if it cannot be read."""
    raw = response.raw
    if raw is None:
        return None
    try:
        coding = emhttp.content_coding(response.headers.get("Content-Encoding"))
        body = emhttp.Body(raw, coding, _SMALL_BODY_LIMIT)
        return emhttp.read_up_to(body, _SMALL_BODY_LIMIT)
    except Exception:
        return None


def _content_length(response: requests.Response) -> int | None:
    try:
        length = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


def _session_id_from_location(location: str | None) -> str | None:
    """The last path segment of a logon session's URL."""
    if not location:
        return None
    path = urllib.parse.urlsplit(location.strip()).path
    segment = urllib.parse.unquote(path.rstrip("/").rpartition("/")[2]).strip()
    return segment or None


def _body_timeout(op: str, timeout: float) -> PollError:
    return PollError("timeout", f"{op}: reading the body timed out after {timeout:g}s")


def _undecodable(op: str) -> PollError:
    return PollError("parse", f"{op}: response body could not be decoded")


def _token_from(response: requests.Response) -> str | None:
    token = response.headers.get(TOKEN_HEADER, "").strip()
    if token:
        return token
    for cookie in response.cookies:
        if cookie.name.lower() == TOKEN_HEADER.lower() and cookie.value and cookie.value.strip():
            return cookie.value.strip()
    return None


def _hardened_parser() -> etree.XMLParser:
    # A fresh parser each time: lxml parsers must not be shared between threads.
    return etree.XMLParser(huge_tree=False, **HARDENED_XML)


def _parse_document(body: bytes) -> object:
    """Parse a small XML or JSON body, sniffing which one it is; None if neither."""
    text = strip_bom(body).lstrip()
    try:
        if text.startswith(b"<"):
            return etree.fromstring(text, _hardened_parser())
        if text.startswith((b"{", b"[")):
            return cast(object, json.loads(text.decode("utf-8")))
    except (etree.XMLSyntaxError, ValueError):
        return None
    return None


def _json_get(document: object, key: str) -> object:
    if isinstance(document, dict):
        return cast(object, fold_keys(document).get(key.lower()))
    return None


def _session_id_from(body: bytes) -> str | None:
    document = _parse_document(body)
    value: object
    if isinstance(document, etree._Element):
        element = next(document.iter("{*}SessionId"), None)
        value = element.text if element is not None else None
    else:
        value = _json_get(document, "SessionId")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _em_error_message(body: bytes | None) -> str | None:
    if not body:
        return None
    document = _parse_document(body)
    value: object
    if isinstance(document, etree._Element):
        if etree.QName(document).localname != "Error":
            return None
        value = document.get("Message")
    else:
        value = _json_get(document, "Message")
    if isinstance(value, str):
        return _one_line(value) or None
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """exc and every exception reachable from it: causes, contexts, wrapped reasons, args."""
    seen: set[int] = set()
    stack = [exc]
    while stack and len(seen) < 64:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args)
        stack.extend(item for item in linked if isinstance(item, BaseException))


def _tls_detail(exc: BaseException) -> str:
    for item in _chain(exc):
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {item.verify_message or item.reason}"
    for item in _chain(exc):
        if isinstance(item, ssl.SSLError) and item.reason:
            return f"TLS handshake failed: {item.reason}"
    return "TLS handshake failed"


def _connection_detail(exc: BaseException) -> str:
    chain = list(_chain(exc))
    if any(
        isinstance(item, urllib3.exceptions.NameResolutionError | socket.gaierror) for item in chain
    ):
        return "name resolution failed"
    if any(isinstance(item, ConnectionRefusedError) for item in chain):
        return "connection refused"
    if any(isinstance(item, ConnectionResetError) for item in chain):
        return "connection reset by peer"
    if any(
        isinstance(
            item,
            http.client.RemoteDisconnected
            | http.client.IncompleteRead
            | urllib3.exceptions.ProtocolError,
        )
        for item in chain
    ):
        return "connection closed early"
    for item in chain:
        if isinstance(item, OSError) and item.strerror:
            return f"connection failed: {_one_line(item.strerror)}"
    return "connection failed"


def _request_error(
    op: str, exc: requests.RequestException, timeout: float, scrub: Callable[[str], str]
) -> PollError:
    """Classify an exception raised while sending a request or reading its headers."""
    # SSLError, ConnectTimeout and ProxyError all subclass ConnectionError: test them first.
    if isinstance(exc, requests.exceptions.SSLError):
        return PollError("tls", f"{op}: {scrub(_tls_detail(exc))}")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return PollError("timeout", f"{op}: connect timed out after {timeout:g}s")
    if isinstance(exc, requests.exceptions.Timeout):
        return PollError("timeout", f"{op}: read timed out after {timeout:g}s")
    if isinstance(
        exc, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError
    ):
        return PollError("connection", f"{op}: {_connection_detail(exc)}")
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return PollError("parse", f"{op}: response body could not be decoded")
    # InvalidURL, TooManyRedirects, ...: nothing reached the EM or it could not be spoken to.
    return PollError("connection", f"{op}: request failed ({type(exc).__name__})")


def _read_error(op: str, exc: BaseException, timeout: float) -> PollError:
    """Classify an I/O exception that came out of consume() while it read the body."""
    # NewConnectionError subclasses urllib3's TimeoutError although it is a refusal.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return PollError("connection", f"{op}: reading the body failed: {_connection_detail(exc)}")
    if isinstance(
        exc,
        urllib3.exceptions.TimeoutError | requests.exceptions.Timeout | TimeoutError,
    ):
        return PollError("timeout", f"{op}: reading the body timed out after {timeout:g}s")
    if isinstance(exc, urllib3.exceptions.DecodeError | requests.exceptions.ContentDecodingError):
        return PollError("parse", f"{op}: response body could not be decoded")
    return PollError("connection", f"{op}: reading the body failed: {_connection_detail(exc)}")
