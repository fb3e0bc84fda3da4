"""The command line and the real process: flags, exit codes, start-up, scrape and shutdown."""

from __future__ import annotations

import os
import platform
import signal
import socket
from pathlib import Path

import pytest
import requests
from fakes import (
    TOKEN,
    FakeEM,
    exporter_process,
    free_port,
    ready,
    run_exporter,
    stop_process,
    wait_for,
)

from exporter import __version__, build
from exporter.cli import main
from exporter.config import ENV_VARIABLES

FIXTURES = Path(__file__).parent / "fixtures"
PASSWORD = "Tr1cky-Pa55word"


def write_config(tmp_path: Path, url: str, **extra: str) -> Path:
    lines = [
        "poll_interval: 10s",
        "servers:",
        "  - name: em01",
        f"    url: {url}",
        "    username: 'CORP\\svc_monitoring'",
        f"    password: '{PASSWORD}'",
        "    timeout: 2s",
    ]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    path = tmp_path / "config.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out.strip()
    # Which revision is right is tests/test_build.py's business; here: all three are printed.
    revision = build.current().revision
    assert revision
    assert out == (
        f"veeam-em-exporter {__version__} (revision {revision}, python {platform.python_version()})"
    )


def test_config_check_prints_a_summary_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "https://em01.example.com:9398")
    assert main(["--config.file", str(config), "--config.check"]) == 0
    out = capsys.readouterr()
    assert "em01" in out.out
    assert "https://em01.example.com:9398" in out.out
    assert PASSWORD not in out.out + out.err


def test_bad_config_exits_2_listing_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        "poll_interval: 1s\nservers:\n  - name: a\n    url: ftp://x\n    username: u\n"
        f"    password: '{PASSWORD}'\n    colour: blue\n"
    )
    assert main(["--config.file", str(path), "--config.check"]) == 2
    err = capsys.readouterr().err
    assert "poll_interval" in err
    assert "servers[0].url" in err
    assert "servers[0].colour" in err
    assert "Traceback" not in err
    assert PASSWORD not in err


def test_environment_config_is_required_without_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("VEEAM_EM_"):
            monkeypatch.delenv(name)
    assert main(["--config.check"]) == 2
    assert "VEEAM_EM_URL" in capsys.readouterr().err


def test_no_arguments_suggest_a_config_file_or_the_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("VEEAM_EM_"):
            monkeypatch.delenv(name)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "--config.file" in err.splitlines()[-1]
    assert "--demo" in err.splitlines()[-1]
    # With some variables set, the problems themselves are the help: no generic hint.
    monkeypatch.setenv("VEEAM_EM_URL", "https://em01:9398")
    assert main([]) == 2
    assert "hint:" not in capsys.readouterr().err


def test_help_lists_every_variable_the_signals_and_the_docs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for var in ENV_VARIABLES:
        assert f"  {var} " in out, var
    for word in ("SIGTERM", "SIGINT", "SIGHUP", "docs/"):
        assert word in out


def test_environment_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VEEAM_EM_URL", "https://em02.corp.local:9398")
    monkeypatch.setenv("VEEAM_EM_USERNAME", "svc")
    monkeypatch.setenv("VEEAM_EM_PASSWORD", PASSWORD)
    assert main(["--config.check"]) == 0
    out = capsys.readouterr().out
    assert "em02.corp.local" in out
    assert PASSWORD not in out


@pytest.mark.parametrize(
    "flags",
    [
        ["--web.listen-address", "9745"],
        ["--web.telemetry-path", "metrics"],
        ["--log.level", "verbose"],
    ],
)
def test_bad_flags_exit_2(tmp_path: Path, flags: list[str]) -> None:
    config = write_config(tmp_path, "https://em01.example.com:9398")
    try:
        code = main(["--config.file", str(config), *flags])
    except SystemExit as exc:  # argparse's own choice errors
        code = int(exc.code or 0)
    assert code == 2


@pytest.mark.integration
def test_process_polls_serves_and_logs_out_on_sigterm(tmp_path: Path, fake_em: str) -> None:
    port = free_port()
    with exporter_process(write_config(tmp_path, fake_em), port) as proc:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: ready(base), timeout=15)
        text = requests.get(base + "/metrics", timeout=5).text
        assert 'veeam_em_up{server="em01"} 1.0' in text
        assert 'veeam_em_logins_total{server="em01"} 1.0' in text
        assert (
            'veeam_em_system_sessions{server="em01",session_type="CollectJob",state="Failed"} 1.0'
        ) in text
        err = stop_process(proc)
    assert proc.returncode == 0
    assert "DELETE /api/logonSessions/44cfbdbe-5a95-4156-8867-91f069b7c2cc" in FakeEM.calls
    assert FakeEM.calls[0] == "POST /api/sessionMngr/?v=latest"
    assert "GET /api/systemSessions?format=Entity" in FakeEM.calls
    assert "msg=stopped" in err
    assert PASSWORD not in err
    assert TOKEN not in err


@pytest.mark.integration
def test_unreachable_em_is_reported_and_the_exporter_keeps_serving(tmp_path: Path) -> None:
    port = free_port()
    dead = free_port()
    with exporter_process(write_config(tmp_path, f"http://127.0.0.1:{dead}"), port) as proc:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: ready(base), timeout=15)
        text = requests.get(base + "/metrics", timeout=5).text
        assert 'veeam_em_up{server="em01"} 0.0' in text
        assert 'veeam_em_poll_errors_total{reason="connection",server="em01"} 1.0' in text
        assert "veeam_em_system_sessions{" not in text
        err = stop_process(proc, signal.SIGINT)
    assert proc.returncode == 0
    assert "reason=connection" in err
    assert "server=em01" in err


@pytest.mark.integration
def test_listen_address_in_use_exits_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_exporter(write_config(tmp_path, "https://em01.example.com:9398"), port)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert "cannot listen" in err


def test_invalid_web_config_exits_2_even_for_a_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "https://em01.example.com:9398")
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: missing.pem\nbasic_auth_users:\n  u: nothash\n"
    )
    code = main(["--config.file", str(config), "--web.config.file", str(web), "--config.check"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"invalid web configuration ({web})" in err
    assert "tls_server_config.key_file" in err
    assert "basic_auth_users.u" in err


@pytest.mark.integration
def test_basic_auth_from_the_web_config_guards_every_endpoint(tmp_path: Path, fake_em: str) -> None:
    import bcrypt

    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"scrape-Secret", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = ("prometheus", "scrape-Secret")

    def ready_with_auth() -> bool:
        try:
            return requests.get(base + "/-/ready", timeout=1, auth=auth).status_code == 200
        except requests.ConnectionError:
            return False

    config = write_config(tmp_path, fake_em)
    with exporter_process(config, port, "--web.config.file", str(web)) as proc:
        assert wait_for(ready_with_auth, timeout=15)
        for path in ("/metrics", "/-/healthy", "/"):
            refused = requests.get(base + path, timeout=5)
            assert refused.status_code == 401
            assert refused.headers["WWW-Authenticate"].startswith("Basic")
            wrong = requests.get(base + path, timeout=5, auth=("prometheus", "wrong"))
            assert wrong.status_code == 401
        metrics = requests.get(base + "/metrics", timeout=5, auth=auth).text
        assert 'veeam_em_up{server="em01"} 1.0' in metrics
        err = stop_process(proc)
    assert proc.returncode == 0
    assert "basic_auth=True" in err
    assert "scrape-Secret" not in err
