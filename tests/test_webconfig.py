"""--web.config.file: loading and checking the file, and TLS, client certificates, basic auth and
headers on real sockets, with certificates made by the openssl command line."""

from __future__ import annotations

import base64
import http.client
import io
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
from prometheus_client import CollectorRegistry

from exporter import logs, webauth
from exporter.config import ConfigError
from exporter.web import HTTPServer, make_app
from exporter.webauth import BasicAuth
from exporter.webconfig import WebConfig, load_web_config

USER = "prometheus"
PASSWORD = "scrape-Pa55word"
# Cost 4, the minimum: the tests check behaviour, not bcrypt's slowness.
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


# ---------------------------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_client_cert: Path  # signed by a CA the server does not trust
    other_client_key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True, timeout=60
    )


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    ext = directory / f"{name}.ext"
    ext.write_text(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
    )
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key, cwd=directory)
    _openssl(
        "req", "-new", "-key", key, "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory
    )
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-signkey", key, "-out", cert,
        "-days", "2", "-extfile", ext, cwd=directory,
    )  # fmt: skip
    return cert, key


def _make_leaf(
    directory: Path, name: str, ca: tuple[Path, Path], san: str, usage: str
) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    ext = directory / f"{name}.ext"
    ext.write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
        f"extendedKeyUsage={usage}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key, cwd=directory)
    _openssl(
        "req", "-new", "-key", key, "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory
    )
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", ca[0], "-CAkey", ca[1],
        "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
        "-out", cert, "-days", "2", "-extfile", ext, cwd=directory,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the openssl command line is required in CI")
        pytest.skip("the openssl command line is not installed")
    directory = tmp_path_factory.mktemp("certs")
    ca = _make_ca(directory, "ca")
    other_ca = _make_ca(directory, "other-ca")
    server = _make_leaf(directory, "server", ca, "IP:127.0.0.1,DNS:localhost", "serverAuth")
    client = _make_leaf(
        directory, "client", ca, "DNS:scraper.example,URI:spiffe://test/prometheus", "clientAuth"
    )
    other = _make_leaf(directory, "other-client", other_ca, "DNS:scraper.example", "clientAuth")
    return Certs(directory, ca[0], *server, *client, *other)


# ---------------------------------------------------------------------------------------------
# Helpers


