"""Settings that are valid but probably a mistake: warned about, never refused."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from exporter.cli import log_config_warnings, main
from exporter.config import Config, ServerConfig, SessionTypeFilter
from exporter.config_warnings import config_warnings


def server(name: str = "em01", **changes: object) -> ServerConfig:
    settings: dict[str, object] = {
        "name": name,
        "url": "https://em01.example.com:9398",
        "username": "svc",
        "password": "Warn1ng-Pa55word",
        **changes,
    }
    return ServerConfig(**settings)  # type: ignore[arg-type]


def test_a_clean_configuration_has_no_warnings() -> None:
    assert config_warnings(Config(servers=(server(),))) == []


def test_an_http_url_is_warned_about_with_its_server_and_key() -> None:
    config = Config(servers=(server(), server("em02", url="http://em02.example.com:9399")))
    assert config_warnings(config) == [
        "servers[1] (em02).url: http:// sends the EM credentials in clear text; use https://"
    ]


def test_a_poll_interval_past_the_token_expiry_is_warned_about() -> None:
    at_expiry = server(poll_interval=900.0, stale_after=2700.0)
    assert config_warnings(Config(servers=(at_expiry,))) == []
    past = server(poll_interval=960.0, stale_after=2880.0)
    assert config_warnings(Config(servers=(past,))) == [
        "servers[0] (em01).poll_interval: 16m is longer than the EM's idle token expiry (15m): "
        "every poll logs on again"
    ]


def test_a_type_both_included_and_excluded_is_warned_about() -> None:
    types = SessionTypeFilter(
        include=("BackupJob", "ReplicaJob", "SureBackup"), exclude=("SureBackup", "BackupJob")
    )
    assert config_warnings(Config(servers=(server(session_types=types),))) == [
        "servers[0] (em01).session_types: BackupJob, SureBackup listed in both include and "
        "exclude; exclude wins, so never exported"
    ]
    only_excluded = SessionTypeFilter(exclude=("BackupJob",))
    assert config_warnings(Config(servers=(server(session_types=only_excluded),))) == []


def write_config(tmp_path: Path, url: str, poll_interval: str = "1m") -> Path:
    path = tmp_path / "config.yml"
    path.write_text(
        f"poll_interval: {poll_interval}\n"
        "servers:\n"
        "  - name: em01\n"
        f"    url: {url}\n"
        "    username: svc\n"
        "    password: 'Warn1ng-Pa55word'\n"
    )
    return path


def test_config_check_prints_the_warnings_after_the_summary_and_still_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "http://em01.example.com:9399", poll_interval="20m")
    assert main(["--config.file", str(config), "--config.check"]) == 0
    out = capsys.readouterr().out
    summary, _, warnings = out.partition("\nwarnings:\n")
    assert "servers:" in summary
    assert warnings.splitlines() == [
        "  servers[0] (em01).url: http:// sends the EM credentials in clear text; use https://",
        "  servers[0] (em01).poll_interval: 20m is longer than the EM's idle token expiry "
        "(15m): every poll logs on again",
    ]


def test_config_check_of_a_clean_config_prints_no_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "https://em01.example.com:9398")
    assert main(["--config.file", str(config), "--config.check"]) == 0
    assert "warnings" not in capsys.readouterr().out


def test_the_warnings_are_logged_as_warn_lines(stream: io.StringIO) -> None:
    log_config_warnings(Config(servers=(server(url="http://em01.example.com:9399"),)))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "level=warn" in lines[0]
    assert 'msg="configuration warning"' in lines[0]
    assert "servers[0] (em01).url: http:// sends the EM credentials in clear text" in lines[0]


def test_a_clean_configuration_logs_nothing(stream: io.StringIO) -> None:
    log_config_warnings(Config(servers=(server(),)))
    assert stream.getvalue() == ""


def test_start_up_logs_the_warnings_before_it_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A taken listen address stops the start just after the warnings are logged."""
    config = write_config(tmp_path, "http://em01.example.com:9399")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        assert main(["--config.file", str(config), "--web.listen-address", address]) == 1
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if 'msg="configuration warning"' in line]
    assert len(warned) == 1, err
    assert "level=warn" in warned[0]
    assert "servers[0] (em01).url: http://" in warned[0]
    assert "cannot start" in err
