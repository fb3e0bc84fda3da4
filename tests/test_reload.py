"""Reload: added, removed and changed servers; counters kept by name; a type a reload lets in\ntakes its own baseline; a bad config kept out."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from answers import DAY, Session, xml_answer
from fakes import (
    FIXTURES,
    Answer,
    FakeEM,
    ScriptedSource,
    exporter_process,
    free_port,
    ready,
    stop_process,
    wait_for,
)
from prometheus_client import CollectorRegistry

from exporter.app import Exporter
from exporter.config import Config, ServerConfig, SessionTypeFilter
from exporter.poller import SessionSource

POLL1 = (FIXTURES / "golden_poll1.xml").read_bytes()
POLL2 = (FIXTURES / "golden_poll2.xml").read_bytes()


def server(name: str, url: str = "https://em.example.com:9398") -> ServerConfig:
    return ServerConfig(name=name, url=url, username="u", password="pw-123456")


class Sources:
    """Hands out scripted sources and remembers them, to see which were closed."""

    def __init__(self) -> None:
        self.made: list[tuple[str, ScriptedSource]] = []

    def __call__(self, cfg: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
        # A server's first source starts at POLL1; a replacement continues at POLL2, where
        # a kept ledger counts the new finishes and a fresh one would only take a baseline.
        seen_before = any(name == cfg.name for name, _ in self.made)
        answers: list[Answer] = [POLL2, POLL2] if seen_before else [POLL1, POLL2, POLL2]
        source = ScriptedSource(answers, on_logon)
        self.made.append((cfg.name, source))
        return source


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_added_removed_changed_and_unchanged_servers() -> None:
    sources = Sources()
    clock = [1000.0]
    exporter = Exporter(client_factory=sources, clock=lambda: clock[0])
    exporter.apply(Config(servers=(server("keep"), server("drop"), server("change"))))
    assert value(exporter.registry, "veeam_em_config_last_reload_successful") == 1
    assert value(exporter.registry, "veeam_em_config_last_reload_success_timestamp_seconds") == 1000
    before = {p.server.name: p for p in exporter.pollers()}
    for poller in before.values():
        poller.poll_once()  # the baseline

    clock[0] = 2000.0
    exporter.apply(
        Config(
            servers=(
                server("keep"),
                server("change", url="https://em-new.example.com:9398"),
                server("new"),
            )
        )
    )
    after = {p.server.name: p for p in exporter.pollers()}
    assert set(after) == {"keep", "change", "new"}
    assert after["keep"] is before["keep"]
    assert after["change"] is not before["change"]
    assert after["change"].server.url == "https://em-new.example.com:9398"
    # Removed and changed servers were stopped, which logs out of their EM.
    closed = {name for name, source in sources.made if source.closed}
    assert closed == {"drop", "change"}
    # The removed server's series are gone; the new one's exist from the start.
    assert value(exporter.registry, "veeam_em_up", server="drop") is None
    assert value(exporter.registry, "veeam_em_up", server="new") == 0
    assert value(exporter.registry, "veeam_em_config_last_reload_success_timestamp_seconds") == 2000

    # Until its first poll ends, the changed server shows what its predecessor last saw.
    assert after["change"].polled_once()
    assert after["change"].state.snapshot is before["change"].state.snapshot
    assert value(exporter.registry, "veeam_em_up", server="change") == 1
    # The changed server kept its ledger: its next poll counts new finishes, no new baseline.
    assert after["change"].poll_once()
    assert (
        value(
            exporter.registry,
            "veeam_em_system_sessions_finished_total",
            server="change",
            session_type="CollectJob",
            result="Failed",
        )
        == 1
    )


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            replace(server("em01"), session_types=SessionTypeFilter(exclude=("LogExport",))),
            server("em01"),
        ),
        (
            replace(server("em01"), max_session_types=1),
            replace(server("em01"), max_session_types=2),
        ),
    ],
    ids=["filter-allows-it", "cap-lets-it-in"],
)
def test_a_type_a_reload_lets_in_takes_its_own_baseline_and_counters_survive(
    before: ServerConfig, after: ServerConfig
) -> None:
    t0 = 1_750_000_000.0
    clock = [t0]
    history = [
        Session(f"log{day}", "LogExport", created=t0 - day * DAY, result="Failed")
        for day in range(30)
    ]
    base = Session("base", created=t0 - 60)
    failure = Session("c-new", created=t0 + 30, result="Failed")
    log_failure = Session("log-new", "LogExport", created=t0 + 150, result="Failed")
    answers: list[Answer] = [
        xml_answer(base, *history),
        xml_answer(base, failure, *history),
        xml_answer(base, failure, *history),  # the first answer after the reload
        xml_answer(base, failure, log_failure, *history),
    ]
    exporter = Exporter(
        client_factory=lambda cfg, on_logon: ScriptedSource(answers, on_logon),
        clock=lambda: clock[0],
    )

    def failed(session_type: str) -> float | None:
        return value(
            exporter.registry,
            "veeam_em_system_sessions_finished_total",
            server="em01",
            session_type=session_type,
            result="Failed",
        )

    def poll() -> None:
        clock[0] += 60
        [poller] = exporter.pollers()
        assert poller.poll_once()

    exporter.apply(Config(servers=(before,)))
    poll()
    poll()
    assert failed("CollectJob") == 1 and failed("LogExport") is None
    [first] = exporter.pollers()
    exporter.apply(Config(servers=(after,)))
    assert exporter.pollers()[0] is not first
    assert failed("CollectJob") == 1  # before the next poll ends, too
    poll()
    # LogExport's 30 days are history; CollectJob's counter neither reset nor grew.
    assert failed("LogExport") == 0 and failed("CollectJob") == 1
    poll()
    assert failed("LogExport") == 1 and failed("CollectJob") == 1


def test_failed_reload_sets_the_gauge_and_keeps_the_timestamp() -> None:
    exporter = Exporter(client_factory=Sources(), clock=lambda: 1000.0)
    exporter.apply(Config(servers=(server("a"),)))
    exporter.reload_failed()
    assert value(exporter.registry, "veeam_em_config_last_reload_successful") == 0
    assert value(exporter.registry, "veeam_em_config_last_reload_success_timestamp_seconds") == 1000
    assert [p.server.name for p in exporter.pollers()] == ["a"]


def _config(path: Path, em_url: str, names: list[str]) -> None:
    lines = ["servers:"]
    for name in names:
        lines += [
            f"  - name: {name}",
            f"    url: {em_url}",
            "    username: svc",
            "    password: pw-123456",
        ]
    path.write_text("\n".join(lines) + "\n")


def _metrics(base: str) -> str:
    return requests.get(base + "/metrics", timeout=5).text


@pytest.mark.integration
def test_sighup_and_lifecycle_reload_in_the_real_process(tmp_path: Path, fake_em: str) -> None:
    config = tmp_path / "config.yml"
    _config(config, fake_em, ["em01"])
    port = free_port()
    with exporter_process(config, port, "--web.enable-lifecycle") as proc:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: ready(base), timeout=15)

        _config(config, fake_em, ["em01", "em02"])
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: 'veeam_em_up{server="em02"} 1.0' in _metrics(base), timeout=15)

        config.write_text("servers: [{name: broken}]\n")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(
            lambda: "veeam_em_config_last_reload_successful 0.0" in _metrics(base), timeout=15
        )
        assert 'veeam_em_up{server="em02"} 1.0' in _metrics(base)

        _config(config, fake_em, ["em02"])
        answer = requests.post(base + "/-/reload", timeout=10)
        assert answer.status_code == 200
        text = _metrics(base)
        assert "veeam_em_config_last_reload_successful 1.0" in text
        assert 'server="em01"' not in text
        assert requests.get(base + "/-/reload", timeout=5).status_code == 405

        config.write_text("servers: 5\n")
        refused = requests.post(base + "/-/reload", timeout=10)
        assert refused.status_code == 500
        assert "servers" in refused.text

        err = stop_process(proc)
    assert proc.returncode == 0
    assert 'msg="configuration reloaded"' in err
    assert 'msg="reload failed, keeping the running configuration"' in err
    # em01 was removed by the reload, so its logon session was closed then.
    assert sum(call.startswith("DELETE /api/logonSessions/") for call in FakeEM.calls) >= 2


@pytest.mark.integration
def test_lifecycle_endpoint_is_off_by_default(tmp_path: Path, fake_em: str) -> None:
    config = tmp_path / "config.yml"
    _config(config, fake_em, ["em01"])
    port = free_port()
    with exporter_process(config, port) as proc:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: ready(base), timeout=15)
        assert requests.post(base + "/-/reload", timeout=5).status_code == 404
        stop_process(proc)
