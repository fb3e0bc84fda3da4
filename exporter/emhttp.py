"""Bounds on one HTTP exchange with an EM: a deadline for the whole request, a cap on the body.

requests only has per-read timeouts: an EM that sends a byte every second never trips them.
A :class:`Deadline` bounds a whole request instead, body included. The sockets a request uses
are registered with the deadline of the thread that makes it (see :func:`active`); when the
deadline passes, they are shut down, which ends any read blocked on them at once.

:class:`Body` reads an answer the way the client hands it on: decoded from gzip here, with a
bounded output per read, so a small compressed answer cannot turn into gigabytes in memory,
and capped in total.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any, Final

import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool
import urllib3.poolmanager

_RAW_CHUNK: Final = 64 * 1024


class Deadline:
    """One request's time limit; sockets watched by it are shut down when it passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        # Our own duplicates of the request's sockets: shutting one down ends the connection
        # whatever the connection's owner does with its descriptor meanwhile.
        self._watched: list[socket.socket] = []
        self._expired = False
        self._done = False
        self._timer = threading.Timer(max(0.0, seconds), self.expire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def expired(self) -> bool:
        with self._lock:
            return self._expired

    def remaining(self) -> float:
        return max(0.0, self._ends - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        try:
            duplicate = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except (OSError, ValueError):
            return  # already closed: nothing left to interrupt
        with self._lock:
            if self._done:
                duplicate.close()
                return
            self._watched.append(duplicate)
            if self._expired:
                _shut(duplicate)

    def expire(self) -> None:
        """End the request now (the timer calls this when the time is up)."""
        with self._lock:
            if self._done:
                return
            self._expired = True
            for sock in self._watched:
                _shut(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True
            watched, self._watched = self._watched, []
        for sock in watched:
            with contextlib.suppress(OSError):
                sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_current = threading.local()


@contextlib.contextmanager
def active(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` watch every socket this thread uses until the block ends."""
    previous = getattr(_current, "deadline", None)
    _current.deadline = deadline
    try:
        yield deadline
    finally:
        _current.deadline = previous
        deadline.close()


def _watch(sock: socket.socket | None) -> None:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)  # before any TLS handshake, which a slow server could drag out too
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # a kept-alive connection was watched by an earlier request only
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS: Final = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter with connections whose sockets the active deadline watches."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> urllib3.poolmanager.PoolManager:
        manager: urllib3.poolmanager.PoolManager = super().proxy_manager_for(proxy, **kwargs)
        # A SOCKS manager has pool classes of its own; an HTTP proxy's tunnel is ours.
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


# -- the body ---------------------------------------------------------------------------------


class AnswerTooLarge(Exception):
    """The decoded answer went past its cap."""


class UnsupportedEncoding(Exception):
    """A Content-Encoding the client never asked for."""


def content_coding(header: str | None) -> str:
    """``identity``, ``gzip`` or ``deflate``; UnsupportedEncoding for anything else."""
    codings = [c.strip().lower() for c in (header or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return "identity"
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip"):
        return "gzip"
    if codings == ["deflate"]:
        return "deflate"
    raise UnsupportedEncoding(", ".join(codings))


class _Inflater:
    """gzip (several members allowed) or deflate (zlib-wrapped or raw), output bounded."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding == "gzip"
        # Some servers send raw deflate under "deflate": tried when the zlib wrapper is missing.
        self._may_be_raw = not self._gzip
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS)
        self._pending = b""  # compressed input not yet decompressed
        self.started = False

    def feed(self, data: bytes) -> None:
        self._pending += data

    @property
    def hungry(self) -> bool:
        return not self._pending and not self._obj.unconsumed_tail

    def inflate(self, limit: int) -> bytes:
        data = self._obj.unconsumed_tail or self._pending
        if data is self._pending:
            self._pending = b""
        try:
            out = self._obj.decompress(data, limit)
        except zlib.error:
            if not self._may_be_raw or self.started:
                raise
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._obj.decompress(data, limit)
        self.started = True
        if self._obj.eof:
            rest = self._obj.unused_data
            if rest and self._gzip:
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._pending = rest + self._pending
        return out

    @property
    def complete(self) -> bool:
        return self._obj.eof and not self._pending and not self._obj.unconsumed_tail


class Body(io.RawIOBase):
    """The decoded body of an urllib3 response, at most ``limit`` bytes of it.

    Reading past ``limit`` raises AnswerTooLarge and sets ``too_large``. A compressed body
    that ends before its end marker raises zlib.error.

    ``read(size)`` hands over what one step of decoding produced, at most ``size`` bytes,
    without copying it again: the parser reads this directly, with no buffered reader in
    between (each 64 KiB the parser reads would otherwise be copied once more).
    """

    def __init__(self, raw: Any, coding: str, limit: int) -> None:
        super().__init__()
        self._raw = raw
        self._inflater = None if coding == "identity" else _Inflater(coding)
        self._limit = limit
        self._done = False
        self.delivered = 0
        self.too_large = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if not size or self._done:
            return b""
        data = self._next(size)
        if not data:
            self._done = True
            return b""
        self.delivered += len(data)
        if self.delivered > self._limit:
            self.too_large = True
            self._done = True
            raise AnswerTooLarge(self._limit)
        return data

    def readall(self) -> bytes:
        parts = []
        while chunk := self.read(_RAW_CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def _next(self, size: int) -> bytes:
        # One byte past the cap is enough to know it was passed.
        size = max(1, min(size, self._limit - self.delivered + 1))
        inflater = self._inflater
        if inflater is None:
            return bytes(self._raw.read(size, decode_content=False) or b"")
        for _ in range(1 << 20):  # bounded: each round reads or inflates something
            if not inflater.hungry:
                out = inflater.inflate(size)
                if out:
                    return out
                continue
            chunk = self._raw.read(_RAW_CHUNK, decode_content=False)
            if not chunk:
                if not inflater.complete:
                    raise zlib.error("compressed body ended early")
                return b""
            inflater.feed(bytes(chunk))
        raise zlib.error("compressed body makes no progress")


def read_up_to(body: io.RawIOBase, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end of the body."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = body.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
