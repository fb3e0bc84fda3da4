"""The exporter's listener: one thread holds every connection, a fixed pool of threads answers.

A thread per connection (what wsgiref and prometheus-client do) lets clients that connect and
then say nothing, or say it a byte at a time, take a thread and a file descriptor each until
the process runs out of both and scrapes time out. Here one thread, the loop, accepts
connections and keeps them in a selector while they wait: a waiting connection costs a file
descriptor and a small buffer, never a thread. The loop reads each request head (request line
and headers) itself; only a complete head goes to a worker, which runs the WSGI app and writes
the answer. With TLS, each handshake step runs in a worker once the client has sent something
for it to work on, and goes back to the loop as soon as it has to wait for the client.

Every connection has deadlines: one for its TLS handshake, one for its request head, one for
its answer. The number of open connections is capped below the file-descriptor limit.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import io
import itertools
import queue
import re
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from exporter import logs
from exporter.webauth import peer_allowed
from exporter.webconfig import TLSServerConfig

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

_log = logs.get_logger("web")

# Enough for several scrapers, health checks and a browser at once; each answer takes a few
# milliseconds, so more threads would only add memory and contention for the interpreter.
WORKERS = 16
# Prometheus sends a request head of a few hundred bytes at once; 10 s is ample for a slow link.
REQUEST_TIMEOUT = 10.0
TLS_HANDSHAKE_TIMEOUT = 10.0
# From the complete request head to the last byte of the answer taken by the client.
RESPONSE_TIMEOUT = 30.0
# Room for bursts of scrapers connecting at once (the socketserver default is 5).
LISTEN_BACKLOG = 128
MAX_CONNECTIONS = 1024
# File descriptors kept for everything else: connections to the EMs, logs, the listener.
_FD_RESERVE = 64
# Without RLIMIT_NOFILE (Windows), select() watches at most 512 sockets.
_NO_RLIMIT_CONNECTIONS = 500
# http.server refuses longer request lines too; a scrape's whole head is far shorter.
MAX_REQUEST_HEAD = 64 * 1024

_ACCEPTS_PER_WAKE = 64
_READS_PER_WAKE = 4
_ACCEPT_PAUSE = 0.5
_WARNING_INTERVAL = 60.0
_HEAD_END = re.compile(rb"\n\r?\n")
_TLS_HANDSHAKE_RECORD = b"\x16"
# What Go's net/http answers, so a scrape configured with the wrong scheme says why it fails.
_PLAIN_HTTP_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
_HEAD_TOO_LARGE_ANSWER = (
    b"HTTP/1.0 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nRequest header fields too large.\n"
)


def connection_limit(soft_limit: int | None = None) -> int:
    """How many connections may be open at once: MAX_CONNECTIONS, or fewer when the
    process's file-descriptor limit (RLIMIT_NOFILE, soft) leaves less room."""
    if soft_limit is None:
        if resource is None:
            return _NO_RLIMIT_CONNECTIONS
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft_limit == resource.RLIM_INFINITY:
            return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, max(soft_limit - _FD_RESERVE, soft_limit // 2)))


@dataclass(frozen=True)
class Limits:
    """The listener's bounds; the defaults are the module's constants."""

    workers: int = WORKERS
    request_timeout: float = REQUEST_TIMEOUT
    handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT
    response_timeout: float = RESPONSE_TIMEOUT
    # None: connection_limit(), from the file-descriptor limit at start-up.
    max_connections: int | None = None


# Answers one request: the socket (blocking), the request head as read (possibly with the
# start of a body), the client's address and the monotonic deadline of the answer.
Serve = Callable[[socket.socket, bytes, Any, float], None]


class _Connection:
    __slots__ = (
        "address", "closed", "deadline", "events", "handshaking", "head", "plain_on_tls", "sock",
    )  # fmt: skip

    def __init__(self, sock: socket.socket, address: Any, deadline: float, tls: bool) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.handshaking = tls
        self.plain_on_tls = False
        self.head = bytearray()
        self.events = 0  # what the selector waits for; 0 while not registered
        self.closed = False


class Listener:
    """Serves connections from a bound, listening socket (not closed here) until stop()."""

    def __init__(
        self,
        sock: socket.socket,
        serve: Serve,
        tls: TLSServerConfig | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._sock = sock
        self._serve = serve
        self._tls = tls
        self._limits = limits or Limits()
        self.max_connections = self._limits.max_connections or connection_limit()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        # Loop thread only: connections in the selector, oldest first, and their deadlines.
        self._waiting: dict[_Connection, None] = {}
        self._deadlines: list[tuple[float, int, _Connection]] = []
        self._seq = itertools.count()
        self._accepting = False
        self._resume_accept_at = 0.0
        self._last_warning: dict[str, float] = {}
        # Shared with the workers, under the lock.
        self._lock = threading.Lock()
        self._open = 0
        self._shed = 0
        self._stopping = False
        self._handed_back: list[tuple[_Connection, int]] = []
        self._work: queue.SimpleQueue[tuple[Callable[[_Connection], None], _Connection] | None]
        self._work = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    @property
    def waiting_connections(self) -> int:
        """Connections waiting for their client (handshake or request head), not being
        answered; a snapshot taken from another thread."""
        return len(self._waiting)

    @property
    def shed_connections(self) -> int:
        """Connections closed at once because max_connections were open."""
        with self._lock:
            return self._shed

    def start(self) -> None:
        self._sock.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._listen(True)
        self._threads = [
            threading.Thread(target=self._work_loop, name=f"http-{i}", daemon=True)
            for i in range(self._limits.workers)
        ]
        self._threads.append(threading.Thread(target=self._loop, name="http", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, close waiting connections, let the workers finish (bounded)."""
        with self._lock:
            self._stopping = True
        self._wake()
        deadline = time.monotonic() + timeout
        for _ in self._threads[:-1]:
            self._work.put(None)
        for thread in reversed(self._threads):  # the loop first: it closes what waits
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftovers, self._handed_back = self._handed_back, []
        for conn, _ in leftovers:
            self._shut(conn)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self._stopping:
                for key, _ in self._selector.select(self._next_timeout()):
                    if key.fileobj is self._sock:
                        self._accept()
                    elif key.data is None:
                        self._drain_wake()
                    else:
                        self._ready(key.data)
                self._take_back()
                self._expire()
        finally:
            for conn in list(self._waiting):
                self._close(conn)
            self._listen(False)

    def _next_timeout(self) -> float:
        now = time.monotonic()
        until = 1.0
        if self._deadlines:
            until = min(until, self._deadlines[0][0] - now)
        if not self._accepting:
            until = min(until, self._resume_accept_at - now)
        return max(0.0, until)

    def _listen(self, on: bool) -> None:
        if on and not self._accepting:
            self._selector.register(self._sock, selectors.EVENT_READ, None)
        elif not on and self._accepting:
            self._selector.unregister(self._sock)
        self._accepting = on

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, address = self._sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # The connection stays in the backlog; retrying at once would spin.
                    self._warn("cannot accept connections", err=str(exc))
                    self._listen(False)
                    self._resume_accept_at = time.monotonic() + _ACCEPT_PAUSE
                    return
                continue  # the client gave up before we accepted it
            self._admit(sock, address)

    def _admit(self, sock: socket.socket, address: Any) -> None:
        with self._lock:
            full = self._open >= self.max_connections
            if full:
                self._shed += 1
            else:
                self._open += 1
        if full:
            self._warn(
                "connection limit reached, closing connections",
                limit=self.max_connections,
                closed_so_far=self.shed_connections,
            )
            if not self._waiting:
                _close_quietly(sock)  # every connection is being answered
                return
            # The oldest waiting connection is the likeliest to be idle or slow on purpose,
            # and the new one may be a scrape: make room for it.
            self._close(next(iter(self._waiting)))
            with self._lock:
                self._open += 1
        sock.setblocking(False)
        timeout = self._limits.request_timeout
        if self._tls is not None:
            timeout = self._limits.handshake_timeout
        conn = _Connection(sock, address, time.monotonic() + timeout, self._tls is not None)
        self._push_deadline(conn)
        self._wait(conn, selectors.EVENT_READ)

    def _warn(self, message: str, **fields: Any) -> None:
        """At most once a minute per message: a flood of clients must not flood the log."""
        now = time.monotonic()
        if now - self._last_warning.get(message, -_WARNING_INTERVAL) >= _WARNING_INTERVAL:
            self._last_warning[message] = now
            _log.warning(message, **fields)

    def _ready(self, conn: _Connection) -> None:
        if conn.closed:  # made room for a connection accepted in the same round
            return
        if conn.handshaking and not conn.plain_on_tls:
            if isinstance(conn.sock, ssl.SSLSocket) or self._sort_tls_client(conn):
                self._leave(conn)
                self._work.put((self._handshake_step, conn))
            return
        self._read_head(conn)

    def _sort_tls_client(self, conn: _Connection) -> bool:
        """On the TLS port, before any handshake: whether the client speaks TLS at all."""
        try:
            first = conn.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            self._close(conn)
            return False
        if not first:  # connected and hung up, as port probes do
            self._close(conn)
            return False
        if first == _TLS_HANDSHAKE_RECORD:
            return True
        if first.isalpha():
            # Plain HTTP: read its head like any other, then tell it why it fails.
            conn.plain_on_tls = True
            conn.deadline = time.monotonic() + self._limits.request_timeout
            self._push_deadline(conn)
            self._read_head(conn)
        else:
            _log.debug("not a TLS client", client=_client(conn))
            _discard_input(conn.sock)
            self._close(conn)
        return False

    def _read_head(self, conn: _Connection) -> None:
        for _ in range(_READS_PER_WAKE):
            seen = len(conn.head)
            try:
                data = conn.sock.recv(MAX_REQUEST_HEAD - seen)
            except (BlockingIOError, ssl.SSLWantReadError):
                self._wait(conn, selectors.EVENT_READ)
                return
            except ssl.SSLWantWriteError:
                self._wait(conn, selectors.EVENT_WRITE)
                return
            except OSError as exc:
                _log.debug("connection ended", client=_client(conn), err=str(exc))
                self._close(conn)
                return
            if not data:
                self._close(conn)
                return
            conn.head += data
            if _HEAD_END.search(conn.head, max(0, seen - 2)):
                if conn.plain_on_tls:
                    _log.debug("not a TLS client", client=_client(conn))
                    _send_quietly(conn.sock, _PLAIN_HTTP_ANSWER)
                    self._close(conn)
                    return
                self._leave(conn)
                self._work.put((self._answer, conn))
                return
            if len(conn.head) >= MAX_REQUEST_HEAD:
                _log.debug("request head too large", client=_client(conn))
                _send_quietly(conn.sock, _HEAD_TOO_LARGE_ANSWER)
                self._close(conn)
                return
        self._wait(conn, selectors.EVENT_READ)

    def _take_back(self) -> None:
        with self._lock:
            back, self._handed_back = self._handed_back, []
        now = time.monotonic()
        for conn, events in back:
            if conn.deadline <= now:
                self._expired(conn)
            elif conn.handshaking:
                self._wait(conn, events)
            else:  # handshake done: the request may already sit in the TLS buffer
                self._push_deadline(conn)
                self._read_head(conn)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, conn = heapq.heappop(self._deadlines)
            # Connections with a worker, or given a later deadline since, are checked again
            # when they come back.
            if conn in self._waiting and conn.deadline == deadline:
                self._expired(conn)
        if not self._accepting and now >= self._resume_accept_at and not self._stopping:
            self._listen(True)

    def _expired(self, conn: _Connection) -> None:
        what = "TLS handshake" if conn.handshaking and not conn.plain_on_tls else "request head"
        _log.debug(f"{what} not complete in time", client=_client(conn))
        _discard_input(conn.sock)
        self._close(conn)

    def _push_deadline(self, conn: _Connection) -> None:
        heapq.heappush(self._deadlines, (conn.deadline, next(self._seq), conn))

    def _wait(self, conn: _Connection, events: int) -> None:
        self._waiting[conn] = None
        if conn.events == 0:
            self._selector.register(conn.sock, events, conn)
        elif conn.events != events:
            self._selector.modify(conn.sock, events, conn)
        conn.events = events

    def _leave(self, conn: _Connection) -> None:
        self._waiting.pop(conn, None)
        if conn.events:
            self._selector.unregister(conn.sock)
            conn.events = 0

    def _close(self, conn: _Connection) -> None:
        self._leave(conn)
        self._shut(conn)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full: the loop wakes anyway
            self._wake_w.send(b"\0")

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_r.recv(4096)

    # -- the workers -------------------------------------------------------------------------

    def _work_loop(self) -> None:
        while (item := self._work.get()) is not None:
            task, conn = item
            if self._stopping:
                self._shut(conn)
                continue
            try:
                task(conn)
            except Exception as exc:  # a bug in one answer must not take the worker down
                _log.error("answering a request failed", client=_client(conn), err=repr(exc))
                self._shut(conn)

    def _hand_back(self, conn: _Connection, events: int) -> None:
        with self._lock:
            kept = not self._stopping
            if kept:
                self._handed_back.append((conn, events))
        if kept:
            self._wake()
        else:
            self._shut(conn)

    def _handshake_step(self, conn: _Connection) -> None:
        """As far as the client's bytes allow, without waiting for more."""
        assert self._tls is not None
        try:
            if isinstance(conn.sock, ssl.SSLSocket):
                tls_sock = conn.sock
            else:
                tls_sock = self._tls.context.wrap_socket(
                    conn.sock, server_side=True, do_handshake_on_connect=False
                )
                conn.sock = tls_sock
            tls_sock.do_handshake()
        except ssl.SSLWantReadError:
            self._hand_back(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._hand_back(conn, selectors.EVENT_WRITE)
            return
        except OSError as exc:  # ssl.SSLError included
            _log.debug("TLS handshake failed", client=_client(conn), err=str(exc))
            self._shut(conn)
            return
        if not peer_allowed(tls_sock.getpeercert(), self._tls.client_allowed_sans):
            _log.debug("client certificate has none of client_allowed_sans", client=_client(conn))
            self._shut(conn)
            return
        conn.handshaking = False
        conn.deadline = time.monotonic() + self._limits.request_timeout
        self._hand_back(conn, selectors.EVENT_READ)

    def _answer(self, conn: _Connection) -> None:
        deadline = time.monotonic() + self._limits.response_timeout
        try:
            conn.sock.setblocking(True)
            self._serve(conn.sock, bytes(conn.head), conn.address, deadline)
        except OSError as exc:  # the client hung up or did not take the answer in time
            _log.debug("connection ended", client=_client(conn), err=str(exc))
        finally:
            self._shut(conn)

    def _shut(self, conn: _Connection) -> None:
        """Close the connection; any thread, once the loop no longer watches it."""
        with self._lock:
            if conn.closed:
                return
            conn.closed = True
            self._open -= 1
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)
        _close_quietly(conn.sock)


def _client(conn: _Connection) -> str:
    return str(conn.address[0]) if isinstance(conn.address, tuple) else str(conn.address)


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """A short answer before hanging up; it fits the socket's buffer, so it never waits."""
    with contextlib.suppress(OSError):
        sock.send(data)


def _discard_input(sock: socket.socket) -> None:
    """Read what is pending: closing a socket with unread data makes the kernel send a reset,
    which can destroy an answer before the client reads it."""
    with contextlib.suppress(OSError):
        sock.recv(MAX_REQUEST_HEAD)


# -- WSGI ------------------------------------------------------------------------------------


def wsgi_serve(server: WSGIServer) -> Serve:
    """Answers with the app of ``server`` (a bound wsgiref server, used for its environ)."""

    def serve(sock: socket.socket, head: bytes, address: Any, deadline: float) -> None:
        _Handler(sock, head, address, server, deadline)

    return serve


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, reading the head the loop has read and keeping the deadline."""

    def __init__(
        self, sock: socket.socket, head: bytes, address: Any, server: WSGIServer, deadline: float
    ) -> None:
        self._pending_head = head
        self._deadline = deadline
        super().__init__(sock, address, server)

    def setup(self) -> None:
        self.connection = self.request
        self.rfile = io.BufferedReader(
            _HeadThenSocket(self.connection, self._pending_head, self._deadline)
        )
        self.wfile = _DeadlineWriter(self.connection, self._deadline)

    def log_message(self, format: str, *args: Any) -> None:
        # Access logs would drown the event log; Prometheus records scrape failures itself.
        pass


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the answer took longer than its deadline")
    return left


class _HeadThenSocket(io.RawIOBase):
    def __init__(self, sock: socket.socket, head: bytes, deadline: float) -> None:
        self._sock = sock
        self._head = memoryview(head)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        self._sock.settimeout(_remaining(self._deadline))
        return self._sock.recv_into(buffer)


class _DeadlineWriter(io.BufferedIOBase):
    """Unbuffered writes that give up at the deadline, however slowly the client reads
    (a socket timeout alone restarts with every chunk sent)."""

    _CHUNK = 64 * 1024

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            self._sock.settimeout(_remaining(self._deadline))
            view = view[self._sock.send(view[: self._CHUNK]) :]
        return total

    def fileno(self) -> int:
        return self._sock.fileno()
