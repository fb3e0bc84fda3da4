"""A real Prometheus scraping the real exporter polling the simulated EM, with the shipped rules.

One loop per module: the simulator with live activity (60x), the exporter in-process polling it
every second, and Debian's `prometheus` binary on a free loopback port, scraping the exporter
every second with `prometheus/alerts.yml` loaded and evaluated every second. The Prometheus
configuration is the shipped `prometheus/prometheus.yml` with only the intervals, the target,
the rule file path and Alertmanager changed.

The exporter reads the simulator's backup job sessions too: its job feed polls once at start-up
(the baseline), and the fixture polls it once more itself, after finishing, retrying and starting
job sessions in the simulator, so that the job counters and histogram have moved.

The tests then ask Prometheus, over its HTTP API, whether the target is up, every rule is
healthy, every query of every dashboard runs and returns data with the variables set to real
values (formatted as Grafana formats them), the template variables have values, and whether a
failed session injected into the simulator fires `VeeamEMSystemSessionFailed`.

`VeeamEMExporterDown` gets an exporter and a Prometheus of its own, since its test stops that
exporter; that Prometheus loads a copy of the shipped rules with only the alert's `for:`
shortened.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import requests
import yaml
from fakes import wait_for
from test_dashboards import (
    ALL,
    DASHBOARDS,
    DRILLDOWN,
    JOBS,
    all_panels,
    dashboard_queries,
    interpolate,
    load_json,
    variable_query,
    variable_selector,
    variables,
)

from exporter.app import Exporter
from exporter.config import Config, JobSessionsConfig, ServerConfig
from exporter.poller import Poller
from exporter.simulator import SimulatedEM, SimulatorSettings
from exporter.web import HTTPServer, make_app

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
ALERTS = REPO / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
SERVER = "em-sim"
JOB = "veeam-em"

# The session type the drill-down is tested with: the fixture gives it every kind of data.
DRILLDOWN_TYPE = "CollectJob"
# Jobs of the simulator's demo estate the fixture gives sessions to (both on vbr01).
FINISHED_JOB = "Exchange Backup"  # fails, then its retry succeeds
RUNNING_JOB = "SQL Servers Backup"  # a session that keeps running
SELECTED_JOBS = (FINISHED_JOB, RUNNING_JOB)  # the backup jobs dashboard's job_name
# The job feed's own thread polls at start-up and then after this long, never during the
# module: the fixture's one extra poll is the only other one, so no two polls of the feed run
# at once and the counters move exactly when the fixture says.
JOB_POLL_INTERVAL = 3600.0

# Dashboard queries (file, panel title, refId) allowed to return nothing, with the reason.
# Empty: the fixture makes every query have data (running sessions, sessions finished after
# the exporter's baseline poll, error and skip counters that exist at 0 from the start).
MAY_BE_EMPTY: dict[tuple[str, str, str], str] = {}

# Deadlines, in seconds of wall time.
STARTUP = 30.0
SETTLE = 20.0
# VeeamEMExporterDown's `for:` in the stopped-exporter test, instead of the shipped 5m: the
# test rewrites a copy of the rule file, keeping the expression.
DOWN_FOR = "3s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus is not installed (.ci/run installs Debian's prometheus)")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    return binary


# --- the loop -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loop:
    em: SimulatedEM
    target: str  # host:port of the exporter
    prometheus: str  # base URL of Prometheus
    log: Path  # Prometheus' own log, for failure messages

    def api(self, path: str, **params: Any) -> Any:
        """`data` of a successful Prometheus API answer; fails the test on an API error."""
        response = requests.get(f"{self.prometheus}/api/v1/{path}", params=params, timeout=5)
        body = response.json()
        assert response.status_code == 200 and body.get("status") == "success", (
            f"{path} {params}: HTTP {response.status_code} {body}"
        )
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.api("query", query=expr)["result"])

    def query_range(self, expr: str, seconds: float) -> list[dict[str, Any]]:
        end = time.time()
        data = self.api("query_range", query=expr, start=end - seconds, end=end, step=1)
        return cast(list[dict[str, Any]], data["result"])

    def eventually(
        self,
        condition: Callable[[], bool],
        what: str,
        timeout: float,
        detail: Callable[[], str] | None = None,
    ) -> None:
        if wait_for(condition, timeout=timeout):
            return
        if detail is None:
            tail = self.log.read_text(errors="replace").splitlines()[-10:]
            pytest.fail(
                f"{what} within {timeout:.0f}s; Prometheus log ends with:\n" + "\n".join(tail)
            )
        pytest.fail(f"{what} within {timeout:.0f}s: {detail()}")


def prometheus_config(target: str, rules: Path = ALERTS) -> dict[str, Any]:
    """The shipped example configuration, pointed at the test's exporter and sped up."""
    config = cast(dict[str, Any], yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8")))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    config.pop("alerting", None)  # no Alertmanager here; /api/v1/alerts shows the alerts
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"] = [{"targets": [target]}]
    return config


@contextmanager
def serving_exporter(simulator: SimulatedEM) -> Iterator[tuple[Exporter, HTTPServer]]:
    """An exporter polling the simulator every second, serving /metrics on loopback."""
    exporter = Exporter()
    # Built directly, the config may poll more often than a file allows (10 s minimum).
    exporter.apply(
        Config(
            servers=(
                ServerConfig(
                    name=SERVER,
                    url=simulator.url,
                    username=simulator.settings.username,
                    password=simulator.settings.password,
                    poll_interval=1.0,
                    poll_floor=1.0,
                    stale_after=30.0,
                    timeout=5.0,
                    job_sessions=JobSessionsConfig(poll_interval=JOB_POLL_INTERVAL),
                ),
            )
        )
    )
    http = HTTPServer(make_app(exporter.registry, exporter.server_infos, "/metrics"), "127.0.0.1:0")
    http.start()
    exporter.start()
    try:
        yield exporter, http
    finally:
        exporter.stop()
        http.stop()


@contextmanager
def running_prometheus(
    binary: str, work: Path, em: SimulatedEM, target: str, config: dict[str, Any]
) -> Iterator[Loop]:
    """Prometheus with `config` on a free loopback port, once ready; stopped on exit."""
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = work / "prometheus.log"
    port = free_port()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={path}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=info",
            ],
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        result = Loop(em, target, base, log)

        def ready() -> bool:
            if process.poll() is not None:
                return True  # reported below
            try:
                return requests.get(base + "/-/ready", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        result.eventually(ready, "Prometheus did not become ready", STARTUP)
        if process.poll() is not None:
            pytest.fail(
                f"prometheus exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        yield result
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatedEM]:
    # 60x: a simulated CollectJob every 15 s of wall time per backup server. A week of
    # history is enough for past failures (messages) and keeps each 1 s poll cheap.
    with SimulatedEM(SimulatorSettings(live=True, speed=60.0, history_days=7)) as em:
        yield em


@pytest.fixture(scope="module")
def exporter_target(simulator: SimulatedEM) -> Iterator[tuple[Exporter, str]]:
    with serving_exporter(simulator) as (exporter, http):
        yield exporter, f"127.0.0.1:{http.port}"


@pytest.fixture(scope="module")
def prometheus_path() -> str:
    return prometheus_binary()


@pytest.fixture(scope="module")
def loop(
    prometheus_path: str,
    simulator: SimulatedEM,
    exporter_target: tuple[Exporter, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Loop]:
    exporter, target = exporter_target
    (poller,) = exporter.pollers()
    assert poller.wait_polled(STARTUP), "the exporter never polled the simulator"
    assert poller.status.last_error is None, poller.status.last_error

    work = tmp_path_factory.mktemp("prometheus")
    config = prometheus_config(target)
    with running_prometheus(prometheus_path, work, simulator, target, config) as result:
        # Once Prometheus holds the exporter's baseline (histograms at 0): sessions that
        # finish and are counted (so rate() over the histogram sees an increase, as the
        # duration quantiles and the 7-day mean need), and ones that keep running (age of the
        # oldest running session, on the overview and on the CollectJob drill-down, since a
        # live CollectJob runs for less than a second). Live activity alone would take up to
        # 15 s to finish one.
        result.eventually(
            lambda: bool(
                result.query(
                    f'veeam_em_system_session_duration_seconds_count{{server="{SERVER}",'
                    ' session_type="CollectJob"}'
                )
            ),
            "Prometheus never scraped the exporter's histogram",
            STARTUP,
        )
        now = simulator.now()
        simulator.add_session(
            "CollectJob",
            state="CompletedSuccessfully",
            created=now - timedelta(seconds=90),
            ended=now,
        )
        simulator.add_session("DatabaseMaintenance", created=now - timedelta(minutes=5))
        simulator.add_session(DRILLDOWN_TYPE, created=now - timedelta(minutes=2))
        finish_and_poll_jobs(result, poller, simulator)
        yield result


def finish_and_poll_jobs(loop: Loop, poller: Poller, simulator: SimulatedEM) -> None:
    """Job sessions that finish after the job feed's baseline (a failure and its successful
    retry: counted, with durations for the histogram) and one that keeps running (progress,
    age), shown by the EM at a data collection, then read by one more poll of the feed."""
    # Once Prometheus holds the baseline, at 0: increase() and rate() then see the rise.
    loop.eventually(
        lambda: bool(
            loop.query(f'veeam_em_backup_job_session_duration_seconds_count{{server="{SERVER}"}}')
        ),
        "Prometheus never scraped the job feed's histogram",
        STARTUP,
    )
    now = simulator.now()
    simulator.add_job_session(
        FINISHED_JOB,
        state="Stopped",
        result="Failed",
        created=now - timedelta(minutes=40),
        ended=now - timedelta(minutes=20),
    )
    simulator.add_job_session(
        FINISHED_JOB,
        state="Stopped",
        result="Success",
        created=now - timedelta(minutes=15),
        ended=now,
        is_retry=True,
    )
    simulator.add_job_session(RUNNING_JOB, created=now - timedelta(minutes=5))
    simulator.collect()
    assert poller.poll_feed("job_sessions") == 0, "the job feed's second poll failed"
    loop.eventually(
        lambda: bool(
            loop.query(
                f'veeam_em_backup_job_sessions_finished_total{{server="{SERVER}",'
                f' job_name="{FINISHED_JOB}", result="Success", retry="true"}} > 0'
            )
        ),
        "Prometheus never saw the retry counted",
        SETTLE,
    )


# --- target and rules -----------------------------------------------------------------------------


def test_target_is_up(loop: Loop) -> None:
    def up() -> bool:
        targets = loop.api("targets", state="active")["activeTargets"]
        return any(
            t["labels"].get("job") == JOB
            and t["labels"].get("instance") == loop.target
            and t["health"] == "up"
            for t in targets
        )

    loop.eventually(up, f"target {loop.target} was not up", STARTUP)
    (sample,) = loop.query(f'veeam_em_up{{job="{JOB}", server="{SERVER}"}}')
    assert sample["metric"]["instance"] == loop.target
    assert sample["value"][1] == "1"


def expected_rules() -> dict[str, list[str]]:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return {
        group["name"]: [rule.get("record") or rule["alert"] for rule in group["rules"]]
        for group in data["groups"]
    }


def test_every_rule_loads_and_evaluates_ok(loop: Loop) -> None:
    expected = expected_rules()
    groups: list[dict[str, Any]] = []

    def all_evaluated() -> bool:
        groups[:] = loop.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        # Health is "unknown" until a rule's first evaluation.
        return bool(rules) and all(r["health"] != "unknown" for r in rules)

    loop.eventually(all_evaluated, "not every rule was evaluated", SETTLE)
    loaded = {g["name"]: [r["name"] for r in g["rules"]] for g in groups}
    assert loaded == expected
    for group in groups:
        assert group["file"] == str(ALERTS)
        for rule in group["rules"]:
            where = f"{group['name']}/{rule['name']}"
            assert rule["health"] == "ok", f"{where}: {rule.get('lastError')}"
            assert not rule.get("lastError"), where


# --- dashboards -------------------------------------------------------------------------------------

MODELS = {path.name: load_json(path) for path in DASHBOARDS}
TARGETS = {
    (name, panel.get("title", ""), target.get("refId", "")): target
    for name, dashboard in MODELS.items()
    for panel in all_panels(dashboard)
    for target in panel.get("targets", [])
}
QUERIES = [
    (name, title, ref, expr)
    for name, dashboard in MODELS.items()
    for title, ref, expr in dashboard_queries(dashboard)
]
QUERY_VARIABLES = [
    (name, variable)
    for name, dashboard in MODELS.items()
    for variable, model in variables(dashboard).items()
    if model["type"] == "query"
]


def selection(name: str, loop: Loop) -> dict[str, list[str]]:
    """What a user of this loop picks: real values where a variable takes one (this exporter,
    its one server), All session types on the overview, one type in the drill-down, two of
    the jobs (every backup server and job type) on the backup jobs dashboard."""
    chosen = {"job": [JOB], "instance": [loop.target], "server": [SERVER]}
    if name == JOBS.name:
        chosen.update(backup_server=[ALL], job_type=[ALL], job_name=list(SELECTED_JOBS))
    else:
        chosen["session_type"] = [DRILLDOWN_TYPE] if name == DRILLDOWN.name else [ALL]
    return chosen


def test_exemptions_name_existing_queries() -> None:
    present = {(name, title, ref) for name, title, ref, _ in QUERIES}
    assert set(MAY_BE_EMPTY) <= present, sorted(set(MAY_BE_EMPTY) - present)


def test_every_dashboard_is_tested() -> None:
    assert {name for name, _, _, _ in QUERIES} == {path.name for path in DASHBOARDS}


@pytest.mark.parametrize(
    ("name", "title", "ref", "expr"),
    QUERIES,
    ids=[f"{name.removesuffix('.json')}/{title}/{ref}" for name, title, ref, _ in QUERIES],
)
def test_dashboard_query_runs_and_returns_data(
    loop: Loop, name: str, title: str, ref: str, expr: str
) -> None:
    query = interpolate(expr, MODELS[name], selection(name, loop))
    # Grafana runs a panel's target as an instant query, a range query, or both.
    target = TARGETS[(name, title, ref)]
    as_range = bool(target.get("range", not target.get("instant", False)))
    # An error (bad syntax, many-to-many match, ...) fails at once in `api`; data may need a
    # few scrapes and evaluations (increase() needs two samples, a recording rule one round).
    results: list[dict[str, Any]] = []

    def has_data() -> bool:
        results[:] = loop.query(query)
        if as_range:
            results.extend(loop.query_range(query, 30))
        # NaN is no data to a user: histogram_quantile() of buckets that did not move.
        return any(v[1] != "NaN" for r in results for v in r.get("values", [r.get("value")]))

    if (name, title, ref) in MAY_BE_EMPTY:
        has_data()  # must still run without error
        return
    loop.eventually(has_data, f"{name} {title}/{ref}: no data for {query}", SETTLE)
    # The variables select exactly the series the user picked.
    for result in results:
        labels = result["metric"]
        assert labels.get("instance", loop.target) == loop.target, (title, labels)
        assert labels.get("server", SERVER) == SERVER, (title, labels)
        if name == DRILLDOWN.name:
            assert labels.get("session_type", DRILLDOWN_TYPE) == DRILLDOWN_TYPE, (title, labels)
        if name == JOBS.name:
            assert labels.get("job_name", FINISHED_JOB) in SELECTED_JOBS, (title, labels)


@pytest.mark.parametrize(
    ("name", "variable"),
    QUERY_VARIABLES,
    ids=[f"{name.removesuffix('.json')}/{variable}" for name, variable in QUERY_VARIABLES],
)
def test_template_variable_has_values(loop: Loop, name: str, variable: str) -> None:
    dashboard = MODELS[name]
    query = variable_query(variables(dashboard)[variable])
    selector = interpolate(variable_selector(query), dashboard, selection(name, loop))
    label = query.strip().removesuffix(")").rsplit(",", 1)[1].strip()
    values: list[str] = []

    def found() -> bool:
        values[:] = loop.api(f"label/{label}/values", **{"match[]": selector})
        return bool(values)

    loop.eventually(found, f"no values for {query}", SETTLE)
    # The values the query tests pick are among those a user is offered.
    expected = {"job": [JOB], "instance": [loop.target], "server": [SERVER]}
    if variable in expected:
        assert values == expected[variable]
    if variable == "session_type":
        assert {"CollectJob", "DatabaseMaintenance", DRILLDOWN_TYPE} <= set(values)
    if variable == "job_name":
        assert {FINISHED_JOB, RUNNING_JOB} <= set(values)
    if variable == "job_type":
        assert {"Backup", "ImmediateBackupCopy"} <= set(values)


# --- the failure alert ------------------------------------------------------------------------------


def test_injected_failure_fires_the_alert(loop: Loop) -> None:
    rule = next(
        r
        for g in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
        for r in g["rules"]
        if r.get("alert") == "VeeamEMSystemSessionFailed"
    )
    # Without `for` the alert fires on the first evaluation that sees the increase.
    state = "pending" if rule.get("for") else "firing"
    # The counter must exist before the failure, or increase() cannot see it go up.
    loop.eventually(
        lambda: bool(
            loop.query(
                f'veeam_em_system_sessions_finished_total{{server="{SERVER}",'
                f' session_type="CollectJob", result="Failed"}}'
            )
        ),
        "the CollectJob/Failed counter was never scraped",
        SETTLE,
    )

    message = f"Injected failure {uuid.uuid4()}: the RPC server is unavailable."
    # Created a little ahead of the simulated now, so that no live CollectJob failing in the
    # next seconds is newer and replaces the message in veeam_em_system_session_last_failure_info.
    created = loop.em.now() + timedelta(minutes=10)
    session = loop.em.add_session("CollectJob", created=created)
    loop.em.finish_session(
        session.id, state="Failed", ended=created + timedelta(minutes=2), message=message
    )

    alerts: list[dict[str, Any]] = []

    def matching() -> list[dict[str, Any]]:
        return [
            a
            for a in alerts
            if a["labels"].get("alertname") == "VeeamEMSystemSessionFailed"
            and a["labels"].get("server") == SERVER
            and a["labels"].get("session_type") == "CollectJob"
            and a["state"] == state
            and message in a["annotations"].get("description", "")
        ]

    def fired() -> bool:
        alerts[:] = loop.api("alerts")["alerts"]
        return bool(matching())

    loop.eventually(
        fired,
        f"VeeamEMSystemSessionFailed was not {state} with {message!r}",
        SETTLE,
        detail=lambda: f"active alerts: {alerts}",
    )
    (alert,) = matching()
    assert alert["labels"]["severity"] == "warning"
    assert alert["labels"]["job"] == JOB
    assert alert["labels"]["instance"] == loop.target
    assert SERVER in alert["annotations"]["summary"]
    assert alert["annotations"]["runbook_url"].endswith("#veeamemsystemsessionfailed")
    # The exporter itself is healthy: none of its own alerts is even pending.
    exporter_alerts = {
        "VeeamEMExporterDown",
        "VeeamEMExporterPollFailing",
        "VeeamEMAuthenticationFailing",
        "VeeamEMDataStale",
        "VeeamEMExporterTokenChurn",
    }
    assert not [a for a in alerts if a["labels"]["alertname"] in exporter_alerts]


# --- the exporter's own death --------------------------------------------------------------------


def rules_with_short_down_for(path: Path) -> Path:
    """A copy of the shipped rules with only VeeamEMExporterDown's `for:` set to DOWN_FOR."""
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    (rule,) = [
        r for g in data["groups"] for r in g["rules"] if r.get("alert") == "VeeamEMExporterDown"
    ]
    assert rule["for"] == "5m"
    rule["for"] = DOWN_FOR
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_stopping_the_exporter_fires_exporter_down(
    prometheus_path: str, simulator: SimulatedEM, tmp_path: Path
) -> None:
    # Its own exporter and Prometheus: stopping the module's exporter would end the other tests.
    with serving_exporter(simulator) as (exporter, http):
        target = f"127.0.0.1:{http.port}"
        config = prometheus_config(target, rules_with_short_down_for(tmp_path / "alerts.yml"))
        with running_prometheus(prometheus_path, tmp_path, simulator, target, config) as prom:
            alerts: list[dict[str, Any]] = []

            def down_alerts() -> list[dict[str, Any]]:
                alerts[:] = prom.api("alerts")["alerts"]
                return [a for a in alerts if a["labels"]["alertname"] == "VeeamEMExporterDown"]

            # Before the first scrape, `up` is absent and the absent() arm may be pending.
            prom.eventually(
                lambda: (
                    bool(prom.query(f'veeam_em:exporter_up{{instance="{target}"}} == 1'))
                    and not down_alerts()
                ),
                "the exporter was not seen up with VeeamEMExporterDown inactive",
                STARTUP,
                detail=lambda: f"active alerts: {alerts}",
            )

            exporter.stop()
            http.stop()

            def firing() -> list[dict[str, Any]]:
                return [
                    a
                    for a in down_alerts()
                    if a["state"] == "firing" and a["labels"].get("instance") == target
                ]

            prom.eventually(
                lambda: bool(firing()),
                f"VeeamEMExporterDown was not firing for {target}",
                SETTLE,
                detail=lambda: f"active alerts: {alerts}",
            )
            (alert,) = firing()
            assert alert["labels"]["job"] == JOB
            assert alert["labels"]["severity"] == "critical"
            assert alert["annotations"]["summary"] == f"veeam-em-exporter {target} is down"
            assert "no other Veeam EM alert can fire" in alert["annotations"]["description"]
            assert alert["annotations"]["runbook_url"].endswith("#veeamemexporterdown")
            # It went through pending first: Prometheus records that state in ALERTS too.
            pending = prom.query_range(
                f'ALERTS{{alertname="VeeamEMExporterDown", alertstate="pending",'
                f' instance="{target}"}}',
                120,
            )
            assert pending, "VeeamEMExporterDown fired without being pending first"
