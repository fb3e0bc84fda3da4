"""The job_sessions section: defaults, bounds, the global-then-server merge, the environment."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from exporter.config import (
    ConfigError,
    JobSessionsConfig,
    SessionTypeFilter,
    load_env,
    load_file,
    summary,
)
from exporter.config_warnings import config_warnings

BASE = """\
servers:
  - name: em01
    url: https://em01.example.com:9398
    username: svc
    password: pw
"""


def load(tmp_path: Path, text: str) -> list[JobSessionsConfig]:
    path = tmp_path / "config.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return [server.job_sessions for server in load_file(path).servers]


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.problems


def test_defaults(tmp_path: Path) -> None:
    (jobs,) = load(tmp_path, BASE)
    assert jobs == JobSessionsConfig()
    assert (jobs.enabled, jobs.poll_interval, jobs.window, jobs.bootstrap_window) == (
        True,
        300.0,
        48 * 3600.0,
        8 * 86400.0,
    )
    assert (jobs.page_size, jobs.max_pages, jobs.job_types) == (500, 40, SessionTypeFilter())


def test_a_global_section_is_inherited_and_a_server_overrides_it_key_by_key(
    tmp_path: Path,
) -> None:
    text = """\
        job_sessions:
          window: 72h
          bootstrap_window: 10d
          page_size: 200
          job_types: {exclude: [AgentManagement]}
        servers:
          - {name: a, url: 'https://a:9398', username: u, password: p}
          - name: b
            url: https://b:9398
            username: u
            password: p
            job_sessions: {enabled: false, window: 4d, job_types: {include: [Backup]}}
        """
    inherited, own = load(tmp_path, text)
    assert inherited == JobSessionsConfig(
        window=72 * 3600.0,
        bootstrap_window=10 * 86400.0,
        page_size=200,
        job_types=SessionTypeFilter(exclude=("AgentManagement",)),
    )
    # b keeps the global bootstrap_window and page_size; job_types is replaced as one key.
    assert own == JobSessionsConfig(
        enabled=False,
        window=4 * 86400.0,
        bootstrap_window=10 * 86400.0,
        page_size=200,
        job_types=SessionTypeFilter(include=("Backup",)),
    )


def test_the_rule_between_keys_is_judged_on_the_merged_values(tmp_path: Path) -> None:
    # Alone, window: 9d would break the default bootstrap_window of 8d; the global 10d holds.
    text = """\
        job_sessions: {bootstrap_window: 10d}
        servers:
          - {name: a, url: 'https://a:9398', username: u, password: p, job_sessions: {window: 9d}}
          - {name: b, url: 'https://b:9398', username: u, password: p, job_sessions: {window: 11d}}
        """
    assert problems(tmp_path, text) == [
        "servers[1].job_sessions: bootstrap_window: must be at least window (1w4d), got 1w3d"
    ]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "{poll_interval: 30s}",
            "servers[0].job_sessions.poll_interval: must be at least 1m, got 30s",
        ),
        ("{window: 31d}", "servers[0].job_sessions.window: must be at most 4w2d, got 31d"),
        ("{window: 30m}", "servers[0].job_sessions.window: must be at least 1h, got 30m"),
        (
            "{bootstrap_window: 40d}",
            "servers[0].job_sessions.bootstrap_window: must be at most 4w2d, got 40d",
        ),
        (
            "{window: 10d}",
            "servers[0].job_sessions: bootstrap_window: must be at least window (1w3d), got 1w1d",
        ),
        (
            "{poll_interval: 2h, window: 3h}",
            "servers[0].job_sessions: window: must be at least twice poll_interval (4h), got 3h",
        ),
        ("{page_size: 49}", "servers[0].job_sessions.page_size: must be at least 50, got 49"),
        ("{page_size: 1001}", "servers[0].job_sessions.page_size: must be at most 1000, got 1001"),
        ("{max_pages: 0}", "servers[0].job_sessions.max_pages: must be at least 1, got 0"),
        ("{enabled: 'yes'}", "servers[0].job_sessions.enabled: must be true or false, got string"),
        (
            "{job_types: {exclude: Backup}}",
            "servers[0].job_sessions.job_types.exclude: must be a list of strings, got string",
        ),
        (
            "{windw: 1d}",
            "servers[0].job_sessions.windw: unknown key (did you mean 'window'?)",
        ),
    ],
)
def test_each_bound_is_checked_with_its_path(tmp_path: Path, section: str, expected: str) -> None:
    assert problems(tmp_path, BASE + f"    job_sessions: {section}\n") == [expected]


def test_a_bad_global_section_is_reported_once(tmp_path: Path) -> None:
    text = "job_sessions: {page_size: 5000, colour: red}\n" + BASE
    text += "    job_sessions: {enabled: false}\n"
    assert problems(tmp_path, text) == [
        "job_sessions.colour: unknown key (allowed: enabled, poll_interval, window, "
        "bootstrap_window, page_size, max_pages, job_types)",
        "job_sessions.page_size: must be at most 1000, got 5000",
    ]


def test_the_type_refuses_what_the_file_would_refuse() -> None:
    good = JobSessionsConfig()
    for change, message in [
        ({"poll_interval": 59.0}, "poll_interval: must be at least 1m"),
        ({"page_size": 2000}, "page_size: must be at most 1000"),
        ({"bootstrap_window": 3600.0}, "bootstrap_window: must be at least window"),
    ]:
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(good, **change)  # type: ignore[arg-type]


def test_the_environment_sets_the_section_for_the_one_server() -> None:
    env = {
        "VEEAM_EM_URL": "https://em01.example.com:9398",
        "VEEAM_EM_USERNAME": "svc",
        "VEEAM_EM_PASSWORD": "pw",
        "VEEAM_EM_JOB_SESSIONS_ENABLED": "0",
        "VEEAM_EM_JOB_SESSIONS_WINDOW": "3d",
        "VEEAM_EM_JOB_SESSIONS_PAGE_SIZE": "100",
    }
    config = load_env(env)
    (server,) = config.servers
    assert server.job_sessions == JobSessionsConfig(
        enabled=False, window=3 * 86400.0, page_size=100
    )
    assert config.job_sessions == server.job_sessions


def test_a_bad_variable_is_reported_once_by_its_name() -> None:
    env = {
        "VEEAM_EM_URL": "https://em01.example.com:9398",
        "VEEAM_EM_USERNAME": "svc",
        "VEEAM_EM_PASSWORD": "pw",
        "VEEAM_EM_JOB_SESSIONS_PAGE_SIZE": "many",
        "VEEAM_EM_JOB_SESSIONS_MAX_PAGES": "0",
    }
    with pytest.raises(ConfigError) as info:
        load_env(env)
    assert info.value.problems == [
        "VEEAM_EM_JOB_SESSIONS_PAGE_SIZE: must be a whole number, got 'many'",
        "VEEAM_EM_JOB_SESSIONS_MAX_PAGES: must be at least 1, got 0",
    ]


def test_the_summary_shows_each_server_s_effective_section(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("job_sessions: {window: 72h}\n" + BASE + "    job_sessions: {max_pages: 3}\n")
    lines = summary(load_file(path)).splitlines()
    assert "job_sessions.window: 3d" in lines
    assert "    job_sessions.window: 3d" in lines
    assert "    job_sessions.max_pages: 3" in lines
    assert "job_sessions.max_pages: 40" in lines


def test_a_job_type_both_included_and_excluded_is_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        BASE + "    job_sessions: {job_types: {include: [Backup, NasBackup], exclude: [Backup]}}\n"
    )
    assert config_warnings(load_file(path)) == [
        "servers[0] (em01).job_sessions.job_types: Backup listed in both include and exclude; "
        "exclude wins, so never exported"
    ]
    path.write_text(
        BASE + "    job_sessions: {enabled: false, job_types: {include: [B], exclude: [B]}}\n"
    )
    assert config_warnings(load_file(path)) == []
