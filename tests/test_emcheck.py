"""``--em.check`` against the simulated EM over real loopback sockets: one line per server,
the poll's error reason on failure, exit 0/1/2, nothing served, no secret on any line."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

import pytest
from e2e.helpers import need_openssl
from fakes import free_port

import exporter
import exporter.emclient
from exporter import emcheck, redact
from exporter.cli import main
from exporter.config import Config, ServerConfig
from exporter.simulator import SimulatedEM, SimulatorSettings

pytestmark = pytest.mark.integration

T = TypeVar("T")
PASSWORD = "Em-Ch3ck-Pa55word"
OK_LINE = re.compile(
    r"^(?P<name>\S+): ok, (?P<sessions>\d+) sessions? of (?P<types>\d+) types? in \d+\.\ds$"
)
JOB_LINE = re.compile(
    r"^(?P<name>\S+) job_sessions: ok, (?P<sessions>\d+) sessions? of (?P<jobs>\d+) jobs?"
    r"(?P<cut>; .*)? in \d+\.\ds$"
)


@pytest.fixture
def sim() -> Iterator[SimulatedEM]:
    frozen = datetime.now(UTC)
    settings = SimulatorSettings(live=False, history_days=1.0, password=PASSWORD)
    with SimulatedEM(settings, clock=lambda: frozen) as em:
        yield em


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every logon token and session id the client was handed, so a test can look for them."""
    seen: list[str] = []
    register = redact.register_token

    def record(token: str) -> None:
        seen.append(token)
        register(token)

    monkeypatch.setattr(exporter.emclient, "register_token", record)
    return seen


