"""Structural tests for the Grafana dashboards, their provisioning and the rule expressions.

Every metric a dashboard query or a rule names must be one of the exporter's metrics (the
README's list, hard-coded below with their labels) or a recording rule defined in
prometheus/*.yml.

`dashboard_queries` and `substitute_variables` are meant for the Prometheus-in-the-loop test
as well: they list every query of a dashboard and make it executable by Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = REPO / "grafana" / "dashboards"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
OVERVIEW = DASHBOARD_DIR / "veeam-em-overview.json"
RULE_FILES = sorted(
    p for p in (REPO / "prometheus").glob("*.yml") if p.name not in {"alerts_test.yml"}
)
PROVISIONING = REPO / "grafana" / "provisioning"
DASHBOARD_MOUNT = "/var/lib/grafana/dashboards"

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}

# The labels of every backup-job series.
_JOB = frozenset({"server", "backup_server", "job_name", "job_type"})

# The exporter's metrics: name -> labels besides job/instance added by the scrape.
EXPORTER_METRICS: dict[str, frozenset[str]] = {
    "veeam_em_up": frozenset({"server"}),
    "veeam_em_poll_duration_seconds": frozenset({"server"}),
    "veeam_em_last_successful_poll_timestamp_seconds": frozenset({"server"}),
    "veeam_em_polls_total": frozenset({"server"}),
    "veeam_em_poll_errors_total": frozenset({"server", "reason"}),
    "veeam_em_logins_total": frozenset({"server"}),
    "veeam_em_logon_suspended": frozenset({"server"}),
    "veeam_em_skipped_sessions_total": frozenset({"server"}),
    "veeam_em_exporter_build_info": frozenset({"version", "revision", "pythonversion"}),
    "veeam_em_config_last_reload_successful": frozenset(),
    "veeam_em_config_last_reload_success_timestamp_seconds": frozenset(),
    "veeam_em_system_sessions": frozenset({"server", "session_type", "state"}),
    "veeam_em_system_sessions_canceled": frozenset({"server", "session_type"}),
    "veeam_em_system_sessions_finished_total": frozenset({"server", "session_type", "result"}),
    "veeam_em_system_session_duration_seconds_bucket": frozenset({"server", "session_type", "le"}),
    "veeam_em_system_session_duration_seconds_sum": frozenset({"server", "session_type"}),
    "veeam_em_system_session_duration_seconds_count": frozenset({"server", "session_type"}),
    "veeam_em_system_session_last_start_timestamp_seconds": frozenset({"server", "session_type"}),
    "veeam_em_system_session_last_end_timestamp_seconds": frozenset({"server", "session_type"}),
    "veeam_em_system_session_last_duration_seconds": frozenset({"server", "session_type"}),
    "veeam_em_system_session_last_result": frozenset({"server", "session_type", "result"}),
    "veeam_em_system_session_last_success_timestamp_seconds": frozenset({"server", "session_type"}),
    "veeam_em_system_session_last_failure_timestamp_seconds": frozenset({"server", "session_type"}),
    "veeam_em_system_session_last_failure_info": frozenset({"server", "session_type", "message"}),
    "veeam_em_system_session_oldest_running_start_timestamp_seconds": frozenset(
        {"server", "session_type"}
    ),
    "veeam_em_backup_job_sessions_finished_total": _JOB | {"result", "retry"},
    "veeam_em_backup_job_session_duration_seconds_bucket": frozenset(
        {"server", "backup_server", "job_type", "le"}
    ),
    "veeam_em_backup_job_session_duration_seconds_sum": frozenset(
        {"server", "backup_server", "job_type"}
    ),
    "veeam_em_backup_job_session_duration_seconds_count": frozenset(
        {"server", "backup_server", "job_type"}
    ),
    "veeam_em_backup_job_last_result": _JOB | {"result"},
    "veeam_em_backup_job_last_start_timestamp_seconds": _JOB,
    "veeam_em_backup_job_last_end_timestamp_seconds": _JOB,
    "veeam_em_backup_job_last_duration_seconds": _JOB,
    "veeam_em_backup_job_last_success_timestamp_seconds": _JOB,
    "veeam_em_backup_job_last_failure_timestamp_seconds": _JOB,
    "veeam_em_backup_job_running": _JOB,
    "veeam_em_backup_job_oldest_running_start_timestamp_seconds": _JOB,
    "veeam_em_backup_job_running_progress_percent": _JOB,
    "veeam_em_job_sessions_up": frozenset({"server"}),
    "veeam_em_job_sessions_poll_duration_seconds": frozenset({"server"}),
    "veeam_em_job_sessions_last_successful_poll_timestamp_seconds": frozenset({"server"}),
    "veeam_em_job_sessions_poll_errors_total": frozenset({"server", "reason"}),
    "veeam_em_backup_job_query_truncated_total": frozenset({"server", "query"}),
    "veeam_em_backup_job_duplicate_uid_total": frozenset({"server"}),
    "veeam_em_backup_job_skipped_sessions_total": frozenset({"server"}),
    "veeam_em_backup_job_sessions_in_window": frozenset({"server"}),
    "veeam_em_backup_job_query_pages": frozenset({"server", "query"}),
    "process_cpu_seconds_total": frozenset(),
    "process_virtual_memory_bytes": frozenset(),
    "process_resident_memory_bytes": frozenset(),
    "process_start_time_seconds": frozenset(),
    "process_open_fds": frozenset(),
    "process_max_fds": frozenset(),
    # Not the exporter's: Prometheus writes it for every scrape of the exporter.
    "up": frozenset(),
}

# Words of PromQL that look like identifiers but are not metric names.
PROMQL_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
        "atan2",
    }
)
# Grafana's own variables, substituted by Grafana itself.
GRAFANA_GLOBALS = frozenset({"__interval", "__rate_interval", "__range", "__interval_ms"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_SELECTOR = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)(?![\w:])\s*(\{[^{}]*\})?")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", re.DOTALL)
_VARIABLE = re.compile(r"\$\{?(\w+)")


def metric_names(expr: str) -> set[str]:
    """Names of the metrics a PromQL expression selects (not functions, labels or keywords)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    return {name for name in _IDENT.findall(text) if name.lower() not in PROMQL_KEYWORDS}


