"""Every request to the EM is bounded: in time, in size, in where it goes, and at shutdown."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from fakes import wait_for

from exporter.config import Format, TLSConfig
from exporter.simulator import SimulatedEM

from .conftest import MakeExporter, MakeSim
from .helpers import ExporterProcess, need_openssl, scrape, server_config, write_config

pytestmark = pytest.mark.integration


def errors(exporter_scrape: dict[str, float]) -> dict[str, float]:
    return {reason: n for reason, n in exporter_scrape.items() if n}


def test_an_answer_trickled_for_ever_fails_as_timeout_within_timeout_plus_one_second(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim()
    exporter = make_exporter([server_config(sim, timeout=1.0)])
    assert exporter.poll()  # logged on: only the fetch is timed below
    sim.inject("trickle", delay=0.2)  # a byte every 0.2 s: no per-read timeout ever fires

    started = time.monotonic()
    assert not exporter.poll()
    took = time.monotonic() - started

    assert took < 1.0 + 1.0
    result = exporter.scrape()
    assert errors(result.errors("em01")) == {"timeout": 1.0}
    assert exporter.poller().status.last_error == (
        "timeout: GET /api/systemSessions: reading the body timed out after 1s"
    )
    assert exporter.poll()  # the next poll recovers


@pytest.mark.parametrize("target", ["systemSessions", "logon"])
def test_over_https_a_trickled_answer_fails_as_timeout_within_the_deadline_too(
    make_sim: MakeSim, make_exporter: MakeExporter, target: str
) -> None:
    need_openssl()
    sim = make_sim(tls=True)
    tls = TLSConfig(ca_file=sim.ca_file)
    exporter = make_exporter([server_config(sim, timeout=1.0, tls=tls)])
    if target == "systemSessions":
        assert exporter.poll()
    sim.inject("trickle", delay=0.2, target=target)  # type: ignore[arg-type]

    started = time.monotonic()
    assert not exporter.poll()

    assert time.monotonic() - started < 1.0 + 1.0
    assert errors(exporter.scrape().errors("em01")) == {"timeout": 1.0}


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_an_answer_past_max_answer_size_fails_as_parse_naming_the_cap(
    make_sim: MakeSim, make_exporter: MakeExporter, fmt: Format
) -> None:
    sim = make_sim()
    server = replace(server_config(sim, fmt=fmt), max_answer_size=1024**2)
    exporter = make_exporter([server])
    assert exporter.poll()
    sim.inject("oversized", size=8 * 1024**2)  # still a valid collection, only too large

    assert not exporter.poll()

    assert errors(exporter.scrape().errors("em01")) == {"parse": 1.0}
    # The exporter asks for gzip: the cap applies to the decoded answer.
    assert exporter.poller().status.last_error == (
        "parse: GET /api/systemSessions: the answer exceeded max_answer_size (1MiB) after decoding"
    )


def test_a_gzip_bomb_fails_the_poll_and_nothing_else(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim()
    exporter = make_exporter([server_config(sim)])
    assert exporter.poll()
    before = exporter.scrape()
    sim.inject("gzip_bomb")

    assert not exporter.poll()

    after = exporter.scrape()
    assert errors(after.errors("em01")) == {"parse": 1.0}
    assert after.select("veeam_em_system_sessions") == before.select("veeam_em_system_sessions")


_BOMB_PROBE = """
import resource, sys
from exporter.config import ServerConfig
from exporter.emclient import EMClient
from exporter.reasons import PollError

url, username, password = sys.argv[1:4]
server = ServerConfig(name="em01", url=url, username=username, password=password, timeout=60.0)

def drain(stream):
    total = 0
    while chunk := stream.read(1 << 16):
        total += len(chunk)
    return total

try:
    print("read", EMClient(server).fetch_sessions(drain))
except PollError as exc:
    print(exc.reason, exc)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _poll_in_a_fresh_process(sim: SimulatedEM) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _BOMB_PROBE, sim.url, sim.settings.username, sim.settings.password],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("VEEAM_EM_")},
    )
    outcome, rss = out.stdout.strip().splitlines()
    return outcome, int(rss)


