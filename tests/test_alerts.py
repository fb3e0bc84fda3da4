"""Tests for the Prometheus rules and the example Prometheus and Alertmanager configurations.

The promtool and amtool checks need Debian's `prometheus` and `prometheus-alertmanager`
packages (or the binaries named by $PROMTOOL / $AMTOOL). Without them the checks are skipped
on a developer's machine and fail in CI (CI=true), where .ci/run installs them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
# tools/ is not installed: it is imported from the checkout, as `python -m tools...` does.
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from tools.prometheusrule import RUNBOOK_BASE_URL, rebase_runbooks  # noqa: E402

PROMETHEUS_DIR = REPO / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = PROMETHEUS_DIR / "alertmanager.yml"
ALERTS_DOC = REPO / "docs" / "alerts.md"

RUNBOOK_BASE = RUNBOOK_BASE_URL + "#"
SEVERITIES = {"critical", "warning", "info"}
THRESHOLD_GROUP = "veeam-em-thresholds"


def tool(name: str) -> str:
    """Path of promtool/amtool: $PROMTOOL/$AMTOOL, else PATH; skip or (in CI) fail if absent."""
    path = os.environ.get(name.upper()) or shutil.which(name)
    if path:
        return path
    message = f"{name} not found (apt-get install prometheus prometheus-alertmanager)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    return result


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def groups() -> list[dict[str, Any]]:
    data = load_yaml(ALERTS)
    assert isinstance(data, dict)
    return list(data["groups"])


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in groups() for r in g["rules"] if "alert" in r]


ALERT_NAMES = [r["alert"] for r in alert_rules()]


def rule_tests() -> Iterator[dict[str, Any]]:
    for test in load_yaml(ALERTS_TEST)["tests"]:
        yield from test.get("alert_rule_test") or []


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def doc_anchors() -> set[str]:
    text = ALERTS_DOC.read_text(encoding="utf-8")
    return {github_anchor(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.MULTILINE)}


# --- the tools ---------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    result = run(tool("promtool"), "check", "rules", str(ALERTS))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output
    assert "duplicate" not in output.lower(), output


def test_promtool_test_rules() -> None:
    result = run(tool("promtool"), "test", "rules", str(ALERTS_TEST))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output


def test_promtool_check_config() -> None:
    result = run(tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 rule files found" in output, output


def test_amtool_check_config() -> None:
    result = run(tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output


@pytest.mark.parametrize(
    ("severity", "receiver"),
    [("critical", "pager"), ("warning", "team"), ("info", "null"), ("", "team")],
)
def test_alertmanager_routes_by_severity(severity: str, receiver: str) -> None:
    labels = ["alertname=VeeamEMSystemSessionFailed", "server=em01"]
    if severity:
        labels.append(f"severity={severity}")
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the rules, structurally -------------------------------------------------------------------


def test_rule_files_of_the_examples_exist() -> None:
    assert load_yaml(PROMETHEUS_CONFIG)["rule_files"] == ["alerts.yml"]
    assert load_yaml(ALERTS_TEST)["rule_files"] == ["alerts.yml"]
    order = load_yaml(ALERTS_TEST)["group_eval_order"]
    assert sorted(order) == sorted(g["name"] for g in groups())


def test_the_alerts_the_issue_asks_for_exist() -> None:
    assert {
        "VeeamEMExporterPollFailing",
        "VeeamEMAuthenticationFailing",
        "VeeamEMDataStale",
        "VeeamEMSystemSessionFailed",
        "VeeamEMSystemSessionWarning",
        "VeeamEMSystemSessionNoRecentSuccess",
        "VeeamEMSystemSessionNeverSucceeded",
        "VeeamEMSystemSessionRunningTooLong",
        "VeeamEMSystemSessionSlow",
        "VeeamEMExporterTokenChurn",
    } <= set(ALERT_NAMES)
    assert len(ALERT_NAMES) == len(set(ALERT_NAMES))


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_alert_has_labels_and_annotations(alertname: str) -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == alertname]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    for key in ("summary", "description", "runbook_url"):
        assert str(annotations.get(key, "")).strip(), f"{alertname} lacks {key}"
    assert annotations["runbook_url"] == RUNBOOK_BASE + alertname.lower()


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_runbook_anchor_is_a_heading_in_the_docs(alertname: str) -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == alertname]
    anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
    assert anchor in doc_anchors(), f"docs/alerts.md has no heading for #{anchor}"


def runbook_links_section() -> str:
    text = ALERTS_DOC.read_text(encoding="utf-8")
    return text.split("\n## Runbook links\n", 1)[1].split("\n## ", 1)[0]


def test_the_runbook_base_is_the_documented_one() -> None:
    section = runbook_links_section()
    assert f"\n```text\n{RUNBOOK_BASE_URL}\n```\n" in section
    assert "tools/prometheusrule.py" in section
    # Every runbook_url of the file, whatever its rule: the base, then a heading of the page.
    urls = re.findall(r"runbook_url:\s*(\S+)", ALERTS.read_text(encoding="utf-8"))
    assert len(urls) == len(ALERT_NAMES)
    for url in urls:
        assert url.startswith(RUNBOOK_BASE), url
        assert url.removeprefix(RUNBOOK_BASE) in doc_anchors(), url


def test_the_documented_sed_moves_every_runbook_link_and_nothing_else(tmp_path: Path) -> None:
    (command,) = [
        line.strip()
        for line in runbook_links_section().splitlines()
        if line.strip().startswith("sed ")
    ]
    (tmp_path / "prometheus").mkdir()
    shutil.copy2(ALERTS, tmp_path / "prometheus" / "alerts.yml")
    result = subprocess.run(
        ["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    moved = load_yaml(tmp_path / "alerts.yml")["groups"]
    # The same as the PrometheusRule generator's --runbook-base-url makes of the groups.
    assert moved == rebase_runbooks(groups(), "https://wiki.example.com/ops/veeam-em")
    assert moved != groups()


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_alert_is_tested_firing_and_not_firing(alertname: str) -> None:
    cases = [t for t in rule_tests() if t["alertname"] == alertname]
    firing = [t for t in cases if t.get("exp_alerts")]
    silent = [t for t in cases if not t.get("exp_alerts")]
    assert firing, f"{alertname} has no firing test case"
    assert silent, f"{alertname} has no not-firing test case"
    for case in firing:
        for alert in case["exp_alerts"]:
            # Firing cases pin the labels and every annotation, so templating is tested too.
            assert alert["exp_labels"]["severity"] in SEVERITIES
            assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}
            assert "{{" not in str(alert["exp_annotations"])


def test_rule_tests_only_name_existing_alerts() -> None:
    tested = {t["alertname"] for t in rule_tests()}
    assert tested <= set(ALERT_NAMES), sorted(tested - set(ALERT_NAMES))


def test_thresholds_live_in_one_group_with_defaults() -> None:
    per_type: dict[str, set[str]] = {}
    for group in groups():
        for rule in group["rules"]:
            name = rule.get("record", "")
            is_threshold = name.startswith("veeam_em:threshold_")
            assert is_threshold == (group["name"] == THRESHOLD_GROUP), name or rule["alert"]
            if is_threshold:
                assert re.fullmatch(r"vector\(\d+(\.\d+)?\)", str(rule["expr"]).strip())
                labels = rule.get("labels") or {}
                assert set(labels) <= {"session_type", "job_type"}, name
                assert len(labels) <= 1, name
                per_type.setdefault(name, set()).add(
                    labels.get("session_type", labels.get("job_type", ""))
                )
    assert per_type["veeam_em:threshold_no_success_seconds"] >= {
        "CollectJob",
        "DatabaseMaintenance",
        "",
    }
    for name, types in per_type.items():
        # A per-type threshold always comes with its default (the series without the label).
        assert "" in types, f"{name} has no default"
    # No alert hides a numeric threshold in its expression instead of the threshold group.
    for rule in alert_rules():
        expr = re.sub(r"\[[^\]]*\]", "", str(rule["expr"]))  # range durations are fine
        numbers = set(re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", expr))
        assert numbers <= {"0", "1"}, f"{rule['alert']} compares with {sorted(numbers)}"


def test_every_alert_is_documented_with_its_severity() -> None:
    text = ALERTS_DOC.read_text(encoding="utf-8")
    for rule in alert_rules():
        section = text.split(f"### {rule['alert']}\n", 1)
        assert len(section) == 2, rule["alert"]
        body = section[1].split("\n### ", 1)[0]
        assert f"Severity: **{rule['labels']['severity']}**" in body, rule["alert"]


def test_session_alerts_are_inhibited_while_polls_fail() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    rules = [
        r
        for r in config["inhibit_rules"]
        if r["source_matchers"] == ['alertname="VeeamEMExporterPollFailing"']
    ]
    assert len(rules) == 1
    (rule,) = rules
    assert rule["equal"] == ["server"]
    (target,) = rule["target_matchers"]
    match = re.fullmatch(r'alertname=~"(.+)"', target)
    assert match
    pattern = re.compile(match.group(1))
    for name in ALERT_NAMES:
        muted = bool(pattern.fullmatch(name))
        expected = name.startswith("VeeamEMSystemSession") or name == "VeeamEMDataStale"
        assert muted == expected, name
    referenced = re.findall(r"VeeamEM\w+", str(config["inhibit_rules"]))
    assert set(referenced) <= set(ALERT_NAMES) | {"VeeamEMSystemSession"}


def test_a_logon_suspension_mutes_the_poll_and_credentials_alerts() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    (rule,) = [
        r
        for r in config["inhibit_rules"]
        if r["source_matchers"] == ['alertname="VeeamEMLogonSuspended"']
    ]
    assert rule["equal"] == ["server"]
    (target,) = rule["target_matchers"]
    match = re.fullmatch(r'alertname=~"(.+)"', target)
    assert match
    muted = {name for name in ALERT_NAMES if re.fullmatch(match.group(1), name)}
    assert muted == {"VeeamEMExporterPollFailing", "VeeamEMAuthenticationFailing"}


def test_the_exporters_job_is_selected_in_one_place() -> None:
    (job,) = load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
    rules = [r for g in groups() for r in g["rules"]]
    # Every job matcher and every use of `up` in the rules: only the one recording rule.
    with_job = [r for r in rules if re.search(r"\bjob\s*=", str(r["expr"]))]
    with_up = [r for r in rules if re.search(r"(?<![\w:])up\b(?!\s*\()", str(r["expr"]))]
    (selector,) = with_job
    assert with_up == [selector]
    assert selector["record"] == "veeam_em:exporter_up"
    assert str(selector["expr"]).strip() == f'up{{job="{job["job_name"]}"}}'
    (down,) = [r for r in alert_rules() if r["alert"] == "VeeamEMExporterDown"]
    assert str(down["expr"]).strip() == (
        "veeam_em:exporter_up == 0 or absent(veeam_em:exporter_up)"
    )
    assert down["labels"]["severity"] == "critical"
