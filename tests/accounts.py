"""An EM account for logon tests: it accepts its own password and refuses any other."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from exporter.config import ServerConfig
from exporter.poller import SessionSource
from exporter.reasons import LogonRefused

T = TypeVar("T")
GOOD = (Path(__file__).parent / "fixtures" / "golden_poll1.xml").read_bytes()
REFUSED = LogonRefused("logon refused: HTTP 401 Unauthorized")


class Account:
    """An EM account: a logon with its password is accepted, any other is refused.

    Clients are built by the poller with the password of the ServerConfig they are given, so
    a test sees which password each logon attempt used.
    """

    def __init__(self, password: str) -> None:
        self.password = password
        self.attempts: list[str] = []

    def factory(self, cfg: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
        account = self

        class Client:
            def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T:
                account.attempts.append(cfg.password)
                if cfg.password != account.password:
                    raise REFUSED
                on_logon()
                return consume(io.BytesIO(GOOD))

            def close(self, timeout: float = 3.0) -> None:
                pass

        return Client()