def test_a_gzip_bomb_costs_no_more_memory_than_an_ordinary_answer(make_sim: MakeSim) -> None:
    # The default cap (1GiB) is read through in full, so the decoder really runs for a while.
    sim = make_sim()
    ordinary, ordinary_kib = _poll_in_a_fresh_process(sim)
    sim.inject("gzip_bomb")  # 10 GiB of zeros in about 10 MB of gzip
    bomb, bomb_kib = _poll_in_a_fresh_process(sim)

    assert ordinary.startswith("read ")
    assert bomb == (
        "parse GET /api/systemSessions: the answer exceeded max_answer_size (1GiB) after decoding"
    )
    assert bomb_kib - ordinary_kib < 16 * 1024, (ordinary_kib, bomb_kib)


@pytest.mark.parametrize("target", ["systemSessions", "logon"])
def test_a_redirect_is_http_and_the_other_host_never_hears_of_it(
    make_sim: MakeSim, make_exporter: MakeExporter, target: str
) -> None:
    sim, other = make_sim(), make_sim()
    exporter = make_exporter([server_config(sim)])
    if target == "systemSessions":
        assert exporter.poll()
    elsewhere = other.url + "/api/systemSessions?format=Entity"
    sim.inject("redirect", location=elsewhere, target=target)  # type: ignore[arg-type]

    assert not exporter.poll()

    assert errors(exporter.scrape().errors("em01")) == {"http": 1.0}
    error = exporter.poller().status.last_error or ""
    assert "HTTP 302 Found" in error and f"redirect to {elsewhere} not followed" in error
    assert other.stats.requests_by_route == {}
    assert other.stats.logons == 0


def test_a_logon_without_session_id_logs_out_by_its_location(
    make_sim: MakeSim, make_exporter: MakeExporter, caplog: pytest.LogCaptureFixture
) -> None:
    sim = make_sim()
    sim.inject("location_only", target="logon")
    exporter = make_exporter([server_config(sim)])
    assert exporter.poll()
    assert sim.stats.faults_served == {"location_only": 1}

    with caplog.at_level(logging.INFO, logger="exporter.emclient"):
        exporter.poller().stop()

    assert sim.stats.logouts == 1
    assert sim.stats.active_tokens() == 0
    lines = [r for r in caplog.records if r.name == "exporter.emclient"]
    assert [(r.getMessage(), r.__dict__["fields"]) for r in lines] == [
        ("logged out", {"server": "em01"})
    ]


def test_a_rotated_password_file_is_used_at_the_next_logon_without_a_restart(
    make_sim: MakeSim, make_exporter: MakeExporter, tmp_path: Path
) -> None:
    secret = tmp_path / "em01.password"
    secret.write_text("First-Pa55word\n", encoding="utf-8")
    sim = make_sim(password="First-Pa55word")
    server = replace(server_config(sim, password="First-Pa55word"), password_file=str(secret))
    exporter = make_exporter([server])
    assert exporter.poll()

    secret.write_text("Second-Pa55word\n", encoding="utf-8")
    sim.set(password="Second-Pa55word")
    sim.expire_tokens()
    assert exporter.poll()
    assert (sim.stats.logons, sim.stats.failed_logons) == (2, 0)

    secret.unlink()
    sim.expire_tokens()
    assert not exporter.poll()
    error = exporter.poller().status.last_error or ""
    assert error == f"auth: cannot read password_file {secret}: No such file or directory"
    assert sim.stats.failed_logons == 0  # nothing was sent without a password
    assert "Pa55word" not in exporter.scrape().text


def test_sigterm_while_the_em_trickles_the_logout_exits_within_seconds(
    make_sim: MakeSim, tmp_path: Path
) -> None:
    sim = make_sim()
    # A per-read timeout this long could never end the logout.
    config = write_config(tmp_path, sim, sim.settings.password, timeout="60s")
    process = ExporterProcess(["--config.file", str(config), "--web.listen-address", "127.0.0.1:0"])
    try:
        base = process.listening_base()
        assert wait_for(lambda: scrape(base).value("veeam_em_up", server="em01") == 1.0, 15)
        sim.inject("trickle", delay=1.0, target="logout")
        began = time.monotonic()
        code = process.terminate(timeout=30)
        took = time.monotonic() - began
    finally:
        process.kill()
    assert code == 0
    assert took < 5.0
    assert sim.stats.faults_served == {"trickle": 1}  # the logout was sent, and trickled
    output = "\n".join(process.lines)
    assert 'msg="logout failed" server=em01 reason=timeout' in output
    assert "msg=stopped" in output
