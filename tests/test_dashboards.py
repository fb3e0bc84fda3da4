"""Structural tests for the Grafana dashboards, their provisioning and the rule expressions.

Every test covers every file in grafana/dashboards/. Every metric a dashboard query or a rule
names must be one of the exporter's metrics (the README's list, hard-coded below with their
labels) or a recording rule defined in prometheus/*.yml.

`dashboard_queries` and `interpolate` are meant for the Prometheus-in-the-loop test as well:
they list every query of a dashboard and make it executable by Prometheus, formatting the
variables' values the way Grafana's Prometheus datasource does.
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
DRILLDOWN = DASHBOARD_DIR / "veeam-em-session-type.json"
JOBS = DASHBOARD_DIR / "veeam-em-backup-jobs.json"
RULE_FILES = sorted(
    p for p in (REPO / "prometheus").glob("*.yml") if p.name not in {"alerts_test.yml"}
)
PROVISIONING = REPO / "grafana" / "provisioning"
DASHBOARD_MOUNT = "/var/lib/grafana/dashboards"

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# The one import input: grafana.com and "Import dashboard" ask for it and write the chosen
# datasource's uid wherever `${DS_PROMETHEUS}` stands. Provisioning substitutes nothing, so it
# may stand only where an unknown value is harmless: the datasource variable's saved value.
DS_INPUT = "DS_PROMETHEUS"
# Every dashboard starts with these variables, in this order, and goes on with those of what
# it shows: system sessions (by type) or backup jobs.
COMMON_VARIABLES = ["datasource", "job", "instance", "server"]
SCOPE_VARIABLES = {
    "veeam_em_system_sessions": ["session_type"],
    "veeam_em_backup_job_sessions_finished_total": ["backup_server", "job_type", "job_name"],
}
# Colours of a `<age>:threshold_ratio` field: orange from 80 % of the alert's threshold, red
# from 100 %, where the alert's condition holds.
RATIO_STEPS = [("green", None), ("orange", 0.8), ("red", 1)]
# Recording rules that divide an age by the threshold its alert compares it with, and the
# label by which the thresholds differ.
AGE_RATIOS = {
    "veeam_em:system_session_last_success_age:threshold_ratio": (
        "veeam_em:system_session_last_success_age_seconds",
        "veeam_em:threshold_no_success_seconds",
        "VeeamEMSystemSessionNoRecentSuccess",
        "session_type",
    ),
    "veeam_em:system_session_oldest_running_age:threshold_ratio": (
        "veeam_em:system_session_oldest_running_age_seconds",
        "veeam_em:threshold_running_seconds",
        "VeeamEMSystemSessionRunningTooLong",
        "session_type",
    ),
    "veeam_em:backup_job_last_success_age:threshold_ratio": (
        "veeam_em:backup_job_last_success_age_seconds",
        "veeam_em:threshold_job_no_success_seconds",
        "VeeamEMBackupJobNoRecentSuccess",
        "job_type",
    ),
    "veeam_em:backup_job_oldest_running_age:threshold_ratio": (
        "veeam_em:backup_job_oldest_running_age_seconds",
        "veeam_em:threshold_job_running_seconds",
        "VeeamEMBackupJobRunningTooLong",
        "job_type",
    ),
}
# The "since last success" ratios: every dashboard colours one of them.
LAST_SUCCESS_RATIOS = frozenset(
    {
        "veeam_em:system_session_last_success_age:threshold_ratio",
        "veeam_em:backup_job_last_success_age:threshold_ratio",
    }
)

# The labels of every backup-job series.
_JOB = frozenset({"server", "backup_server", "job_name", "job_type"})
# The labels a recording rule keeps from the series it is computed from.
_RULE_LABELS = frozenset({"job", "instance", "server", "session_type"}) | _JOB

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
    """Exporter metrics plus recording rules, each with the labels its series carry.

    `job` and `instance` are listed for the series a scrape produced (every exporter metric, and
    the rules computed from them), not for the thresholds, which are constants.
    """
    known = {name: labels | {"job", "instance"} for name, labels in EXPORTER_METRICS.items()}
    for rule in recording_rules():
        labels = set(rule.get("labels") or {})
        for source in metric_names(str(rule["expr"])):
            labels |= known.get(source, frozenset()) & _RULE_LABELS
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


# What Grafana puts for its own variables: any plausible value will do for Prometheus.
GLOBAL_VALUES = {
    "__rate_interval": "2m",
    "__interval": "5m",
    "__range": "1h",
    "__interval_ms": "300000",
}
ALL = "$__all"


def regex_escape(value: str) -> str:
    """Grafana's Prometheus datasource's escape of a multi-value or "All" variable's value."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def regular_escape(value: str) -> str:
    """Its escape of a single-value variable's value (no regex: it is used with `=`)."""
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def format_value(variable: Mapping[str, Any], values: list[str]) -> str:
    """A variable's selection as Grafana writes it into a Prometheus query."""
    if values == [ALL]:
        assert variable.get("includeAll"), f"{variable['name']} has no All"
        return str(variable["allValue"])
    if not variable.get("multi") and not variable.get("includeAll"):
        (value,) = values
        return regular_escape(value)
    escaped = [regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(
    expr: str, dashboard: Mapping[str, Any], selection: Mapping[str, list[str]] | None = None
) -> str:
    """The query Grafana sends for `selection` (variable -> values; default: All, else `x`)."""
    chosen = dict(selection or {})
    values = dict(GLOBAL_VALUES)
    for name, variable in variables(dashboard).items():
        default = [ALL] if variable.get("includeAll") else ["x"]
        values[name] = format_value(variable, chosen.get(name, default))
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values[m.group(1) or m.group(2)], expr)


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