def selectors(expr: str, known: Mapping[str, frozenset[str]]) -> Iterator[tuple[str, str]]:
    """(metric, matcher block) for each selector of a known metric in the expression."""
    for match in _SELECTOR.finditer(expr):
        if match.group(1) in known:
            yield match.group(1), match.group(2) or ""


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        return cast(dict[str, Any], json.load(f))


def recording_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        data = load_yaml(path)
        if isinstance(data, dict) and "groups" in data:
            for group in data["groups"]:
                rules.extend(r for r in group["rules"] if "record" in r)
    return rules


def rule_expressions() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path in RULE_FILES:
        data = load_yaml(path)
        if isinstance(data, dict) and "groups" in data:
            for group in data["groups"]:
                for rule in group["rules"]:
                    out.append((rule.get("record") or rule["alert"], str(rule["expr"])))
    return out


def known_metrics() -> dict[str, frozenset[str]]:
    """Exporter metrics plus recording rules, each with the labels its series carry."""
    known = dict(EXPORTER_METRICS)
    for rule in recording_rules():
        labels = set(rule.get("labels") or {})
        for source in metric_names(str(rule["expr"])):
            labels |= known.get(source, frozenset()) & {"server", "session_type"}
        known[rule["record"]] = known.get(rule["record"], frozenset()) | frozenset(labels)
    return known


def all_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def dashboard_queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query in a dashboard."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel.get("title", ""), target.get("refId", ""), target.get("expr", "")


