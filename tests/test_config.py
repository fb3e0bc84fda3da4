"""exporter.config: loading, defaults, strict validation with paths, env, summary."""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.config import (
    Config,
    ConfigError,
    ServerConfig,
    SessionTypeFilter,
    TLSConfig,
    format_duration,
    load_env,
    load_file,
    normalize_url,
    parse_duration,
    summary,
)

FIXTURES = Path(__file__).parent / "fixtures" / "config"
CA_PEM = FIXTURES / "ca.pem"
SECRET = "Hunter2-Very-Secret-Value"


def write(tmp_path: Path, text: str, name: str = "config.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(load: Callable[[], Config]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load()
    assert info.value.problems, "a ConfigError must carry at least one problem"
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def paths(found: list[str]) -> list[str]:
    return [problem.split(": ", 1)[0] for problem in found]


MINIMAL = """\
servers:
  - name: em01
    url: https://em01.example.com:9398
    username: svc
    password: pw
"""


# --- valid files ------------------------------------------------------------------------------


def test_full_fixture_round_trips_into_the_dataclasses() -> None:
    config = load_file(str(FIXTURES / "full.yml"))

    assert config == Config(
        poll_interval=30.0,
        stale_after=300.0,
        servers=(
            ServerConfig(
                name="em01",
                url="https://em01.example.com:9398",
                username="CORP\\svc_monitoring",
                password="inline-pa55word",
                poll_interval=120.0,
                stale_after=600.0,
                timeout=15.0,
                format="json",
                tls=TLSConfig(ca_file=str(CA_PEM), insecure_skip_verify=False),
                session_types=SessionTypeFilter(
                    include=("CollectJob", "CatalogReplicationJob"), exclude=()
                ),
            ),
            ServerConfig(
                name="em02",
                url="http://10.0.0.7:9399",
                username="monitor",
                password="s3cr3t-from-file",
                password_file=str(FIXTURES / "em02.secret"),
                poll_interval=30.0,
                stale_after=300.0,
                timeout=30.0,
                format="xml",
                tls=TLSConfig(ca_file=None, insecure_skip_verify=True),
                session_types=SessionTypeFilter(include=(), exclude=("LogExport",)),
            ),
        ),
    )
    # Equality ignores nothing, but be explicit about the secret read from the file.
    assert config.servers[1].password == "s3cr3t-from-file"


def test_defaults(tmp_path: Path) -> None:
    config = load_file(write(tmp_path, MINIMAL))

    assert config.poll_interval == 60.0
    assert config.stale_after == 180.0
    (server,) = config.servers
    assert server == ServerConfig(
        name="em01",
        url="https://em01.example.com:9398",
        username="svc",
        password="pw",
        poll_interval=60.0,
        stale_after=180.0,
        timeout=30.0,
        format="xml",
        tls=TLSConfig(),
        session_types=SessionTypeFilter(),
        password_file=None,
    )


def test_null_values_mean_the_default(tmp_path: Path) -> None:
    config = load_file(
        write(
            tmp_path,
            MINIMAL
            + "    timeout:\n    tls:\n    session_types:\n      include:\npoll_interval: ~\n",
        )
    )
    assert config.poll_interval == 60.0
    assert config.servers[0].timeout == 30.0
    assert config.servers[0].tls == TLSConfig()
    assert config.servers[0].session_types == SessionTypeFilter()


@pytest.mark.parametrize(
    ("top", "server_extra", "expected_poll", "expected_stale", "expected_global_stale"),
    [
        # stale_after defaults to 3 x the server's own effective poll_interval.
        ("poll_interval: 20s\n", "", 20.0, 60.0, 60.0),
        ("", "    poll_interval: 2m\n", 120.0, 360.0, 180.0),
        ("poll_interval: 20s\n", "    poll_interval: 40s\n", 40.0, 120.0, 60.0),
        # An explicit global stale_after is inherited as is.
        ("stale_after: 10m\n", "    poll_interval: 2m\n", 120.0, 600.0, 600.0),
        # A per-server stale_after wins over everything.
        ("stale_after: 10m\n", "    stale_after: 90s\n", 60.0, 90.0, 600.0),
        # Equal is allowed: stale_after must be at least the poll interval.
        ("poll_interval: 1m\nstale_after: 1m\n", "", 60.0, 60.0, 60.0),
    ],
)
def test_effective_poll_interval_and_stale_after(
    tmp_path: Path,
    top: str,
    server_extra: str,
    expected_poll: float,
    expected_stale: float,
    expected_global_stale: float,
) -> None:
    config = load_file(write(tmp_path, top + MINIMAL + server_extra))
    assert config.servers[0].poll_interval == expected_poll
    assert config.servers[0].stale_after == expected_stale
    assert config.stale_after == expected_global_stale


def test_relative_paths_are_read_beside_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "pw").write_text(f"  {SECRET}\r\n\n", encoding="utf-8")
    shutil.copy(CA_PEM, conf_dir / "ca.pem")
    text = MINIMAL.replace("password: pw", "password_file: pw") + "    tls: {ca_file: ca.pem}\n"
    path = write(conf_dir, text)
    monkeypatch.chdir(tmp_path)  # somewhere else: the relative paths must still resolve

    server = load_file(path).servers[0]

    assert server.password == SECRET  # surrounding whitespace and newlines stripped
    assert server.password_file == str(conf_dir / "pw")
    assert server.tls.ca_file == str(conf_dir / "ca.pem")