def server_entry(name: str, url: str, password: str = PASSWORD, **extra: str) -> str:
    lines = [
        f"  - name: {name}",
        f"    url: {url}",
        "    username: 'CORP\\svc_monitoring'",
        f"    password: '{password}'",
        "    timeout: 5s",
    ]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def write_config(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text("servers:\n" + "".join(entries))
    return path


Run = Callable[..., tuple[int, list[str], str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], tokens: list[str]) -> Run:
    """main() with --em.check; (exit code, stdout lines, stderr), no secret in either."""

    def go(config: Path, *flags: str) -> tuple[int, list[str], str]:
        code = main(["--config.file", str(config), "--em.check", *flags])
        out, err = capsys.readouterr()
        for secret in (PASSWORD, *tokens):
            assert secret not in out
            assert secret not in err
        return code, out.splitlines(), err

    return go


def test_a_reachable_em_is_ok_with_its_session_and_type_counts(
    tmp_path: Path, sim: SimulatedEM, run: Run, tokens: list[str]
) -> None:
    code, lines, _ = run(write_config(tmp_path, server_entry("em01", sim.url)))
    assert code == 0
    assert len(lines) == 2
    match = OK_LINE.match(lines[0])
    assert match, lines
    sessions = sim.sessions()
    assert match["name"] == "em01"
    assert int(match["sessions"]) == len(sessions)
    assert int(match["types"]) == len({s.session_type for s in sessions})
    # Then the job sessions, read as the first poll reads them: every session the EM shows
    # (the history is a day, inside the bootstrap window), of every job that has one.
    jobs = JOB_LINE.match(lines[1])
    assert jobs, lines
    job_sessions = sim.job_sessions()
    assert job_sessions
    assert jobs["name"] == "em01"
    assert int(jobs["sessions"]) == len(job_sessions)
    assert int(jobs["jobs"]) == len({s.job_uid for s in job_sessions})
    assert jobs["cut"] is None
    # It logged on once for both, and out again.
    assert tokens
    assert sim.stats.logons == 1
    assert sim.stats.logouts == 1
    assert sim.stats.active_tokens() == 0


def test_the_session_types_filter_applies_as_in_a_poll(
    tmp_path: Path, sim: SimulatedEM, run: Run
) -> None:
    kept = sorted({s.session_type for s in sim.sessions()})[0]
    entry = server_entry("em01", sim.url) + f"    session_types:\n      include: ['{kept}']\n"
    code, lines, _ = run(write_config(tmp_path, entry))
    assert code == 0
    match = OK_LINE.match(lines[0])
    assert match, lines
    assert int(match["types"]) == 1
    assert int(match["sessions"]) == sum(1 for s in sim.sessions() if s.session_type == kept)


def test_a_wrong_password_fails_with_reason_auth_and_costs_one_logon(
    tmp_path: Path, sim: SimulatedEM, run: Run
) -> None:
    wrong = "Wr0ng-Pa55word-For-Check"
    code, lines, err = run(write_config(tmp_path, server_entry("em01", sim.url, password=wrong)))
    assert code == 1
    # The job sessions are not tried: the EM refused the logon, and would again.
    assert len(lines) == 1
    assert lines[0].startswith("em01: auth: logon refused: HTTP 401"), lines
    assert wrong not in "\n".join(lines) + err
    assert sim.stats.logons == 0


def test_a_role_that_may_not_read_job_sessions_fails_that_line_and_the_check(
    tmp_path: Path, sim: SimulatedEM, run: Run
) -> None:
    sim.inject("403", 1, target="query")
    code, lines, _ = run(write_config(tmp_path, server_entry("em01", sim.url)))
    assert code == 1
    assert OK_LINE.match(lines[0]), lines
    assert lines[1].startswith("em01 job_sessions: auth: "), lines
    assert "HTTP 403" in lines[1]
    assert "job_sessions.enabled: false" in lines[1]
    assert sim.stats.logons == 1


def test_job_sessions_disabled_are_not_checked(tmp_path: Path, sim: SimulatedEM, run: Run) -> None:
    entry = server_entry("em01", sim.url) + "    job_sessions:\n      enabled: false\n"
    code, lines, _ = run(write_config(tmp_path, entry))
    assert code == 0
    assert len(lines) == 1
    assert OK_LINE.match(lines[0]), lines
    assert not any("query" in route for route in sim.stats.requests_by_route), (
        sim.stats.requests_by_route
    )


def test_a_window_cut_at_max_pages_is_ok_and_said(tmp_path: Path, run: Run) -> None:
    frozen = datetime.now(UTC)
    settings = SimulatorSettings(
        live=False, history_days=1.0, password=PASSWORD, jobs=40, job_runs_per_day=4.0
    )
    with SimulatedEM(settings, clock=lambda: frozen) as em:
        assert len(em.job_sessions()) > 50
        entry = server_entry("em01", em.url) + (
            "    job_sessions:\n      page_size: 50\n      max_pages: 1\n"
        )
        code, lines, _ = run(write_config(tmp_path, entry))
    assert code == 0, lines
    jobs = JOB_LINE.match(lines[1])
    assert jobs, lines
    assert int(jobs["sessions"]) == 50
    assert jobs["cut"] == (
        "; the window query cut at max_pages (1 page of 50): raise max_pages or page_size"
    )


def test_an_unknown_certificate_fails_with_reason_tls(tmp_path: Path, run: Run) -> None:
    need_openssl()
    settings = SimulatorSettings(live=False, history_days=1.0, password=PASSWORD, tls=True)
    with SimulatedEM(settings) as tls_sim:
        assert tls_sim.url.startswith("https://")
        code, lines, _ = run(write_config(tmp_path, server_entry("em01", tls_sim.url)))
        assert code == 1
        assert lines[0].startswith("em01: tls: "), lines
        assert "certificate" in lines[0]
        assert tls_sim.stats.logons == 0
        # With the simulator's CA the same EM is ok.
        assert tls_sim.ca_file is not None
        entry = server_entry("em01", tls_sim.url) + f"    tls:\n      ca_file: {tls_sim.ca_file}\n"
        code, lines, _ = run(write_config(tmp_path, entry))
        assert code == 0
        assert OK_LINE.match(lines[0]), lines
        assert JOB_LINE.match(lines[1]), lines


def test_a_closed_port_fails_with_reason_connection(tmp_path: Path, run: Run) -> None:
    code, lines, _ = run(
        write_config(tmp_path, server_entry("em01", f"http://127.0.0.1:{free_port()}"))
    )
    assert code == 1
    assert lines == [lines[0]]
    assert lines[0].startswith("em01: connection: "), lines


def test_every_server_gets_its_line_in_configuration_order(
    tmp_path: Path, sim: SimulatedEM, run: Run
) -> None:
    config = write_config(
        tmp_path,
        server_entry("em-closed", f"http://127.0.0.1:{free_port()}"),
        server_entry("em-good", sim.url),
        server_entry("em-refused", sim.url, password="An0ther-Wr0ng-One"),
    )
    code, lines, _ = run(config)
    assert code == 1
    assert [line.split(":", 1)[0] for line in lines] == [
        "em-closed",
        "em-good",
        "em-good job_sessions",
        "em-refused",
    ]
    assert lines[0].startswith("em-closed: connection: ")
    assert OK_LINE.match(lines[1]), lines
    assert JOB_LINE.match(lines[2]), lines
    assert lines[3].startswith("em-refused: auth: ")


def test_a_bad_config_exits_2_as_config_check_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yml"
    config.write_text("servers:\n  - name: em01\n    url: ftp://em01\n")
    assert main(["--config.file", str(config), "--config.check"]) == 2
    expected = capsys.readouterr()
    assert main(["--config.file", str(config), "--em.check"]) == 2
    got = capsys.readouterr()
    assert got.out == expected.out == ""
    assert got.err == expected.err
    assert "invalid configuration" in got.err


def test_nothing_is_served_even_on_a_taken_listen_address(
    tmp_path: Path, sim: SimulatedEM, run: Run
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        code, lines, err = run(
            write_config(tmp_path, server_entry("em01", sim.url)), "--web.listen-address", address
        )
    # Serving would have failed with exit 1 and "cannot start".
    assert code == 0, err
    assert "cannot start" not in err
    assert "listening" not in err
    assert OK_LINE.match(lines[0]), lines


def test_em_check_cannot_be_combined_with_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--demo", "--em.check"]) == 2
    assert "--em.check and --demo" in capsys.readouterr().err


def test_the_real_process_checks_and_exits(tmp_path: Path, sim: SimulatedEM) -> None:
    config = write_config(tmp_path, server_entry("em01", sim.url))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(exporter.__file__).parent.parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(config), "--em.check"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    assert OK_LINE.match(lines[0]), lines
    assert JOB_LINE.match(lines[1]), lines
    assert PASSWORD not in proc.stdout + proc.stderr
    assert sim.stats.active_tokens() == 0


def test_with_config_check_the_summary_comes_first(
    tmp_path: Path, sim: SimulatedEM, run: Run
) -> None:
    code, lines, _ = run(write_config(tmp_path, server_entry("em01", sim.url)), "--config.check")
    assert code == 0
    assert lines[0] == "1 server"
    assert "warnings:" in lines
    assert OK_LINE.match(lines[-2]), lines
    assert JOB_LINE.match(lines[-1]), lines


class _BrokenClient:
    """A client whose fetch fails as a bug would, to see the check report it and log out."""

    def __init__(self) -> None:
        self.closed = False

    def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T:
        raise RuntimeError("bug")

    def close(self, timeout: float = 3.0) -> None:
        self.closed = True


def test_an_unexpected_error_costs_that_servers_line_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = _BrokenClient()
    servers = (
        ServerConfig(name="em01", url="https://em01.example.com", username="u", password=PASSWORD),
    )
    code = emcheck.run(Config(servers=servers), client_factory=lambda server, on_logon: broken)
    assert code == 1
    assert capsys.readouterr().out == (
        "em01: parse: unexpected RuntimeError while reading the answer\n"
    )
    assert broken.closed