def _write(tmp_path: Path, text: str, name: str = "web.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _tls_yaml(certs: Certs, extra: str = "") -> str:
    return (
        "tls_server_config:\n"
        f"  cert_file: {certs.server_cert}\n"
        f"  key_file: {certs.server_key}\n" + extra
    )


def _load(tmp_path: Path, text: str) -> WebConfig:
    return load_web_config(_write(tmp_path, text))


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return info.value.problems


def _app() -> Any:
    return make_app(CollectorRegistry(), lambda: [])


@contextmanager
def _serving(config: WebConfig | None, app: Any = None) -> Iterator[str]:
    http = HTTPServer(app or _app(), "127.0.0.1:0", web_config=config)
    http.start()
    try:
        yield f"{http.scheme}://127.0.0.1:{http.port}"
    finally:
        http.stop()


def _auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _get_with_context(base: str, context: ssl.SSLContext, path: str = "/-/healthy") -> int:
    port = int(base.rsplit(":", 1)[1])
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------
# TLS on the wire


def test_tls_with_the_ca_bundle_and_not_without(certs: Certs, tmp_path: Path) -> None:
    config = _load(tmp_path, _tls_yaml(certs))
    assert config.tls is not None and config.tls.min_version == "TLS12"

    seen: dict[str, str] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["scheme"] = environ["wsgi.url_scheme"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with _serving(config, app) as base:
        assert base.startswith("https://")
        assert requests.get(base + "/", verify=str(certs.ca), timeout=5).text == "ok"
        assert seen["scheme"] == "https"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(base + "/", timeout=5)  # the system CAs do not know our test CA


def test_min_version_tls13_refuses_a_tls12_client(certs: Certs, tmp_path: Path) -> None:
    tls12_only = ssl.create_default_context(cafile=str(certs.ca))
    tls12_only.maximum_version = ssl.TLSVersion.TLSv1_2

    with _serving(_load(tmp_path, _tls_yaml(certs))) as base:
        assert _get_with_context(base, tls12_only) == 200  # TLS12 is the default minimum

    strict = _load(tmp_path, _tls_yaml(certs, "  min_version: TLS13\n"))
    with _serving(strict) as base:
        with pytest.raises(ssl.SSLError):
            _get_with_context(base, tls12_only)
        assert requests.get(base + "/-/healthy", verify=str(certs.ca), timeout=5).ok


def test_max_version_and_cipher_suites_apply(certs: Certs, tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        _tls_yaml(
            certs,
            "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n",
        ),
    )
    context = ssl.create_default_context(cafile=str(certs.ca))
    with _serving(config) as base:
        port = int(base.rsplit(":", 1)[1])
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            assert conn.version() == "TLSv1.2"
            cipher = conn.cipher()
            assert cipher is not None and cipher[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"


def test_plain_http_to_the_tls_port_fails_cleanly_and_serving_goes_on(
    certs: Certs, tmp_path: Path
) -> None:
    with _serving(_load(tmp_path, _tls_yaml(certs))) as base:
        plain = base.replace("https://", "http://")
        answer = requests.get(plain + "/-/healthy", timeout=5)
        assert answer.status_code == 400
        assert "HTTP request to an HTTPS server" in answer.text
        # Garbage that is neither TLS nor HTTP is simply hung up on.
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"\x00\x01\x02junk")
            assert raw.recv(100) == b""
        assert requests.get(base + "/-/healthy", verify=str(certs.ca), timeout=5).ok


def test_a_silent_client_does_not_block_others(certs: Certs, tmp_path: Path) -> None:
    with _serving(_load(tmp_path, _tls_yaml(certs))) as base:
        port = int(base.rsplit(":", 1)[1])
        # Connected but never says hello: its handshake waits in its own thread.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            started = time.monotonic()
            assert requests.get(base + "/-/healthy", verify=str(certs.ca), timeout=5).ok
            assert time.monotonic() - started < 3


# ---------------------------------------------------------------------------------------------
# Client certificates


def test_require_and_verify_client_cert(certs: Certs, tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        _tls_yaml(
            certs,
            f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {certs.ca}\n",
        ),
    )
    good = (str(certs.client_cert), str(certs.client_key))
    other = (str(certs.other_client_cert), str(certs.other_client_key))
    with _serving(config) as base:
        url = base + "/-/healthy"
        assert requests.get(url, verify=str(certs.ca), cert=good, timeout=5).ok
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, verify=str(certs.ca), timeout=5)
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, verify=str(certs.ca), cert=other, timeout=5)
        assert requests.get(url, verify=str(certs.ca), cert=good, timeout=5).ok


def test_verify_client_cert_if_given(certs: Certs, tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        _tls_yaml(
            certs, f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {certs.ca}\n"
        ),
    )
    with _serving(config) as base:
        url = base + "/-/healthy"
        assert requests.get(url, verify=str(certs.ca), timeout=5).ok
        good = (str(certs.client_cert), str(certs.client_key))
        assert requests.get(url, verify=str(certs.ca), cert=good, timeout=5).ok
        other = (str(certs.other_client_cert), str(certs.other_client_key))
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, verify=str(certs.ca), cert=other, timeout=5)


@pytest.mark.parametrize(
    ("sans", "admitted"),
    [
        ("[scraper.example]", True),
        ("['spiffe://test/prometheus']", True),
        ("[other.example, 10.0.0.1]", False),
    ],
)
def test_client_allowed_sans(certs: Certs, tmp_path: Path, sans: str, admitted: bool) -> None:
    config = _load(
        tmp_path,
        _tls_yaml(
            certs,
            "  client_auth_type: RequireAndVerifyClientCert\n"
            f"  client_ca_file: {certs.ca}\n"
            f"  client_allowed_sans: {sans}\n",
        ),
    )
    good = (str(certs.client_cert), str(certs.client_key))
    with _serving(config) as base:
        url = base + "/-/healthy"
        if admitted:
            assert requests.get(url, verify=str(certs.ca), cert=good, timeout=5).ok
        else:
            with pytest.raises(requests.exceptions.ConnectionError):
                requests.get(url, verify=str(certs.ca), cert=good, timeout=5)


def test_peer_allowed_normalizes_ip_addresses() -> None:
    allowed = frozenset({"2001:db8::1"})
    cert = {"subjectAltName": (("IP Address", "2001:DB8:0:0:0:0:0:1"),)}
    assert webauth.peer_allowed(cert, allowed)
    assert not webauth.peer_allowed({"subjectAltName": (("DNS", "x"),)}, allowed)
    assert not webauth.peer_allowed(None, allowed)
    assert webauth.peer_allowed(None, frozenset())