def test_format_is_case_insensitive(tmp_path: Path) -> None:
    config = load_file(write(tmp_path, MINIMAL + "    format: JSON\n"))
    assert config.servers[0].format == "json"


# --- durations and urls -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("5ms", 0.005),
        ("1m5ms", 60.005),
        ("1d", 86400.0),
        ("2w", 14 * 86400.0),
        ("1y", 365 * 86400.0),
        ("1d2h3m4s", 86400.0 + 7200 + 180 + 4),
        ("0s", 0.0),
        ("0", 0.0),
        ("90", 90.0),
        ("1.5", 1.5),
        (" 5m ", 300.0),
        (90, 90.0),
        (0, 0.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration_accepts(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-5", "negative"),
        ("-5s", "negative"),
        (-1, "negative"),
        (-0.5, "negative"),
        (True, "boolean"),
        (False, "boolean"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (None, "NoneType"),
        ([60], "list"),
        ("abc", "'abc'"),
        ("1.5h", "'1.5h'"),  # Prometheus allows no fractions with units
        ("5m1h", "'5m1h'"),  # units largest first
        ("5 m", "'5 m'"),
        ("1h1h", "'1h1h'"),
        ("s", "'s'"),
        ("10sec", "'10sec'"),
        ("1e3", "'1e3'"),
    ],
)
def test_parse_duration_rejects(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as info:
        parse_duration(value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(90.0, "1m30s"), (0.5, "500ms"), (0.0, "0s"), (86400.0 * 8, "1w1d"), (0.0001, "0.0001s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["1h30m", "500ms", "1y2w3d4h5m6s7ms", "10s"])
def test_format_duration_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://em01.example.com:9398", "https://em01.example.com:9398"),
        ("https://em01.example.com:9398/", "https://em01.example.com:9398"),
        ("HTTPS://EM01.Example.COM:9398", "https://em01.example.com:9398"),
        ("http://10.0.0.1", "http://10.0.0.1"),
        ("  https://em01:9398  ", "https://em01:9398"),
        ("https://[2001:db8::1]:9398/", "https://[2001:db8::1]:9398"),
    ],
)
def test_normalize_url_accepts(url: str, normal: str) -> None:
    assert normalize_url(url) == normal


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("em01.example.com:9398", "must start with http:// or https://"),
        ("ftp://em01.example.com", "scheme must be http or https"),
        ("https://", "no host"),
        ("https://:9398", "no host"),
        ("https://em01:99999", "invalid port"),
        ("https://em01:abc", "invalid port"),
        ("https://em01:9398/api", "/api"),
        ("https://em01:9398/api/", "/api"),
        ("https://em01:9398/veeam", "must not have a path, got '/veeam'"),
        ("https://em01:9398/?x=1", "query"),
        ("https://em01:9398/#top", "fragment"),
        ("https://em 01:9398", "whitespace"),
        ("https://user:pw@em01:9398", "credentials"),
    ],
)
def test_normalize_url_rejects(url: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        normalize_url(url)


# --- one case per error class -------------------------------------------------------------------


def _minimal_with(replace: str = "", by: str = "", extra: str = "", top: str = "") -> str:
    text = MINIMAL.replace(replace, by) if replace else MINIMAL
    return top + text + extra


ERROR_CASES = [
    pytest.param(_minimal_with(top="colour: blue\n"), "colour", "unknown key", id="unknown-top"),
    pytest.param(
        _minimal_with(extra="    passwort: x\n"),
        "servers[0].passwort",
        "did you mean 'password'",
        id="unknown-server-key",
    ),
    pytest.param(
        _minimal_with(extra="    tls:\n      verify: false\n"),
        "servers[0].tls.verify",
        "unknown key",
        id="unknown-tls-key",
    ),
    pytest.param(
        _minimal_with(extra="    session_types:\n      only: [A]\n"),
        "servers[0].session_types.only",
        "unknown key",
        id="unknown-session-types-key",
    ),
    pytest.param(
        _minimal_with(extra="    tls:\n      insecure_skip_verify: 'yes'\n"),
        "servers[0].tls.insecure_skip_verify",
        "must be true or false, got string",
        id="string-not-bool",
    ),
    pytest.param(
        _minimal_with(extra="    timeout: true\n"),
        "servers[0].timeout",
        "got boolean",
        id="bool-not-duration",
    ),
    pytest.param(
        _minimal_with(extra="    session_types:\n      exclude: LogExport\n"),
        "servers[0].session_types.exclude",
        "must be a list of strings, got string",
        id="string-not-list",
    ),
    pytest.param(
        _minimal_with(extra="    session_types:\n      include: [A, 3]\n"),
        "servers[0].session_types.include[1]",
        "must be a string, got integer",
        id="list-item-type",
    ),
    pytest.param(
        _minimal_with(extra="    tls: [ca.pem]\n"),
        "servers[0].tls",
        "must be a mapping, got list",
        id="tls-not-mapping",
    ),
    pytest.param(
        _minimal_with("name: em01", "name: 1"),
        "servers[0].name",
        "must be a string, got integer",
        id="name-not-string",
    ),
    pytest.param(
        _minimal_with("name: em01", "name: ''"),
        "servers[0].name",
        "must not be empty",
        id="name-empty",
    ),
    pytest.param("servers: {em01: {}}\n", "servers", "must be a list", id="servers-not-list"),
    pytest.param("servers: []\n", "servers", "at least one server", id="servers-empty"),
    pytest.param("poll_interval: 1m\n", "servers", "required", id="servers-missing"),
    pytest.param(
        MINIMAL + "  - just a string\n", "servers[1]", "must be a mapping", id="server-not-mapping"
    ),
    pytest.param(
        _minimal_with("    username: svc\n", ""),
        "servers[0].username",
        "required",
        id="missing-username",
    ),
    pytest.param(
        _minimal_with("    url: https://em01.example.com:9398\n", ""),
        "servers[0].url",
        "required",
        id="missing-url",
    ),
    pytest.param(
        _minimal_with("  - name: em01\n    url", "  - url"),
        "servers[0].name",
        "required",
        id="missing-name",
    ),
    pytest.param(
        MINIMAL + MINIMAL.replace("servers:\n", "").replace("em01.example", "em02.example"),
        "servers[1].name",
        "duplicate name 'em01' (also servers[0])",
        id="duplicate-name",
    ),
    pytest.param(
        _minimal_with(extra="    password_file: /run/secrets/em01\n"),
        "servers[0]",
        "password and password_file are mutually exclusive",
        id="both-passwords",
    ),
    pytest.param(
        _minimal_with("    password: pw\n", ""),
        "servers[0]",
        "one of password or password_file is required",
        id="no-password",
    ),
    pytest.param(
        _minimal_with("password: pw", "password_file: /nonexistent/secret"),
        "servers[0].password_file",
        "cannot read /nonexistent/secret",
        id="unreadable-password-file",
    ),
    pytest.param(
        _minimal_with("https://em01.example.com:9398", "em01.example.com:9398"),
        "servers[0].url",
        "must start with http:// or https://",
        id="url-no-scheme",
    ),
    pytest.param(
        _minimal_with("https://em01.example.com:9398", "https://em01.example.com:9398/api"),
        "servers[0].url",
        "appends /api itself",
        id="url-with-api",
    ),
    pytest.param(
        _minimal_with(extra="    format: yaml\n"),
        "servers[0].format",
        "must be xml or json, got 'yaml'",
        id="bad-format",
    ),
    pytest.param(
        _minimal_with(top="poll_interval: 5s\n"),
        "poll_interval",
        "must be at least 10s",
        id="global-poll-too-short",
    ),
    pytest.param(
        _minimal_with(extra="    poll_interval: 9s\n"),
        "servers[0].poll_interval",
        "must be at least 10s",
        id="server-poll-too-short",
    ),
    pytest.param(
        _minimal_with(extra="    timeout: 0s\n"),
        "servers[0].timeout",
        "must be greater than 0",
        id="zero-timeout",
    ),
    pytest.param(
        _minimal_with(extra="    timeout: soon\n"),
        "servers[0].timeout",
        "invalid duration 'soon'",
        id="bad-duration",
    ),
    pytest.param(
        _minimal_with(top="poll_interval: 2m\nstale_after: 1m\n"),
        "stale_after",
        "must be at least poll_interval (2m), got 1m",
        id="global-stale-below-poll",
    ),
    pytest.param(
        _minimal_with(extra="    poll_interval: 2m\n    stale_after: 90s\n"),
        "servers[0].stale_after",
        "must be at least this server's poll_interval (2m), got 1m30s",
        id="server-stale-below-own-poll",
    ),
    pytest.param(
        _minimal_with(top="poll_interval: 5m\n", extra="    stale_after: 1m\n"),
        "servers[0].stale_after",
        "must be at least this server's poll_interval (5m)",
        id="server-stale-below-global-poll",
    ),
    pytest.param(
        # The global stale_after was set and is fine globally, but not for this server.
        _minimal_with(top="stale_after: 2m\n", extra="    poll_interval: 5m\n"),
        "stale_after",
        "must be at least servers[0].poll_interval (5m), got 2m; or set servers[0].stale_after",
        id="global-stale-below-server-poll",
    ),
    pytest.param(
        _minimal_with(extra="    tls:\n      ca_file: /nonexistent/ca.pem\n"),
        "servers[0].tls.ca_file",
        "cannot read /nonexistent/ca.pem",
        id="missing-ca-file",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment"), ERROR_CASES)
def test_each_error_class_is_reported_with_its_path(
    tmp_path: Path, text: str, path: str, fragment: str
) -> None:
    found = problems(lambda: load_file(write(tmp_path, text)))

    assert path in paths(found), found
    assert any(p.startswith(f"{path}: ") and fragment in p for p in found), found


def test_a_too_short_global_stale_after_is_reported_once(tmp_path: Path) -> None:
    # Every server inherits it too; the problem is the global key's, so it is said once.
    text = (
        "poll_interval: 2m\nstale_after: 1m\n"
        + MINIMAL
        + MINIMAL.replace("servers:\n", "").replace("em01", "em02")
    )
    found = problems(lambda: load_file(write(tmp_path, text)))
    assert found == ["stale_after: must be at least poll_interval (2m), got 1m"]


def test_ca_file_that_is_not_a_certificate(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("this is not a certificate\n", encoding="utf-8")
    text = _minimal_with(extra=f"    tls:\n      ca_file: {bogus}\n")

    found = problems(lambda: load_file(write(tmp_path, text)))

    assert len(found) == 1, found
    assert found[0].startswith(f"servers[0].tls.ca_file: {bogus} is not a PEM CA certificate"), (
        found
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"", "is empty"), (b" \n\n", "is empty"), (b"\xff\xfe\x00bad", "is not valid UTF-8")],
)
def test_unusable_password_file(tmp_path: Path, content: bytes, fragment: str) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(content)
    text = _minimal_with("password: pw", f"password_file: {secret}")

    found = problems(lambda: load_file(write(tmp_path, text)))

    assert found == [f"servers[0].password_file: {secret} {fragment}"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- just\n- a list\n", "must be a mapping with a servers list, got a list"),
        ("just a string\n", "got a string"),
        ("", "got an empty file"),
        ("# only a comment\n", "got an empty file"),
        ("servers: [\n", "invalid YAML at line 2"),
        ("servers:\n  - name: a\n   url: b\n", "invalid YAML"),
        ("poll_interval: 1m\npoll_interval: 2m\n" + MINIMAL, "duplicate key 'poll_interval'"),
        ("a: 1\n---\nb: 2\n", "invalid YAML"),
    ],
)
def test_file_level_problems_are_reported_at_the_file_path(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = write(tmp_path, text)

    found = problems(lambda: load_file(path))

    assert len(found) == 1, found
    assert found[0].startswith(f"{path}: "), found
    assert fragment in found[0], found


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    assert problems(lambda: load_file(str(missing))) == [
        f"{missing}: cannot read: No such file or directory"
    ]
    assert problems(lambda: load_file(str(tmp_path)))[0].startswith(f"{tmp_path}: cannot read")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes(MINIMAL.replace("svc", "sv\xe9").encode("latin-1"))
    found = problems(lambda: load_file(path))
    assert found == [f"{path}: not valid UTF-8 (byte {MINIMAL.index('svc') + 2})"]


def test_a_file_with_several_errors_reports_all_of_them() -> None:
    found = problems(lambda: load_file(FIXTURES / "many-errors.yml"))

    assert found == [
        "colour: unknown key (allowed: poll_interval, stale_after, max_answer_size, "
        "max_session_types, max_logon_failures, logon_retry_after, job_sessions, servers)",
        "poll_interval: must be at least 10s, got 5s",
        "servers[0].url: scheme must be http or https, got 'ftp'",
        "servers[0].format: must be xml or json, got 'yaml'",
        "servers[0].tls.verify: unknown key (allowed: ca_file, insecure_skip_verify)",
        "servers[1].username: required",
        "servers[1].timeout: invalid duration 'soon': use a number of seconds or a duration "
        "such as 500ms, 90s, 5m, 1h30m, 1d",
        "servers[1].name: duplicate name 'em01' (also servers[0]); names must be unique",
        "servers[2]: must be a mapping, got string",
    ]


def test_duplicate_names_are_reported_even_when_a_server_has_other_problems(
    tmp_path: Path,
) -> None:
    broken = MINIMAL.replace("https://em01.example.com:9398", "ftp://em01")
    text = broken + MINIMAL.replace("servers:\n", "").replace("username: svc", "username: 7")
    found = problems(lambda: load_file(write(tmp_path, text)))
    assert found == [
        "servers[0].url: scheme must be http or https, got 'ftp'",
        "servers[1].username: must be a string, got integer",
        "servers[1].name: duplicate name 'em01' (also servers[0]); names must be unique",
    ]


def test_names_are_case_sensitive_label_values(tmp_path: Path) -> None:
    text = MINIMAL + MINIMAL.replace("servers:\n", "").replace("name: em01", "name: EM01")
    assert [s.name for s in load_file(write(tmp_path, text)).servers] == ["em01", "EM01"]


# --- the environment ----------------------------------------------------------------------------

ENV = {
    "VEEAM_EM_URL": "https://EM01.example.com:9398/",
    "VEEAM_EM_USERNAME": "CORP\\svc",
    "VEEAM_EM_PASSWORD": SECRET,
}


def test_env_minimal_with_defaults() -> None:
    config = load_env({**ENV, "UNRELATED": "x"})

    assert config == Config(
        poll_interval=60.0,
        stale_after=180.0,
        servers=(
            ServerConfig(
                name="em01.example.com",  # the URL's host
                url="https://em01.example.com:9398",
                username="CORP\\svc",
                password=SECRET,
                poll_interval=60.0,
                stale_after=180.0,
                timeout=30.0,
                format="xml",
            ),
        ),
    )


def test_env_every_variable(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    environ = {
        "VEEAM_EM_URL": "http://10.1.2.3:9399",
        "VEEAM_EM_USERNAME": "svc",
        "VEEAM_EM_PASSWORD_FILE": str(secret),
        "VEEAM_EM_NAME": "backup-em",
        "VEEAM_EM_CA_FILE": str(CA_PEM),
        "VEEAM_EM_INSECURE_SKIP_VERIFY": "Yes",
        "VEEAM_EM_FORMAT": "json",
        "VEEAM_EM_POLL_INTERVAL": "2m",
        "VEEAM_EM_TIMEOUT": "10",
        "VEEAM_EM_STALE_AFTER": "1h",
    }

    config = load_env(environ)

    assert config.poll_interval == 120.0
    assert config.stale_after == 3600.0
    assert config.servers == (
        ServerConfig(
            name="backup-em",
            url="http://10.1.2.3:9399",
            username="svc",
            password=SECRET,
            password_file=str(secret),
            poll_interval=120.0,
            stale_after=3600.0,
            timeout=10.0,
            format="json",
            tls=TLSConfig(ca_file=str(CA_PEM), insecure_skip_verify=True),
        ),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("0", False),
        ("No", False),
    ],
)
def test_env_insecure_skip_verify_values(value: str, expected: bool) -> None:
    config = load_env({**ENV, "VEEAM_EM_INSECURE_SKIP_VERIFY": value})
    assert config.servers[0].tls.insecure_skip_verify is expected


def test_env_poll_interval_drives_default_stale_after() -> None:
    config = load_env({**ENV, "VEEAM_EM_POLL_INTERVAL": "30s"})
    assert config.servers[0].poll_interval == 30.0
    assert config.servers[0].stale_after == 90.0


def test_env_empty_variables_count_as_unset() -> None:
    config = load_env({**ENV, "VEEAM_EM_PASSWORD_FILE": "", "VEEAM_EM_NAME": ""})
    assert config.servers[0].password == SECRET
    assert config.servers[0].name == "em01.example.com"


def test_env_nothing_set() -> None:
    assert load_env_problems({}) == [
        "VEEAM_EM_URL: required",
        "VEEAM_EM_USERNAME: required",
        "VEEAM_EM_PASSWORD: one of VEEAM_EM_PASSWORD or VEEAM_EM_PASSWORD_FILE is required",
    ]


def load_env_problems(environ: dict[str, str]) -> list[str]:
    return problems(lambda: load_env(environ))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"VEEAM_EM_PASSWORD_FILE": "/run/secrets/x"},
            "VEEAM_EM_PASSWORD: VEEAM_EM_PASSWORD and VEEAM_EM_PASSWORD_FILE are mutually "
            "exclusive; set only one",
        ),
        (
            {"VEEAM_EM_INSECURE_SKIP_VERIFY": "maybe"},
            "VEEAM_EM_INSECURE_SKIP_VERIFY: must be true or false (or 1/0, yes/no), got 'maybe'",
        ),
        ({"VEEAM_EM_POLL_INTERVAL": "5s"}, "VEEAM_EM_POLL_INTERVAL: must be at least 10s, got 5s"),
        (
            {"VEEAM_EM_POLL_INTERVAL": "5m", "VEEAM_EM_STALE_AFTER": "1m"},
            "VEEAM_EM_STALE_AFTER: must be at least VEEAM_EM_POLL_INTERVAL (5m), got 1m",
        ),
        ({"VEEAM_EM_FORMAT": "csv"}, "VEEAM_EM_FORMAT: must be xml or json, got 'csv'"),
        ({"VEEAM_EM_TIMEOUT": "later"}, "VEEAM_EM_TIMEOUT: invalid duration 'later'"),
        ({"VEEAM_EM_URL": "em01:9398"}, "VEEAM_EM_URL: must start with http:// or https://"),
        (
            {"VEEAM_EM_CA_FILE": "/nonexistent/ca.pem"},
            "VEEAM_EM_CA_FILE: cannot read /nonexistent/ca.pem",
        ),
        (
            {"VEEAM_EM_PASSWORD": "", "VEEAM_EM_PASSWORD_FILE": "/nonexistent/pw"},
            "VEEAM_EM_PASSWORD_FILE: cannot read /nonexistent/pw",
        ),
    ],
)
def test_env_errors(override: dict[str, str], expected: str) -> None:
    found = load_env_problems({**ENV, **override})
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_env_reports_every_problem_at_once() -> None:
    found = load_env_problems(
        {
            "VEEAM_EM_URL": "ftp://x",
            "VEEAM_EM_FORMAT": "csv",
            "VEEAM_EM_INSECURE_SKIP_VERIFY": "perhaps",
            "VEEAM_EM_POLL_INTERVAL": "1s",
        }
    )
    assert sorted(paths(found)) == [
        "VEEAM_EM_FORMAT",
        "VEEAM_EM_INSECURE_SKIP_VERIFY",
        "VEEAM_EM_PASSWORD",
        "VEEAM_EM_POLL_INTERVAL",
        "VEEAM_EM_URL",
        "VEEAM_EM_USERNAME",
    ]