def test_interpolate_formats_values_as_grafana_does() -> None:
    dashboard = {
        "templating": {
            "list": [
                {"name": "m", "multi": True, "includeAll": True, "allValue": ".*"},
                {"name": "s", "multi": False, "includeAll": False},
            ]
        }
    }
    expr = 'rate(x{a=~"$m", b="${s}"}[$__rate_interval])'
    assert interpolate(expr, dashboard) == 'rate(x{a=~".*", b="x"}[2m])'
    assert (
        interpolate(expr, dashboard, {"m": ["10.0.0.1:9745"], "s": ["h.1"]})
        == 'rate(x{a=~"10\\\\.0\\\\.0\\\\.1:9745", b="h.1"}[2m])'
    )
    assert interpolate('x{a=~"$m"}', dashboard, {"m": ["a", "b+"]}) == 'x{a=~"(a|b\\\\+)"}'


# --- dashboards -------------------------------------------------------------------------------

_BY = re.compile(
    r"\b(sum|max|min|avg|count|group|stddev|stdvar|topk|bottomk|quantile)\s*(by\s*\(([^()]*)\))?\s*\("
)
_LINK_VAR = re.compile(r"\$\{([^}:]+)(?::\w+)?\}")
_DASHBOARD_URL = re.compile(r"^/d/([a-z0-9-]+)(?:/[a-z0-9-]*)?(?:\?(.*))?$")


def dashboard_params(dashboard: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(title, refId, target) of every query, for the tests below."""
    return [
        (panel.get("title", ""), target.get("refId", ""), target)
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def uids() -> dict[str, Path]:
    return {load_json(path)["uid"]: path for path in DASHBOARDS}


def links_of(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, link) for every dashboard link and every data link of a field."""
    for link in dashboard.get("links", []):
        yield "dashboard links", link
    for panel in all_panels(dashboard):
        field_config = panel.get("fieldConfig", {})
        for link in field_config.get("defaults", {}).get("links", []):
            yield panel["title"], link
        for override in field_config.get("overrides", []):
            for prop in override["properties"]:
                if prop["id"] == "links":
                    for link in prop["value"]:
                        yield f"{panel['title']}/{override['matcher']['options']}", link


def colour_targets(panel: Mapping[str, Any], override: Mapping[str, Any] | None) -> list[str]:
    """The refIds whose values the defaults (None) or a byName override of a panel colour."""
    refs = [t["refId"] for t in panel.get("targets", [])]
    if override is None:
        return refs
    assert override["matcher"]["id"] == "byName", panel["title"]
    name = override["matcher"]["options"]
    for transformation in panel.get("transformations", []):
        if transformation["id"] == "organize":
            renamed = transformation["options"].get("renameByName", {})
            name = next((old for old, new in renamed.items() if new == name), name)
    if name == "Value":
        return refs
    if name.startswith("Value #"):
        return [name.removeprefix("Value #")]
    return [r for r in refs if name == r]  # a label column colours no query


def coloured_queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str, list[Any]]]:
    """(panel title, expr, threshold steps) for every query coloured by more than one step."""
    for panel in all_panels(dashboard):
        by_ref = {t["refId"]: t["expr"] for t in panel.get("targets", [])}
        field_config = panel.get("fieldConfig", {})
        configs: list[tuple[dict[str, Any] | None, Any]] = [
            (None, field_config.get("defaults", {}).get("thresholds"))
        ]
        for override in field_config.get("overrides", []):
            for prop in override["properties"]:
                if prop["id"] == "thresholds":
                    configs.append((override, prop["value"]))
        for override, config in configs:
            if not config or len(config["steps"]) < 2:
                continue
            for ref in colour_targets(panel, override):
                yield panel["title"], by_ref[ref], config["steps"]