# ---------------------------------------------------------------------------------------------
# Basic auth and headers


def test_basic_auth_on_every_path(tmp_path: Path) -> None:
    config = _load(tmp_path, f"basic_auth_users:\n  {USER}: '{HASH}'\n")
    assert config.tls is None
    with _serving(config) as base:
        for path in ("/", "/metrics", "/-/healthy", "/-/ready", "/nope"):
            missing = requests.get(base + path, timeout=5)
            assert missing.status_code == 401, path
            assert missing.headers["WWW-Authenticate"] == 'Basic realm="veeam-em-exporter"'
        for headers in (
            _auth(USER, "wrong"),
            _auth("nobody", PASSWORD),
            _auth(USER, PASSWORD + "x"),
            {"Authorization": "Bearer " + PASSWORD},
            {"Authorization": "Basic !!!not-base64"},
            {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        ):
            wrong = requests.get(base + "/-/healthy", headers=headers, timeout=5)
            assert wrong.status_code == 401
            assert "WWW-Authenticate" in wrong.headers
        right = requests.get(base + "/-/healthy", headers=_auth(USER, PASSWORD), timeout=5)
        assert right.status_code == 200 and right.text == "Healthy\n"
        # requests' own auth= sends the same header.
        assert requests.get(base + "/metrics", auth=(USER, PASSWORD), timeout=5).ok


def test_tls_and_basic_auth_together(certs: Certs, tmp_path: Path) -> None:
    config = _load(tmp_path, _tls_yaml(certs) + f"basic_auth_users:\n  {USER}: {HASH}\n")
    with _serving(config) as base:
        url = base + "/metrics"
        assert requests.get(url, verify=str(certs.ca), timeout=5).status_code == 401
        assert requests.get(url, verify=str(certs.ca), auth=(USER, PASSWORD), timeout=5).ok


def test_custom_headers_on_every_response(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "http_server_config:\n"
        "  http2: false\n"
        "  headers:\n"
        "    X-Frame-Options: deny\n"
        "    x-content-type-options: nosniff\n"
        "    Strict-Transport-Security: max-age=31536000\n"
        "    Content-Security-Policy: ''\n"
        f"basic_auth_users:\n  {USER}: {HASH}\n",
    )
    assert not config.http2
    with _serving(config) as base:
        for response in (
            requests.get(base + "/", auth=(USER, PASSWORD), timeout=5),
            requests.get(base + "/-/healthy", timeout=5),  # the 401 too
        ):
            assert response.headers["X-Frame-Options"] == "deny"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
            assert "Content-Security-Policy" not in response.headers  # blank means unset


class _Counting:
    def __init__(self, real: Callable[[bytes, bytes], bool]) -> None:
        self.real = real
        self.calls = 0

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls += 1
        return self.real(password, hashed)


def _status(app: BasicAuth, headers: dict[str, str]) -> str:
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    environ = {"PATH_INFO": "/metrics"}
    if "Authorization" in headers:
        environ["HTTP_AUTHORIZATION"] = headers["Authorization"]
    b"".join(app(environ, start_response))
    return seen[0]


def _ok_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


def test_successful_checks_are_cached_and_wrong_passwords_never_hit_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counting = _Counting(bcrypt.checkpw)
    monkeypatch.setattr(bcrypt, "checkpw", counting)
    app = BasicAuth(_ok_app, {USER: HASH.encode(), "other": HASH.encode()})

    assert _status(app, _auth(USER, PASSWORD)) == "200 OK"
    assert _status(app, _auth(USER, PASSWORD)) == "200 OK"
    assert counting.calls == 1
    for _ in range(2):
        assert _status(app, _auth(USER, "wrong")).startswith("401")
    assert counting.calls == 3  # failures are never cached as successes, nor skipped
    # Same password, other user: a different cache key, checked in full.
    assert _status(app, _auth("other", PASSWORD)) == "200 OK"
    assert counting.calls == 4
    # Unknown users cost a (decoy) bcrypt too, so timing does not reveal valid names.
    assert _status(app, _auth("nobody", PASSWORD)).startswith("401")
    assert counting.calls == 5


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BasicAuth, "CACHE_SIZE", 2)
    counting = _Counting(bcrypt.checkpw)
    monkeypatch.setattr(bcrypt, "checkpw", counting)
    users = {f"u{i}": HASH.encode() for i in range(3)}
    app = BasicAuth(_ok_app, users)
    for name in users:
        assert _status(app, _auth(name, PASSWORD)) == "200 OK"
    assert counting.calls == 3
    assert _status(app, _auth("u0", PASSWORD)) == "200 OK"  # evicted: checked again
    assert counting.calls == 4
    assert _status(app, _auth("u2", PASSWORD)) == "200 OK"  # still cached
    assert counting.calls == 4