# --- secrets ------------------------------------------------------------------------------------


def test_password_never_appears_in_config_errors(tmp_path: Path) -> None:
    cases = [
        # A wrong-typed password: the type is named, the value is not.
        MINIMAL.replace("password: pw", "password: 918273645546372819") + "    bogus: 1\n",
        MINIMAL.replace("password: pw", "password: [918273645546372819]"),
        # Both password styles.
        MINIMAL.replace("password: pw", f"password: {SECRET}") + "    password_file: /x\n",
        # Credentials smuggled into the URL, with other errors around.
        MINIMAL.replace("https://em01", f"https://svc:{SECRET}@em01") + "    format: 1\n",
        MINIMAL.replace("https://em01.example.com:9398", f"ftp://svc:{SECRET}@em01/x"),
        MINIMAL.replace("https://em01.example.com:9398", f"https://svc:{SECRET}/x@em01"),
        # A YAML syntax error on the password's own line: the source line must not be quoted.
        MINIMAL.replace("password: pw", f'password: "{SECRET}'),
        MINIMAL.replace("password: pw", f"password: {SECRET}\n  bad: indentation"),
    ]
    for text in cases:
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as info:
            load_file(path)
        joined = "\n".join(info.value.problems)
        assert SECRET not in joined, joined
        assert "918273645546372819" not in joined, joined
    wrong_type = problems(lambda: load_file(write(tmp_path, cases[0])))
    assert "servers[0].password: must be a string, got integer" in wrong_type