def test_the_overview_and_the_drilldown_exist() -> None:
    assert OVERVIEW in DASHBOARDS
    assert DRILLDOWN in DASHBOARDS
    assert JOBS in DASHBOARDS
    assert len(DASHBOARDS) >= 3


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_model(path: Path) -> None:
    dashboard = load_json(path)
    assert dashboard["schemaVersion"] == load_json(OVERVIEW)["schemaVersion"] >= 38
    assert dashboard["id"] is None, "an id breaks import and provisioning"
    # A stable uid, the file's name: links, bookmarks and a re-import keep finding it.
    assert dashboard["uid"] == path.stem
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"]
    assert dashboard["description"]
    assert dashboard["panels"]
    assert {"veeam", "veeam-em"} <= set(dashboard["tags"])
    assert dashboard["refresh"] == "1m"
    assert dashboard["time"]["to"] == "now"
    assert re.fullmatch(r"now-\d+[hd]", dashboard["time"]["from"])


def test_uids_and_titles_are_unique() -> None:
    dashboards = [load_json(p) for p in DASHBOARDS]
    assert len({d["uid"] for d in dashboards}) == len(dashboards)
    assert len({d["title"] for d in dashboards}) == len(dashboards)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panel_ids_are_unique(path: Path) -> None:
    ids = [p["id"] for p in all_panels(load_json(path))]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_with_queries_have_unique_titles(path: Path) -> None:
    # The Prometheus-in-the-loop test names each query by panel title and refId.
    titles = [p["title"] for p in all_panels(load_json(path)) if p.get("targets")]
    assert len(titles) == len(set(titles)), sorted(titles)


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
        assert panel.get("description"), f"panel {panel['title']!r} has no description"


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
def test_import_inputs_and_requirements(path: Path) -> None:
    """What grafana.com and "Import dashboard" need, without breaking provisioning."""
    dashboard = load_json(path)
    (ds_input,) = dashboard["__inputs"]
    assert ds_input["name"] == DS_INPUT
    assert ds_input["type"] == "datasource"
    assert ds_input["pluginId"] == "prometheus"
    assert ds_input["label"]
    # The input is used only as the datasource variable's saved value: an import replaces it
    # with the chosen datasource; provisioning leaves it, an unknown value Grafana replaces
    # with the first Prometheus datasource. Anywhere else (a panel's datasource) it would
    # break every provisioned panel with "Datasource ${DS_PROMETHEUS} was not found".
    used = [
        where
        for where, node in walk(dashboard)
        if isinstance(node, str) and f"${{{DS_INPUT}}}" in node
    ]
    assert used == [
        "$.templating.list[0].current.text",
        "$.templating.list[0].current.value",
    ]
    assert dashboard["templating"]["list"][0]["current"]["value"] == f"${{{DS_INPUT}}}"

    requires = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    panel_types = {p["type"] for p in all_panels(dashboard)} - {"row"}
    assert requires == {("grafana", "grafana"), ("datasource", "prometheus")} | {
        ("panel", t) for t in panel_types
    }
    grafana = next(r for r in dashboard["__requires"] if r["id"] == "grafana")
    assert re.fullmatch(r"\d+\.\d+\.\d+", grafana["version"])
    assert all(r["name"] for r in dashboard["__requires"])


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