def test_passwords_over_72_bytes_behave_as_in_the_toolkit() -> None:
    long_password = "p" * 100
    hashed = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(4))
    app = BasicAuth(_ok_app, {USER: hashed})
    assert _status(app, _auth(USER, long_password)) == "200 OK"
    assert _status(app, _auth(USER, "p" * 71)).startswith("401")


def test_credentials_are_never_logged(tmp_path: Path) -> None:
    out = io.StringIO()
    logs.setup("debug", "logfmt", out)
    try:
        config = _load(tmp_path, f"basic_auth_users:\n  {USER}: {HASH}\n")
        with _serving(config) as base:
            requests.get(base + "/metrics", auth=(USER, "wrong-Pa55word"), timeout=5)
            requests.get(base + "/metrics", auth=(USER, PASSWORD), timeout=5)
    finally:
        logs.setup("info", "logfmt")
    text = out.getvalue()
    assert "unauthorized request" in text
    token = base64.b64encode(f"{USER}:wrong-Pa55word".encode()).decode()
    for secret in ("wrong-Pa55word", PASSWORD, token, HASH):
        assert secret not in text


# ---------------------------------------------------------------------------------------------
# Loading and checking


def test_every_problem_is_listed_with_its_path(certs: Certs, tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        "tls_server_config:\n"
        f"  cert_file: {certs.server_cert}\n"
        "  client_auth_type: RequireAndVerify\n"
        "  min_version: TLS1.2\n"
        "  max_versoin: TLS13\n"
        "http_server_config:\n"
        "  http2: maybe\n"
        "basic_auth_users:\n"
        "  alice: not-a-hash\n"
        "  bob: 42\n"
        "metrics_path: /metrics\n",
    )
    expected = [
        "metrics_path: unknown key",
        "tls_server_config.max_versoin: unknown key (did you mean 'max_version'?)",
        "tls_server_config.key_file: required",
        "tls_server_config.client_auth_type: must be one of NoClientCert, RequestClientCert, "
        "VerifyClientCertIfGiven, RequireAndVerifyClientCert, got 'RequireAndVerify'; "
        "did you mean RequireAndVerifyClientCert?",
        "tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13, got 'TLS1.2'",
        "http_server_config.http2: must be true or false, got string",
        "basic_auth_users.alice: not a bcrypt hash",
        "basic_auth_users.bob: must be a bcrypt hash (a string), got integer",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected), problems
    assert not any("not-a-hash" in p for p in problems)  # hashes are never quoted


def test_file_problems(certs: Certs, tmp_path: Path) -> None:
    junk = _write(tmp_path, "not a certificate\n", "junk.pem")
    problems = _problems(
        tmp_path,
        "tls_server_config:\n"
        f"  cert_file: {tmp_path / 'missing.pem'}\n"
        f"  key_file: {junk}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {junk}\n",
    )
    assert problems == [
        f"tls_server_config.cert_file: cannot read {tmp_path / 'missing.pem'}: "
        "No such file or directory",
        f"tls_server_config.key_file: {junk} holds no PEM private key",
        f"tls_server_config.client_ca_file: {junk} holds no PEM certificate",
    ]


def test_key_that_does_not_match_the_certificate(certs: Certs, tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.client_key}\n",
    )
    assert problems == [
        f"tls_server_config.key_file: {certs.client_key} is not the key of cert_file "
        f"{certs.server_cert}"
    ]


