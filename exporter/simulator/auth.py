"""Logon sessions and their tokens, with idle expiry."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass
class Logon:
    session_id: str  # the GUID in the body and in /api/logonSessions/{id}
    token: str  # the X-RestSvcSessionId value
    username: str
    version: str
    created: datetime
    last_used: datetime


class LogonStore:
    """Idle time is measured on the base clock, not the accelerated simulated one."""

    def __init__(self, now: Callable[[], datetime], idle_expiry: Callable[[], float]) -> None:
        self._now = now
        self._idle_expiry = idle_expiry
        self._lock = threading.Lock()
        self._by_token: dict[str, Logon] = {}

    def create(self, username: str, version: str) -> Logon:
        session_id = str(uuid.uuid4())
        # Real servers answer base64 of the ASCII GUID, and some clients rebuild it that way.
        token = base64.b64encode(session_id.encode("ascii")).decode("ascii")
        now = self._now()
        logon = Logon(session_id, token, username, version, now, now)
        with self._lock:
            self._by_token[token] = logon
        return logon

    def use(self, token: str) -> Logon | None:
        """The live logon for a token, refreshing its idle timer; None if unknown or expired."""
        now = self._now()
        with self._lock:
            self._drop_expired(now)
            logon = self._by_token.get(token)
            if logon is not None:
                logon.last_used = now
            return logon

    def find(self, session_id: str) -> Logon | None:
        with self._lock:
            self._drop_expired(self._now())
            for logon in self._by_token.values():
                if logon.session_id == session_id.lower():
                    return logon
        return None

    def delete(self, session_id: str) -> bool:
        with self._lock:
            self._drop_expired(self._now())
            for token, logon in list(self._by_token.items()):
                if logon.session_id == session_id.lower():
                    del self._by_token[token]
                    return True
        return False

    def expire_all(self) -> None:
        with self._lock:
            self._by_token.clear()

    def active(self) -> list[Logon]:
        with self._lock:
            self._drop_expired(self._now())
            return list(self._by_token.values())

    def _drop_expired(self, now: datetime) -> None:
        limit = self._idle_expiry()
        for token, logon in list(self._by_token.items()):
            if (now - logon.last_used).total_seconds() > limit:
                del self._by_token[token]