def expected_matcher(variable: Mapping[str, Any]) -> str:
    """`label=~"$var"` for a variable with several values or All, `label="$var"` for one."""
    op = "=~" if variable.get("multi") or variable.get("includeAll") else "="
    return f'{variable["name"]}{op}"${variable["name"]}"'


FILTERED_LABELS = (
    "job",
    "instance",
    "server",
    "session_type",
    "backup_server",
    "job_type",
    "job_name",
)


def missing_filters(
    expr: str, known: Mapping[str, frozenset[str]], by_name: Mapping[str, Any], labels: Any
) -> list[str]:
    """The variable matchers among `labels` that a selector of `expr` lacks.

    Thresholds are constants without job or instance; they are exempt.
    """
    missing = []
    for metric, matchers in selectors(expr, known):
        if "instance" not in known[metric]:
            assert metric.startswith("veeam_em:threshold_"), metric
            continue
        compact = matchers.replace(" ", "")
        for label in labels:
            if label not in known[metric]:
                continue
            if label not in by_name:
                missing.append(f"{metric} has {label}, the dashboard no ${label} to filter it")
                continue
            matcher = expected_matcher(by_name[label])
            if matcher not in compact:
                missing.append(f"{metric}{matchers} lacks {matcher}")
    return missing


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_queries_filter_by_the_variables(path: Path) -> None:
    """Every series a query selects is filtered by every variable whose label it carries."""
    dashboard = load_json(path)
    known = known_metrics()
    by_name = variables(dashboard)
    for title, ref, expr in dashboard_queries(dashboard):
        assert list(selectors(expr, known)), f"{title}/{ref}: no known metric in {expr!r}"
        assert not missing_filters(expr, known, by_name, FILTERED_LABELS), f"{title}/{ref}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_variables_filter_by_the_ones_before(path: Path) -> None:
    dashboard = load_json(path)
    known = known_metrics()
    by_name = variables(dashboard)
    names = list(by_name)[1:]
    for i, name in enumerate(names):
        selector = variable_selector(variable_query(by_name[name]))
        assert not missing_filters(selector, known, by_name, names[:i]), name


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_aggregations_keep_the_instance(path: Path) -> None:
    """Two exporters polling the same EM (high availability) are never added up.

    A panel repeated per instance (one copy per selected exporter) may aggregate it away.
    """
    for panel in all_panels(load_json(path)):
        repeated = panel.get("repeat") == "instance"
        for target in panel.get("targets", []):
            expr = target["expr"]
            for match in _BY.finditer(expr):
                where = f"{panel['title']}/{target['refId']}: {match.group(0)!r} in {expr!r}"
                assert match.group(2), f"aggregation without `by`: {where}"
                labels = {label.strip() for label in match.group(3).split(",")}
                assert repeated or "instance" in labels, where


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_queries_use_only_defined_variables(path: Path) -> None:
    dashboard = load_json(path)
    defined = set(variables(dashboard)) | GRAFANA_GLOBALS
    for title, ref, expr in dashboard_queries(dashboard):
        used = set(_VARIABLE.findall(expr))
        assert used <= defined, f"{title}/{ref}: undefined {sorted(used - defined)}"
        assert "$" not in interpolate(expr, dashboard), f"{title}/{ref}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_variables(path: Path) -> None:
    dashboard = load_json(path)
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names[: len(COMMON_VARIABLES)] == COMMON_VARIABLES
    by_name = variables(dashboard)
    # The rest are those of one scope, all from that scope's metric.
    scope = names[len(COMMON_VARIABLES) :]
    (metric,) = [m for m, tail in SCOPE_VARIABLES.items() if tail == scope]
    for name in scope:
        assert variable_query(by_name[name]).startswith(f"label_values({metric}{{"), name
        assert variable_query(by_name[name]).endswith(f"}}, {name})"), name

    datasource = by_name["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"

    for name in names[1:]:
        variable = by_name[name]
        assert variable["type"] == "query", name
        assert variable["refresh"] in (1, 2), name  # values are fetched, never saved
        assert variable["options"] == [], name
        assert variable["label"], name
        if variable["includeAll"]:
            assert variable["allValue"] == ".*", name
            assert variable["current"]["value"] == ["$__all"], name
        else:
            # Empty: Grafana selects the first value it finds.
            assert variable["current"] == {}, name
    assert variable_query(by_name["job"]) == "label_values(veeam_em_exporter_build_info, job)"
    assert by_name["job"]["includeAll"] is True

    # One exporter by default: a pair polling the same EM shows the same sessions twice.
    instance = by_name["instance"]
    assert instance["includeAll"] is False
    assert variable_query(instance) == (
        'label_values(veeam_em_exporter_build_info{job=~"$job"}, instance)'
    )
    assert variable_query(by_name["server"]).startswith("label_values(veeam_em_up{")
    assert variable_query(by_name["server"]).endswith("}, server)")


def test_the_overview_selects_many_and_the_drilldown_one() -> None:
    overview = variables(load_json(OVERVIEW))
    assert overview["instance"]["multi"] is True
    for name in ("server", "session_type"):
        assert overview[name]["multi"] is True
        assert overview[name]["includeAll"] is True
    drilldown = variables(load_json(DRILLDOWN))
    for name in ("instance", "server", "session_type"):
        assert drilldown[name]["multi"] is False, name
        assert drilldown[name]["includeAll"] is False, name
    jobs = variables(load_json(JOBS))
    assert jobs["instance"]["multi"] is True
    assert jobs["instance"]["includeAll"] is False
    for name in ("server", "backup_server", "job_type", "job_name"):
        assert jobs[name]["multi"] is True, name
        assert jobs[name]["includeAll"] is True, name


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_links_resolve(path: Path) -> None:
    """Every link to a dashboard names an existing uid and only its variables."""
    dashboard = load_json(path)
    known_uids = uids()
    own = set(variables(dashboard))
    for where, link in links_of(dashboard):
        url = link["url"]
        for name in _LINK_VAR.findall(url):
            field = re.fullmatch(r"__data\.fields\.(\w+)", name)
            assert name in own or name == "__url_time_range" or field, f"{where}: {name}"
        match = _DASHBOARD_URL.match(url)
        if match is None:
            assert url.startswith("https://"), f"{where}: {url}"
            continue
        assert match.group(1) in known_uids, f"{where}: no dashboard {match.group(1)}"
        target = variables(load_json(known_uids[match.group(1)]))
        query = re.sub(r"\$\{(\w+):queryparam\}", r"var-\1=x", match.group(2) or "")
        for param in filter(None, query.split("&")):
            if param == "${__url_time_range}":
                continue
            name = param.split("=", 1)[0]
            assert name.startswith("var-"), f"{where}: {param}"
            assert name.removeprefix("var-") in target, f"{where}: {param}"
        if link.get("includeVars"):
            assert own <= set(target), f"{where}: carries variables {path.name} has not"


def test_overview_and_drilldown_link_each_other() -> None:
    overview = load_json(OVERVIEW)
    drilldown = load_json(DRILLDOWN)

    def targets(dashboard: Mapping[str, Any]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for where, link in links_of(dashboard):
            match = _DASHBOARD_URL.match(link["url"])
            if match:
                out.setdefault(match.group(1), []).append(where)
        return out

    to_drilldown = targets(overview)[drilldown["uid"]]
    assert "dashboard links" in to_drilldown
    # Each table of the overview that lists session types opens the drill-down for its row.
    row_links = [w for w in to_drilldown if w != "dashboard links"]
    assert len(row_links) >= 3, row_links
    for where, link in links_of(overview):
        if where != "dashboard links" and drilldown["uid"] in link["url"]:
            for name in ("instance", "server", "session_type"):
                assert f"var-{name}=${{__data.fields.{name}}}" in link["url"], where
            assert "${__url_time_range}" in link["url"], where
    back = [link for where, link in links_of(drilldown) if overview["uid"] in link["url"]]
    assert back
    assert all(link["includeVars"] and link["keepTime"] for link in back)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_row_links_use_labels_their_queries_keep(path: Path) -> None:
    """A data link's `${__data.fields.x}` is a label every query of its table aggregates by."""
    for panel in all_panels(load_json(path)):
        links = [link for _, link in links_of({"panels": [panel]})]
        fields = {f for link in links for f in re.findall(r"__data\.fields\.(\w+)", link["url"])}
        if not fields:
            continue
        for target in panel["targets"]:
            outer = _BY.match(target["expr"])
            assert outer and outer.group(3), f"{panel['title']}/{target['refId']}"
            kept = {label.strip() for label in outer.group(3).split(",")}
            assert fields <= kept, f"{panel['title']}/{target['refId']}: {sorted(fields - kept)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_ages_are_coloured_by_their_alert_thresholds(path: Path) -> None:
    """A coloured age is its ratio to the alert's per-type threshold, never a fixed number."""
    dashboard = load_json(path)
    coloured = list(coloured_queries(dashboard))
    ratios = [(t, e, s) for t, e, s in coloured if metric_names(e) & set(AGE_RATIOS)]
    # Every dashboard colours "since last success" against the alert's thresholds.
    assert any(metric_names(e) & LAST_SUCCESS_RATIOS for _, e, _ in ratios)
    for title, expr, steps in coloured:
        names = metric_names(expr)
        ages = {age for age, _, _, _ in AGE_RATIOS.values()}
        assert not names & ages, f"{title}: {expr!r} is coloured by fixed thresholds {steps}"
        if names & set(AGE_RATIOS):
            assert [(s["color"], s["value"]) for s in steps] == RATIO_STEPS, title
    # No other colour on a ratio than those: the ratio's panels say what 0.8 and 1 mean.
    for panel in all_panels(dashboard):
        if any(metric_names(t["expr"]) & set(AGE_RATIOS) for t in panel.get("targets", [])):
            assert "alert" in panel["description"] and "80 %" in panel["description"], panel[
                "title"
            ]


def test_age_ratios_divide_by_the_alerts_thresholds() -> None:
    rules = {r["record"]: str(r["expr"]) for r in recording_rules()}
    alerts = dict(rule_expressions())
    for ratio, (age, threshold, alert, label) in AGE_RATIOS.items():
        assert metric_names(rules[ratio]) >= {age, threshold}, ratio
        # The alert compares the same age with the same thresholds, told apart by one label.
        assert metric_names(alerts[alert]) >= {age, threshold}, alert
        assert " / " in rules[ratio] and f'{threshold}{{{label}=""}}' in rules[ratio]
        assert f'{threshold}{{{label}!=""}}' in rules[ratio]
        assert f'{threshold}{{{label}!=""}}' in alerts[alert]
        assert f"on ({label})" in rules[ratio] and f"on ({label})" in alerts[alert]


def test_on_demand_types_are_not_judged_while_their_last_run_succeeded() -> None:
    """The default threshold applies only where the alert applies it: newest run not a success."""
    rules = {r["record"]: str(r["expr"]) for r in recording_rules()}
    ratio = rules["veeam_em:system_session_last_success_age:threshold_ratio"]
    alert = dict(rule_expressions())["VeeamEMSystemSessionNoRecentSuccess"]
    condition = 'veeam_em_system_session_last_result{result="Success"} == 0'
    assert condition in ratio
    assert condition in alert


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
        "veeam_em:system_session_last_success_age:threshold_ratio",  # ... against the alert
        "veeam_em:system_session_oldest_running_age_seconds",  # running sessions' age
        "veeam_em:system_session_oldest_running_age:threshold_ratio",  # ... against the alert
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


def test_drilldown_covers_the_issue() -> None:
    """History of results, durations, failure messages over time and running sessions."""
    dashboard = load_json(DRILLDOWN)
    exprs = [expr for _, _, expr in dashboard_queries(dashboard)]
    used = set().union(*(metric_names(e) for e in exprs))
    required = {
        "veeam_em_system_session_last_result",  # the newest result over time
        "veeam_em_system_sessions_finished_total",  # finished sessions by result over time
        "veeam_em_system_session_last_failure_info",  # failure messages
        "veeam_em_system_session_last_failure_timestamp_seconds",  # ... and when
        "veeam_em_system_session_duration_seconds_bucket",  # quantiles and heatmap
        "veeam_em_system_session_last_duration_seconds",
        "veeam_em:system_session_duration_seconds:mean7d",
        "veeam_em:system_session_last_success_age_seconds",
        "veeam_em:system_session_last_success_age:threshold_ratio",
        "veeam_em:threshold_no_success_seconds",
        "veeam_em_system_sessions",  # running sessions
        "veeam_em:system_session_oldest_running_age_seconds",
        "veeam_em:threshold_running_seconds",
    }
    assert required <= used, sorted(required - used)
    types = {p["type"] for p in all_panels(dashboard)}
    assert {"state-timeline", "heatmap", "table", "timeseries", "stat"} <= types
    # Failure messages over the dashboard's time range, not only the newest one.
    assert any("last_failure_info" in e and "[$__range:]" in e for e in exprs)
    # Results over time are shown by name and colour.
    timeline = next(p for p in all_panels(dashboard) if p["type"] == "state-timeline")
    (mapping,) = timeline["fieldConfig"]["defaults"]["mappings"]
    texts = {v["text"]: v["color"] for v in mapping["options"].values()}
    assert texts == {"Success": "green", "Warning": "orange", "Failed": "red", "Unknown": "gray"}
    codes = {v["text"]: int(k) for k, v in mapping["options"].items()}
    for text, code in codes.items():
        assert f'result="{text}"}} == 1) * 0 + {code}' in timeline["targets"][0]["expr"]


def test_backup_jobs_dashboard_covers_the_issue() -> None:
    """Jobs by last result, a table per job against the alert, running sessions with progress
    and age, finished sessions and retries from the counter, quantiles, the feed's health."""
    dashboard = load_json(JOBS)
    exprs = [expr for _, _, expr in dashboard_queries(dashboard)]
    used = set().union(*(metric_names(e) for e in exprs))
    required = {
        "veeam_em_backup_job_last_result",
        "veeam_em_backup_job_last_end_timestamp_seconds",
        "veeam_em_backup_job_last_duration_seconds",
        "veeam_em_backup_job_last_success_timestamp_seconds",
        "veeam_em_backup_job_last_failure_timestamp_seconds",
        "veeam_em:backup_job_last_success_age_seconds",
        "veeam_em:backup_job_last_success_age:threshold_ratio",
        "veeam_em_backup_job_running",
        "veeam_em_backup_job_running_progress_percent",
        "veeam_em_backup_job_oldest_running_start_timestamp_seconds",
        "veeam_em:backup_job_oldest_running_age_seconds",
        "veeam_em:backup_job_oldest_running_age:threshold_ratio",
        "veeam_em_backup_job_sessions_finished_total",
        "veeam_em_backup_job_session_duration_seconds_bucket",
        "veeam_em_job_sessions_up",
        "veeam_em_job_sessions_poll_duration_seconds",
        "veeam_em_job_sessions_poll_errors_total",
        "veeam_em_backup_job_query_truncated_total",
        "veeam_em_backup_job_sessions_in_window",
    }
    assert required <= used, sorted(required - used)
    finished = [e for e in exprs if "veeam_em_backup_job_sessions_finished_total" in e]
    assert all("increase(" in e for e in finished)
    assert any('retry="true"' in e for e in finished)
    quantiles = [e for e in exprs if "histogram_quantile(" in e]
    assert quantiles and all("job_type, le)" in e for e in quantiles)
    # The stat counts each of the three results, in this order, coloured by name.
    stat = next(p for p in all_panels(dashboard) if p["title"] == "Jobs by last result")
    assert [t["legendFormat"] for t in stat["targets"]] == ["Failed", "Warning", "Success"]
    for target, result in zip(stat["targets"], ("Failed", "Warning", "Success"), strict=True):
        assert f'result="{result}"' in target["expr"]


def test_overview_and_backup_jobs_link_each_other() -> None:
    overview = load_json(OVERVIEW)
    jobs = load_json(JOBS)
    for source, target in ((overview, jobs), (jobs, overview)):
        found = [
            link
            for where, link in links_of(source)
            if where == "dashboard links" and link["url"].startswith(f"/d/{target['uid']}/")
        ]
        assert len(found) == 1, source["uid"]
        (link,) = found
        assert link["keepTime"], source["uid"]
        # The selection both have goes along.
        for name in ("datasource", "job", "instance", "server"):
            assert f"${{{name}:queryparam}}" in link["url"], (source["uid"], name)


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


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_doc_describes_every_dashboard(path: Path) -> None:
    docs = (REPO / "docs" / "dashboards.md").read_text(encoding="utf-8")
    dashboard = load_json(path)
    assert f"grafana/dashboards/{path.name}" in docs
    assert f"`{dashboard['uid']}`" in docs
    for panel in all_panels(dashboard):
        assert panel["title"] in docs, f"panel {panel['title']!r} missing from docs/dashboards.md"
    for name in variables(dashboard):
        assert f"`{name}`" in docs, name