def test_encrypted_keys_are_refused_without_prompting(certs: Certs, tmp_path: Path) -> None:
    encrypted = tmp_path / "encrypted.key"
    _openssl(
        "pkey", "-in", certs.server_key, "-aes256", "-passout", "pass:secret",
        "-out", encrypted, cwd=tmp_path,
    )  # fmt: skip
    problems = _problems(
        tmp_path,
        f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {encrypted}\n",
    )
    assert len(problems) == 1 and "is encrypted" in problems[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "  client_auth_type: RequireAnyClientCert\n",
            "tls_server_config.client_auth_type: RequireAnyClientCert (any certificate, "
            "unverified) cannot be enforced",
        ),
        (
            "  client_auth_type: RequireAndVerifyClientCert\n",
            "tls_server_config.client_ca_file: required with client_auth_type "
            "RequireAndVerifyClientCert",
        ),
        ("  client_ca_file: {ca}\n", "tls_server_config.client_ca_file: set client_auth_type"),
        (
            "  client_allowed_sans: [a.example]\n",
            "tls_server_config.client_allowed_sans: requires client_auth_type "
            "RequireAndVerifyClientCert",
        ),
        ("  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.max_version: TLS12"),
        ("  cipher_suites: [RC4]\n", "tls_server_config.cipher_suites[0]: must be one of"),
        ("  curve_preferences: [P-256]\n", "tls_server_config.curve_preferences[0]: must be"),
        ("  cert: inline\n", "tls_server_config.cert: inline certificates and keys"),
        (
            "  prefer_server_cipher_suites: yes please\n",
            "tls_server_config.prefer_server_cipher_suites: must be true or false",
        ),
    ],
)
def test_tls_setting_problems(certs: Certs, tmp_path: Path, extra: str, message: str) -> None:
    problems = _problems(tmp_path, _tls_yaml(certs, extra.format(ca=certs.ca)))
    assert len(problems) == 1 and problems[0].startswith(message), problems


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("basic_auth_users: [alice]\n", "basic_auth_users: must be a mapping"),
        ("basic_auth_users:\n  'a:b': {hash}\n", "basic_auth_users.a:b: a username cannot"),
        ("basic_auth_users:\n  1000: {hash}\n", "basic_auth_users.1000: username must be a"),
        ("http_server_config:\n  headers:\n    Server: x\n", "http_server_config.headers.Server"),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin",
        ),
        ("rate_limit:\n  burst: 5\n", "rate_limit: not supported"),
        ("- a list\n", "must be a mapping, got a list"),
        ("tls_server_config: [\n", "invalid YAML"),
        ("basic_auth_users: {{}}\nbasic_auth_users: {{}}\n", "duplicate key"),
    ],
)
def test_other_problems(tmp_path: Path, text: str, message: str) -> None:
    problems = _problems(tmp_path, text.format(hash=HASH))
    assert len(problems) == 1 and message in problems[0], problems


def test_any_tls_setting_needs_a_certificate_and_key(tmp_path: Path) -> None:
    assert _problems(tmp_path, "tls_server_config:\n  min_version: TLS13\n") == [
        "tls_server_config.cert_file: required",
        "tls_server_config.key_file: required",
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_web_config(tmp_path / "absent.yml")


def test_empty_and_no_op_configs_warn(tmp_path: Path) -> None:
    empty = _load(tmp_path, "")
    assert empty == WebConfig(warnings=empty.warnings)
    assert "without TLS or basic auth" in empty.warnings[0]
    assert "without TLS or basic auth" in _load(tmp_path, "tls_server_config: {}\n").warnings[0]


def test_ignored_settings_are_reported(certs: Certs, tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        _tls_yaml(
            certs,
            "  curve_preferences: [X25519, CurveP256]\n"
            "  cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n"
            "  prefer_server_cipher_suites: false\n"
            "  min_version: TLS11\n",
        ),
    )
    assert config.tls is not None
    assert not config.tls.prefer_server_cipher_suites
    assert not config.tls.context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    joined = "\n".join(config.warnings)
    assert "curve_preferences ignored" in joined
    assert "TLS_AES_128_GCM_SHA256 ignored" in joined
    assert "TLS11 is insecure" in joined


def test_relative_paths_are_read_beside_the_web_config(certs: Certs) -> None:
    config = load_web_config(
        _write(certs.dir, "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n")
    )
    assert config.tls is not None
    assert config.tls.cert_file == str(certs.server_cert)
    assert config.tls.key_file == str(certs.server_key)


def test_repr_shows_no_hashes(tmp_path: Path) -> None:
    config = _load(tmp_path, f"basic_auth_users:\n  {USER}: {HASH}\n")
    assert config.basic_auth_users == {USER: HASH.encode()}
    assert HASH not in repr(config)