def test_password_never_appears_in_env_errors_or_summary(tmp_path: Path) -> None:
    found = load_env_problems(
        {
            **ENV,
            "VEEAM_EM_URL": f"https://svc:{SECRET}@em01:9398",
            "VEEAM_EM_PASSWORD_FILE": "/x",
        }
    )
    assert SECRET not in "\n".join(found)

    text = summary(load_env(ENV))
    assert SECRET not in text
    assert "password: <secret>" in text


def test_summary_lists_every_setting_with_secrets_redacted() -> None:
    config = load_file(FIXTURES / "full.yml")

    text = summary(config)

    assert "inline-pa55word" not in text
    assert "s3cr3t-from-file" not in text
    assert text.count("password: <secret>") == 2
    assert f"password: <secret> (read from {FIXTURES / 'em02.secret'})" in text
    for expected in [
        "2 servers",
        "poll_interval: 30s",
        "stale_after: 5m",
        "  - name: em01",
        "    url: https://em01.example.com:9398",
        "    username: CORP\\svc_monitoring",
        "    format: json",
        "    poll_interval: 2m",
        "    stale_after: 10m",
        "    timeout: 15s",
        f"    tls.ca_file: {CA_PEM}",
        "    tls.insecure_skip_verify: false",
        "    session_types.include: CollectJob, CatalogReplicationJob",
        "    session_types.exclude: (none)",
        "  - name: em02",
        "    url: http://10.0.0.7:9399",
        "    tls.ca_file: (system default CA certificates)",
        "    tls.insecure_skip_verify: true (certificates are NOT verified)",
        "    session_types.include: (all)",
        "    session_types.exclude: LogExport",
    ]:
        assert expected in text.splitlines(), (expected, text)


