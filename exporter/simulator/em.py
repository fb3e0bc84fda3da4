"""SimulatedEM: the public face of the simulator (lifecycle, records, knobs, faults)."""

from __future__ import annotations

import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType

from exporter.simulator.api import Api
from exporter.simulator.control import Control
from exporter.simulator.core import SimCore
from exporter.simulator.faults import Target
from exporter.simulator.model import IN_PROGRESS, SUCCESS, SimSession
from exporter.simulator.server import SimHTTPServer
from exporter.simulator.settings import SimulatorSettings
from exporter.simulator.stats import SimStats
from exporter.simulator.tlsutil import make_self_signed


class SimulatedEM:
    """A Veeam Backup Enterprise Manager REST API on a local socket, with a generated history.

    `clock` replaces real UTC time (tests pass a fixed or controllable clock); the history is
    generated from the seed relative to the clock at construction.
    """

    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._core = SimCore(settings or SimulatorSettings(), clock)
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tls_dir: str | None = None
        self._lifecycle = threading.Lock()
        self._url: str | None = None
        self.ca_file: str | None = None

    # lifecycle

    def start(self) -> None:
        """Bind and serve in a daemon thread; returns once the socket accepts connections."""
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("the simulator is already running")
            settings = self._core.settings
            context = self._tls_context() if settings.tls else None
            try:
                server = SimHTTPServer(
                    (settings.host, settings.port),
                    Api(self._core),
                    Control(self._core),
                    context,
                )
            except BaseException:
                self._remove_tls_dir()
                raise
            self._core.stopping.clear()
            host, port = str(server.server_address[0]), int(server.server_address[1])
            shown = f"[{host}]" if ":" in host else host
            self._url = f"{'https' if context else 'http'}://{shown}:{port}"
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"veeam-em-simulator:{port}",
                daemon=True,
            )
            self._thread.start()

    def _tls_context(self) -> ssl.SSLContext:
        self._tls_dir = tempfile.mkdtemp(prefix="veeam-em-simulator-")
        pair = make_self_signed(Path(self._tls_dir))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pair.cert_file, pair.key_file)
        self.ca_file = pair.cert_file
        return context

    def _remove_tls_dir(self) -> None:
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None
            self.ca_file = None

    def stop(self) -> None:
        """Stop serving and drop open connections; idempotent."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is None:
                return
            self._core.stopping.set()
            server.shutdown()
            server.close_connections()
            server.server_close()
            if thread is not None:
                thread.join(timeout=5)
            self._remove_tls_dir()

    def __enter__(self) -> SimulatedEM:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Scheme, host and port, without /api; the last one if the simulator was stopped."""
        if self._url is None:
            raise RuntimeError("the simulator has not been started")
        return self._url

    @property
    def running(self) -> bool:
        return self._server is not None

    # records

    def now(self) -> datetime:
        """The simulator's current time: the base clock while live, frozen when not; never
        ahead of the base clock, whatever the speed."""
        return self._core.clock.now()

    @property
    def backup_servers(self) -> list[str]:
        return self._core.store.hosts

    def sessions(self) -> list[SimSession]:
        """What /api/systemSessions would return now (30-day window, live activity applied)."""
        return self._core.sessions()

    def add_session(
        self,
        session_type: str,
        *,
        state: str = IN_PROGRESS,
        created: datetime | None = None,
        ended: datetime | None = None,
        result: str | None = None,
        message: str = "",
        canceled: bool = False,
    ) -> SimSession:
        """Add a session shown exactly as given (created defaults to now; ended stays as given)."""
        return self._core.add_session(
            session_type,
            state=state,
            created=created,
            ended=ended,
            result=result,
            message=message,
            canceled=canceled,
        )

    def finish_session(
        self,
        session_id: str,
        *,
        state: str = SUCCESS,
        ended: datetime | None = None,
        message: str = "",
        canceled: bool = False,
    ) -> SimSession:
        """End a visible session now (or at `ended`); KeyError if the API would not show it."""
        return self._core.finish_session(
            session_id, state=state, ended=ended, message=message, canceled=canceled
        )

    def remove_session(self, session_id: str) -> None:
        self._core.remove_session(session_id)

    def fail_next(self) -> str | None:
        """Make the next generated session to finish fail (see docs/simulator.md); its id,
        or None if the schedule has none within a day."""
        return self._core.fail_next()

    # behaviour

    def inject(
        self,
        fault: str,
        count: int = 1,
        *,
        delay: float = 0.0,
        target: Target = "systemSessions",
        size: int | None = None,
        location: str = "",
    ) -> None:
        """Queue `fault` for the next `count` requests of `target` (see docs/simulator.md)."""
        self._core.faults.inject(
            fault, count, delay=delay, target=target, size=size, location=location
        )

    def clear_faults(self) -> None:
        self._core.faults.clear()

    def expire_tokens(self) -> None:
        self._core.logons.expire_all()

    def set(self, **knobs: object) -> None:
        """Change run-time settings; ValueError for unknown, startup-only or invalid values."""
        self._core.set(knobs)

    @property
    def settings(self) -> SimulatorSettings:
        return self._core.settings

    @property
    def stats(self) -> SimStats:
        return self._core.stats
