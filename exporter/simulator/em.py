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
from exporter.simulator.estate import BACKUP_SESSION
from exporter.simulator.faults import Target
from exporter.simulator.job_model import STOPPED, WORKING, SimJob, SimJobSession
from exporter.simulator.job_model import SUCCESS as JOB_SUCCESS
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

    # backup job sessions

    def jobs(self) -> list[SimJob]:
        """The estate: every job whose sessions the backup servers hold, children included."""
        return self._core.job_list()

    def job_sessions(
        self, session_type: str = BACKUP_SESSION, *, uncollected: bool = False
    ) -> list[SimJobSession]:
        """What the EM shows now: every session of the type (BackupJobSession or
        ReplicaJobSession) as of its backup server's last data collection, in the unsorted
        answer's order, whatever its age (the query service's window is not applied).
        With `uncollected`, what the backup servers hold now instead."""
        return list(self._core.job_views(session_type, truth=uncollected))

    def job_collections(self) -> dict[str, datetime | None]:
        """Backup server name -> the time of the data collection the EM shows (None before
        the first)."""
        return self._core.job_collections()

    def collect(self, backup_server: str | None = None) -> dict[str, datetime | None]:
        """Collect now from one backup server or all (a CollectJob system session each);
        the EM then shows their job sessions as they are now."""
        return self._core.collect(backup_server)

    def add_job_session(
        self,
        job: str,
        *,
        state: str = WORKING,
        result: str | None = None,
        created: datetime | None = None,
        ended: datetime | None = None,
        progress: int | None = None,
        is_retry: bool = False,
        job_name: str | None = None,
        job_type: str | None = None,
        session_id: str | None = None,
        parent_id: str | None = None,
        restore_points: int | None = None,
        failure_message: str | None = None,
    ) -> SimJobSession:
        """Add a session of `job` (uid or name), shown exactly as given from the next data
        collection on; see docs/simulator.md for the defaults."""
        return self._core.add_job_session(
            job,
            state=state,
            result=result,
            created=created,
            ended=ended,
            progress=progress,
            is_retry=is_retry,
            job_name=job_name,
            job_type=job_type,
            session_id=session_id,
            parent_id=parent_id,
            restore_points=restore_points,
            failure_message=failure_message,
        )

    def finish_job_session(
        self,
        session_id: str,
        *,
        result: str = JOB_SUCCESS,
        state: str = STOPPED,
        ended: datetime | None = None,
        progress: int | None = None,
    ) -> SimJobSession:
        """End a session the backup servers hold (generated or added), now or at `ended`;
        the EM shows it from the next data collection on. KeyError for an unknown id."""
        return self._core.finish_job_session(
            session_id, result=result, state=state, ended=ended, progress=progress
        )

    def remove_job_session(self, session_id: str) -> None:
        self._core.remove_job_session(session_id)

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
        page: int | None = None,
    ) -> None:
        """Queue `fault` for the next `count` requests of `target` (see docs/simulator.md);
        with `page` (query target only), for the next requests of that page."""
        self._core.faults.inject(
            fault, count, delay=delay, target=target, size=size, location=location, page=page
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