def test_repr_of_a_server_hides_the_password() -> None:
    config = load_env(ENV)
    assert SECRET not in repr(config)


def test_example_config_in_the_repo_root_is_valid(tmp_path: Path) -> None:
    # The example points at files that exist only in a deployment; supply stand-ins.
    example = Path(__file__).parent.parent / "config.example.yml"
    text = example.read_text(encoding="utf-8")
    for original in ("/run/secrets/em01", "/etc/veeam-em-exporter/em01-ca.pem"):
        assert original in text
    secret = tmp_path / "em01"
    secret.write_text("pw\n", encoding="utf-8")
    text = text.replace("/run/secrets/em01", str(secret)).replace(
        "/etc/veeam-em-exporter/em01-ca.pem", str(CA_PEM)
    )
    config = load_file(write(tmp_path, text))
    assert [server.name for server in config.servers] == ["em01", "em-lab"]
    assert os.path.isabs(config.servers[0].password_file or "")


# --- keys a server inherits from the top level ----------------------------------------------


def test_safety_keys_default_inherit_and_override(tmp_path: Path) -> None:
    config = load_file(
        write(
            tmp_path,
            """\
            max_answer_size: 64MiB
            max_logon_failures: 0
            servers:
              - name: em01
                url: https://em01.example.com:9398
                username: svc
                password: pw
              - name: em02
                url: https://em02.example.com:9398
                username: svc
                password: pw
                max_answer_size: 512KiB
                max_session_types: 20
                max_logon_failures: 5
                logon_retry_after: 2h
            """,
        )
    )
    em01, em02 = config.servers
    assert (config.max_answer_size, config.max_logon_failures) == (64 * 1024**2, 0)
    assert (em01.max_answer_size, em01.max_logon_failures) == (64 * 1024**2, 0)
    assert (em01.max_session_types, em01.logon_retry_after) == (100, 3600.0)
    assert (em02.max_answer_size, em02.max_session_types) == (512 * 1024, 20)
    assert (em02.max_logon_failures, em02.logon_retry_after) == (5, 7200.0)
    text = summary(config)
    assert "max_answer_size: 64MiB" in text.splitlines()
    assert "    max_answer_size: 512KiB" in text.splitlines()
    assert "    logon_retry_after: 2h" in text.splitlines()


