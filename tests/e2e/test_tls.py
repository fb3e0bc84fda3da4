"""HTTPS to a simulator with a fresh self-signed certificate."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes import wait_for

from exporter.config import TLSConfig
from exporter.simulator import SimulatedEM, SimulatorSettings

from .conftest import MakeExporter
from .helpers import need_openssl, server_config

pytestmark = pytest.mark.integration

OTHER_CA = Path(__file__).parent.parent / "fixtures" / "config" / "ca.pem"
INSECURE_WARNING = "TLS certificate verification is disabled for this EM"


@pytest.fixture(scope="module")
def tls_sim() -> Iterator[SimulatedEM]:
    """One HTTPS simulator for the module: making a certificate runs openssl."""
    need_openssl()
    frozen = datetime.now(UTC)
    with SimulatedEM(
        SimulatorSettings(tls=True, live=False, history_days=1.0), clock=lambda: frozen
    ) as sim:
        assert sim.url.startswith("https://")
        yield sim


@pytest.mark.parametrize(
    "tls",
    [
        pytest.param(TLSConfig(), id="system-CAs"),
        pytest.param(TLSConfig(ca_file=str(OTHER_CA)), id="another-CA"),
    ],
)
def test_an_unknown_certificate_fails_with_reason_tls(
    tls_sim: SimulatedEM, make_exporter: MakeExporter, tls: TLSConfig
) -> None:
    exporter = make_exporter([server_config(tls_sim, tls=tls)])
    assert not exporter.poll()
    result = exporter.scrape()
    assert result.value("veeam_em_up", server="em01") == 0.0
    errors = result.errors("em01")
    assert errors["tls"] == 1.0
    assert sum(errors.values()) == 1.0
    assert "certificate" in (exporter.poller().status.last_error or "")


def test_the_simulators_ca_file_verifies(tls_sim: SimulatedEM, make_exporter: MakeExporter) -> None:
    assert tls_sim.ca_file is not None
    exporter = make_exporter([server_config(tls_sim, tls=TLSConfig(ca_file=tls_sim.ca_file))])
    assert exporter.poll()
    result = exporter.scrape()
    assert result.value("veeam_em_up", server="em01") == 1.0
    assert sum(result.select("veeam_em_system_sessions", server="em01").values()) == len(
        tls_sim.sessions()
    )


def test_insecure_skip_verify_polls_and_logs_a_warning(
    tls_sim: SimulatedEM, make_exporter: MakeExporter, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = make_exporter(
        [server_config(tls_sim, poll_interval=0.2, tls=TLSConfig(insecure_skip_verify=True))]
    )
    with caplog.at_level(logging.INFO, logger="exporter"):
        exporter.start()
        polls = exporter.poller()

        def polled_ok_twice() -> bool:
            result = exporter.scrape()
            return (result.value("veeam_em_polls_total", server="em01") or 0) >= 2 and (
                result.value("veeam_em_up", server="em01") == 1.0
            )

        assert wait_for(polled_ok_twice, 10)
    assert polls.status.last_error is None
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name == "exporter.poller"
    ]
    assert [r.getMessage() for r in warnings] == [INSECURE_WARNING]  # once, not per request
    assert getattr(warnings[0], "fields", {}).get("server") == "em01"