def substitute_variables(expr: str, values: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables with values Prometheus accepts (defaults: all servers/types)."""
    defaults = {
        "server": ".*",
        "session_type": ".*",
        "__rate_interval": "2m",
        "__interval": "5m",
        "__range": "1h",
        "__interval_ms": "300000",
    }
    defaults.update(values or {})
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults[m.group(1) or m.group(2)], expr)


def walk(node: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def variables(dashboard: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def variable_query(variable: Mapping[str, Any]) -> str:
    query = variable.get("query")
    if isinstance(query, dict):
        return str(query.get("query", ""))
    return str(query)


def variable_selector(query: str) -> str:
    """The series selector of a `label_values(selector, label)` variable query."""
    match = _LABEL_VALUES.match(query)
    assert match, f"not a label_values query: {query!r}"
    return match.group(1)


# --- the helpers themselves -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum by (server, le) (rate(foo_bucket{a="b", c=~"$x"}[5m]))', {"foo_bucket"}),
        ("a:b:c > on (session_type) group_left () d unless e offset 5m", {"a:b:c", "d", "e"}),
        (
            'histogram_quantile(0.9, x) * 1e3 and vector(1) or label_replace(y, "a", "b", "", "")',
            {"x", "y"},
        ),
        ("time() - up", {"up"}),
    ],
)
def test_metric_names_extracts_only_metrics(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def test_substitute_variables_leaves_no_variable() -> None:
    expr = 'rate(x{server=~"$server", session_type=~"${session_type}"}[$__rate_interval])'
    assert substitute_variables(expr) == 'rate(x{server=~".*", session_type=~".*"}[2m])'


# --- dashboards -------------------------------------------------------------------------------


def test_overview_dashboard_exists() -> None:
    assert OVERVIEW in DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_model(path: Path) -> None:
    dashboard = load_json(path)
    assert dashboard["schemaVersion"] >= 38
    assert dashboard["id"] is None, "an id breaks import and provisioning"
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"]
    assert dashboard["panels"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panel_ids_are_unique(path: Path) -> None:
    ids = [p["id"] for p in all_panels(load_json(path))]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_do_not_overlap(path: Path) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in all_panels(load_json(path)):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_has_a_query(path: Path) -> None:
    for panel in all_panels(load_json(path)):
        if panel["type"] == "row":
            continue
        targets = panel.get("targets") or []
        assert targets, f"panel {panel['title']!r} has no query"
        for target in targets:
            assert str(target.get("expr", "")).strip(), f"empty query in {panel['title']!r}"
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_datasource_only_through_the_variable(path: Path) -> None:
    dashboard = load_json(path)
    for where, node in walk(dashboard):
        if isinstance(node, dict) and "datasource" in node:
            assert node["datasource"] == DATASOURCE_REF, where
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF, panel["title"]
    for name, variable in variables(dashboard).items():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE_REF, name
    # No uid anywhere except the dashboard's own and the variable reference.
    for where, node in walk(dashboard):
        if isinstance(node, dict) and "uid" in node and where != "$":
            assert node["uid"] == "${datasource}", where


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_queries_name_only_exporter_metrics_and_recording_rules(path: Path) -> None:
    known = known_metrics()
    exprs = [expr for _, _, expr in dashboard_queries(load_json(path))]
    exprs += [
        variable_selector(variable_query(v))
        for v in variables(load_json(path)).values()
        if v["type"] == "query"
    ]
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"{expr!r} names no metric"
        unknown = names - set(known)
        assert not unknown, f"{expr!r} names unknown metrics {sorted(unknown)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_queries_filter_by_the_variables(path: Path) -> None:
    known = known_metrics()
    for title, ref, expr in dashboard_queries(load_json(path)):
        found = list(selectors(expr, known))
        assert found, f"{title}/{ref}: no known metric in {expr!r}"
        for metric, matchers in found:
            compact = matchers.replace(" ", "")
            if "server" in known[metric]:
                assert 'server=~"$server"' in compact, f"{title}/{ref}: {metric}{matchers}"
            if "session_type" in known[metric]:
                assert 'session_type=~"$session_type"' in compact, (
                    f"{title}/{ref}: {metric}{matchers}"
                )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_queries_use_only_defined_variables(path: Path) -> None:
    dashboard = load_json(path)
    defined = set(variables(dashboard)) | GRAFANA_GLOBALS
    for title, ref, expr in dashboard_queries(dashboard):
        used = set(_VARIABLE.findall(expr))
        assert used <= defined, f"{title}/{ref}: undefined {sorted(used - defined)}"
        assert "$" not in substitute_variables(expr), f"{title}/{ref}"


def test_overview_variables() -> None:
    dashboard = load_json(OVERVIEW)
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "server", "session_type"]
    by_name = variables(dashboard)

    datasource = by_name["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"

    server = by_name["server"]
    assert server["type"] == "query"
    assert variable_query(server) == "label_values(veeam_em_up, server)"
    assert server["multi"] is True
    assert server["includeAll"] is True

    session_type = by_name["session_type"]
    assert session_type["type"] == "query"
    assert (
        variable_query(session_type)
        == 'label_values(veeam_em_system_sessions{server=~"$server"}, session_type)'
    )
    assert session_type["multi"] is True
    assert session_type["includeAll"] is True


def test_overview_covers_the_issue() -> None:
    """Each area the dashboard must show is backed by a query on the metric that shows it."""
    dashboard = load_json(OVERVIEW)
    exprs = [expr for _, _, expr in dashboard_queries(dashboard)]
    panel_types = {p["type"] for p in all_panels(dashboard)}
    used = set().union(*(metric_names(e) for e in exprs))
    required = {
        "veeam_em_up",  # servers up
        "veeam_em:data_age_seconds",  # data age
        "veeam_em_system_sessions",  # sessions by state and type
        "veeam_em:system_sessions_finished:increase1h",  # failures and warnings over time
        "veeam_em_system_session_last_failure_info",  # latest failure messages
        "veeam_em_system_session_last_result",  # last result per type
        "veeam_em_system_session_last_success_timestamp_seconds",  # last success per type
        "veeam_em:system_session_oldest_running_age_seconds",  # running sessions' age
        "veeam_em_system_session_duration_seconds_bucket",  # quantiles and heatmap
        "veeam_em_poll_duration_seconds",
        "veeam_em_poll_errors_total",
        "veeam_em:logins:increase1h",
        "veeam_em_skipped_sessions_total",
    }
    assert required <= used, sorted(required - used)
    assert any("histogram_quantile(" in e for e in exprs)
    assert "heatmap" in panel_types
    heatmaps = [p for p in all_panels(dashboard) if p["type"] == "heatmap"]
    for heatmap in heatmaps:
        assert all(t["format"] == "heatmap" for t in heatmap["targets"])
        assert all("_bucket" in t["expr"] and "le" in t["expr"] for t in heatmap["targets"])
    finished = [e for e in exprs if "finished" in e]
    assert any("Failed" in e and "Warning" in e for e in finished)


# --- rules name only known metrics -------------------------------------------------------------


def test_rules_name_only_exporter_metrics_and_recording_rules() -> None:
    known = known_metrics()
    exprs = rule_expressions()
    assert exprs
    for name, expr in exprs:
        unknown = metric_names(expr) - set(known)
        assert not unknown, f"{name}: unknown metrics {sorted(unknown)}"


def test_recording_rules_are_named_by_convention() -> None:
    for rule in recording_rules():
        assert rule["record"].startswith("veeam_em:"), rule["record"]


# --- provisioning -----------------------------------------------------------------------------


def test_datasource_provisioning() -> None:
    files = sorted((PROVISIONING / "datasources").glob("*.yml"))
    assert files
    data = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")
    assert data["apiVersion"] == 1
    (datasource,) = data["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["access"] == "proxy"
    assert datasource["uid"]


def test_dashboard_provisioning_points_at_the_dashboards() -> None:
    data = load_yaml(PROVISIONING / "dashboards" / "veeam-em.yml")
    assert data["apiVersion"] == 1
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == DASHBOARD_MOUNT
    docs = (REPO / "docs" / "dashboards.md").read_text(encoding="utf-8")
    # The documented mounts are what the provider expects.
    assert f"grafana/dashboards:{DASHBOARD_MOUNT}" in docs
    assert "grafana/provisioning:/etc/grafana/provisioning" in docs


def test_dashboards_doc_describes_every_panel() -> None:
    docs = (REPO / "docs" / "dashboards.md").read_text(encoding="utf-8")
    for panel in all_panels(load_json(OVERVIEW)):
        assert panel["title"] in docs, f"panel {panel['title']!r} missing from docs/dashboards.md"
