"""HTTPS with a self-signed certificate made by openssl."""

from __future__ import annotations

import http.client
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from exporter.simulator import (
    OpenSSLMissingError,
    SimulatedEM,
    SimulatorSettings,
    openssl_available,
)

from .helpers import ManualClock, logon


@pytest.fixture
def tls_em(clock: ManualClock) -> Iterator[SimulatedEM]:
    if not openssl_available():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have the openssl program for the TLS tests")
        pytest.skip("the openssl program is not installed; TLS mode cannot make a certificate")
    with SimulatedEM(SimulatorSettings(history_days=1, tls=True), clock=clock) as em:
        yield em


def test_https_verifies_with_the_ca_file(tls_em: SimulatedEM) -> None:
    assert tls_em.url.startswith("https://127.0.0.1:")
    assert tls_em.ca_file is not None and Path(tls_em.ca_file).is_file()
    response = requests.get(tls_em.url + "/api/", verify=tls_em.ca_file, timeout=10)
    assert response.status_code == 200
    token = logon(tls_em, verify=tls_em.ca_file)
    listing = requests.get(
        tls_em.url + "/api/systemSessions?format=Entity",
        headers={"X-RestSvcSessionId": token},
        verify=tls_em.ca_file,
        timeout=10,
    )
    assert listing.status_code == 200
    assert listing.text.count("<Sessions ") == len(tls_em.sessions())
    assert f"{tls_em.url}/api/systemSessions/" in listing.text


def test_https_by_localhost_name_and_strict_verification(tls_em: SimulatedEM) -> None:
    port = tls_em.url.rsplit(":", 1)[1]
    response = requests.get(f"https://localhost:{port}/api/", verify=tls_em.ca_file, timeout=10)
    assert response.status_code == 200
    context = ssl.create_default_context(cafile=tls_em.ca_file)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    connection = http.client.HTTPSConnection("127.0.0.1", int(port), context=context, timeout=10)
    connection.request("GET", "/api/")
    assert connection.getresponse().status == 200
    connection.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_fails_verification_without_the_ca_file(tls_em: SimulatedEM) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_em.url + "/api/", timeout=10)
    # A refused handshake must not hurt the server.
    assert requests.get(tls_em.url + "/api/", verify=tls_em.ca_file, timeout=10).ok
    assert requests.get(tls_em.url + "/api/", verify=False, timeout=10).ok  # noqa: S501


def test_plain_http_is_not_spoken_on_the_tls_port(tls_em: SimulatedEM) -> None:
    plain = tls_em.url.replace("https://", "http://")
    with pytest.raises(requests.ConnectionError):
        requests.get(plain + "/api/", timeout=10)


def test_the_certificate_is_removed_on_stop(tls_em: SimulatedEM) -> None:
    ca_file = tls_em.ca_file
    assert ca_file is not None
    tls_em.stop()
    assert not Path(ca_file).exists()


def test_missing_openssl_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    monkeypatch.setattr("exporter.simulator.tlsutil.shutil.which", lambda name: None)
    em = SimulatedEM(SimulatorSettings(history_days=0, tls=True), clock=clock)
    with pytest.raises(OpenSSLMissingError, match="openssl"):
        em.start()
    assert not em.running