def test_safety_key_problems_are_reported_with_their_paths(tmp_path: Path) -> None:
    found = problems(
        lambda: load_file(
            write(
                tmp_path,
                """\
                max_answer_size: lots
                max_session_types: 0
                servers:
                  - name: em01
                    url: https://em01.example.com:9398
                    username: svc
                    password: pw
                    max_logon_failures: -1
                    logon_retry_after: 5s
                    max_answer_size: true
                """,
            )
        )
    )
    assert found == [
        "max_answer_size: invalid size 'lots': use a number of bytes or a size such as "
        "512KiB, 64MiB, 1GiB",
        "max_session_types: must be at least 1, got 0",
        "servers[0].max_answer_size: must be a size such as 64MiB or 1GiB, got boolean",
        "servers[0].max_logon_failures: must be at least 0, got -1",
        "servers[0].logon_retry_after: must be at least 1m, got 5s",
    ]


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 1048576), ("1GiB", 1024**3), ("512 KiB", 524288), ("3B", 3), ("2TiB", 2 << 40)],
)
def test_sizes(text: str, size: int) -> None:
    from exporter.sizes import format_size, parse_size

    assert parse_size(text) == size
    assert parse_size(format_size(size)) == size


def test_environment_sets_the_safety_keys() -> None:
    config = load_env(
        {**ENV, "VEEAM_EM_MAX_ANSWER_SIZE": "1MiB", "VEEAM_EM_MAX_LOGON_FAILURES": "7"}
    )
    assert config.servers[0].max_answer_size == 1024**2
    assert config.servers[0].max_logon_failures == 7
    assert load_env_problems({**ENV, "VEEAM_EM_MAX_LOGON_FAILURES": "many"}) == [
        "VEEAM_EM_MAX_LOGON_FAILURES: must be a whole number, got 'many'"
    ]
