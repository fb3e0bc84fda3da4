"""Tests for the Kubernetes manifests in deploy/kubernetes/ and the PrometheusRule generator.

The core kinds (Deployment, Service, Secret, ConfigMap) are validated offline against the
Kubernetes JSON schemas that kubernetes-validate bundles, for the oldest and the newest
Kubernetes it knows. The Prometheus Operator's kinds (ServiceMonitor, PrometheusRule) have no
schema there and are checked field by field against the Operator's CRDs (monitoring.coreos.com/v1)
and against the Service and prometheus/alerts.yml they must agree with. `kubectl kustomize`
(skipped without kubectl; failing in CI, where .ci/run installs it) builds the kustomization as
`kubectl apply -k` would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions
from prometheus_client import CollectorRegistry

from exporter import __version__
from exporter.cli import DEFAULT_LISTEN, build_parser
from exporter.config import load_file
from exporter.web import ServerInfo, make_app, parse_listen_address

REPO = Path(__file__).resolve().parent.parent
# tools/ is not installed: it is imported from the checkout, as `python -m tools...` does.
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from tools import prometheusrule  # noqa: E402

K8S = REPO / "deploy" / "kubernetes"
KUSTOMIZATION = K8S / "kustomization.yaml"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
DOCKERFILE = REPO / "Dockerfile"
ALERTS = REPO / "prometheus" / "alerts.yml"

IMAGE_USER = 10001
# Kubernetes versions whose schemas the core kinds must satisfy: the oldest and newest bundled.
K8S_VERSIONS = [all_versions()[0], all_versions()[-1]]
# The Operator's duration format (ServiceMonitor interval, scrapeTimeout; a rule's `for`).
DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
# Fields of the monitoring.coreos.com/v1 CRDs, so a misspelt one fails here rather than being
# dropped without a word by the API server.
SERVICEMONITOR_SPEC = {
    "attachMetadata", "bodySizeLimit", "endpoints", "jobLabel", "keepDroppedTargets",
    "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit", "namespaceSelector",
    "podTargetLabels", "sampleLimit", "scrapeClass", "scrapeProtocols", "selector",
    "targetLabels", "targetLimit",
}  # fmt: skip
SERVICEMONITOR_ENDPOINT = {
    "authorization", "basicAuth", "bearerTokenSecret", "enableHttp2", "filterRunning",
    "followRedirects", "honorLabels", "honorTimestamps", "interval", "metricRelabelings",
    "oauth2", "params", "path", "port", "relabelings", "scheme", "scrapeTimeout", "targetPort",
    "tlsConfig", "trackTimestampsStaleness",
}  # fmt: skip
RULE_GROUP = {
    "interval",
    "labels",
    "limit",
    "name",
    "partial_response_strategy",
    "query_offset",
    "rules",
}
RULE = {"alert", "annotations", "expr", "for", "keep_firing_for", "labels", "record"}
KUSTOMIZATION_KEYS = {
    "apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images",
}  # fmt: skip


# --- loading -----------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def kustomization() -> dict[str, Any]:
    return load(KUSTOMIZATION)


def resources() -> dict[str, dict[str, Any]]:
    """The objects kustomization.yaml lists, by kind."""
    objects = [load(K8S / name) for name in kustomization()["resources"]]
    by_kind = {obj["kind"]: obj for obj in objects}
    assert len(by_kind) == len(objects), "one object of each kind"
    return by_kind


def deployment() -> dict[str, Any]:
    return resources()["Deployment"]


def pod_spec() -> dict[str, Any]:
    spec = deployment()["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    assert isinstance(only, dict)
    return only


def volume(name: str) -> dict[str, Any]:
    (found,) = [v for v in pod_spec()["volumes"] if v["name"] == name]
    assert isinstance(found, dict)
    return found


def mount_path(volume_name: str) -> str:
    (found,) = [m for m in container()["volumeMounts"] if m["name"] == volume_name]
    return str(found["mountPath"])


def generated_config_maps() -> list[dict[str, Any]]:
    """The ConfigMaps of configMapGenerator, as kustomize makes them (less the name's hash)."""
    maps = []
    for generator in kustomization()["configMapGenerator"]:
        data = {}
        for entry in generator["files"]:
            key, _, source = str(entry).rpartition("=")
            data[key or Path(source).name] = (K8S / source).read_text(encoding="utf-8")
        maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    return maps


def core_objects() -> list[dict[str, Any]]:
    objects = [resources()["Deployment"], resources()["Service"], load(SECRET_EXAMPLE)]
    return objects + generated_config_maps()


def validate(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def job_of_the_rules() -> str:
    """The job name the rules select: the `up{job="..."}` of veeam_em:exporter_up."""
    (expr,) = [
        str(rule["expr"])
        for group in prometheusrule.load_groups(ALERTS)
        for rule in group["rules"]
        if rule.get("record") == "veeam_em:exporter_up"
    ]
    match = re.fullmatch(r'up\{job="([^"]+)"\}', expr.strip())
    assert match, expr
    return match.group(1)


def dockerfile_user() -> tuple[int, int]:
    """UID and GID of the last USER of the Dockerfile (the runtime stage's)."""
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert users, "the Dockerfile sets no numeric USER uid:gid"
    uid, gid = users[-1]
    return int(uid), int(gid)


def quantity(text: str) -> float:
    """A Kubernetes quantity (100m, 1, 256Mi) as a number."""
    units = {"m": 1e-3, "": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|)", str(text))
    assert match, text
    return float(match.group(1)) * units[match.group(2)]


# --- the kustomization -------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_and_only_existing_files() -> None:
    k = kustomization()
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert k["kind"] == "Kustomization"
    assert set(k) <= KUSTOMIZATION_KEYS, sorted(set(k) - KUSTOMIZATION_KEYS)
    assert k["namespace"] == "veeam-em-exporter"
    listed = set(k["resources"])
    generated = {
        str(entry).rpartition("=")[2] for g in k["configMapGenerator"] for entry in g["files"]
    }
    for name in listed | generated:
        assert (K8S / name).is_file(), f"kustomization.yaml lists {name}, which does not exist"
    present = {p.name for p in K8S.iterdir()}
    # The Secret example is left out on purpose (see the next test); nothing else may be.
    assert present == listed | generated | {KUSTOMIZATION.name, SECRET_EXAMPLE.name}
    kinds = {load(K8S / name)["kind"] for name in listed}
    assert kinds == {"Deployment", "Service", "ServiceMonitor", "PrometheusRule"}


def test_the_secret_example_is_an_example_never_applied() -> None:
    # Applying it would overwrite the real password with the placeholder.
    assert SECRET_EXAMPLE.name not in kustomization()["resources"]
    secret = load(SECRET_EXAMPLE)
    text = SECRET_EXAMPLE.read_text(encoding="utf-8")
    assert text.startswith("# EXAMPLE ONLY")
    assert "kubectl -n veeam-em-exporter create secret generic" in text
    assert "--from-file=em01=" in text
    assert secret["metadata"]["name"] == volume("em-password")["secret"]["secretName"]
    assert secret["metadata"]["namespace"] == kustomization()["namespace"]
    assert all("REPLACE-ME" in value for value in secret["stringData"].values())


def test_the_image_is_the_versioned_one_and_its_registry_a_placeholder() -> None:
    assert container()["image"] == f"veeam-em-exporter:{__version__}"
    (image,) = kustomization()["images"]
    assert image == {
        "name": "veeam-em-exporter",
        "newName": "registry.example.com/veeam-em-exporter",
        "newTag": __version__,
    }


def test_every_object_carries_the_common_labels() -> None:
    for kind, obj in resources().items():
        assert obj["metadata"]["name"] == "veeam-em-exporter", kind
        labels = obj["metadata"]["labels"]
        assert labels.items() >= prometheusrule.LABELS.items(), kind
        # The namespace comes from kustomization.yaml alone, so it is changed in one place.
        assert "namespace" not in obj["metadata"], kind


# --- schemas -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_objects_validate_against_the_kubernetes_schemas(version: str) -> None:
    objects = core_objects()
    assert {o["kind"] for o in objects} == {"Deployment", "Service", "Secret", "ConfigMap"}
    for obj in objects:
        validate(obj, version)


def test_the_schema_validation_catches_mistakes() -> None:
    # The same check on broken copies: a misspelt field and a port given as a string.
    version = K8S_VERSIONS[-1]
    broken = deployment()
    broken["spec"]["template"]["spec"]["containers"][0]["securityContexts"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken, version)
    broken = resources()["Service"]
    broken["spec"]["ports"][0]["port"] = "9745"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken, version)


# --- the Deployment ----------------------------------------------------------------------------


def test_one_replica_whose_pods_the_selector_matches() -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_the_pod_runs_as_the_images_non_root_user_locked_down() -> None:
    uid, gid = dockerfile_user()
    assert uid == gid == IMAGE_USER
    pod = pod_spec()["securityContext"]
    assert pod == {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "fsGroup": gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container()["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod_spec()["automountServiceAccountToken"] is False
    # Nothing writable is mounted: the exporter writes no file.
    assert {v["name"] for v in pod_spec()["volumes"]} == {"config", "em-password"}
    assert all(m["readOnly"] is True for m in container()["volumeMounts"])


def test_the_container_port_is_the_exporters_default_listen_port() -> None:
    _, port = parse_listen_address(DEFAULT_LISTEN)
    (container_port,) = container()["ports"]
    assert container_port == {"name": "http-metrics", "containerPort": port, "protocol": "TCP"}
    args = build_parser().parse_args(container()["args"])
    assert args.listen_address == DEFAULT_LISTEN
    assert args.telemetry_path == "/metrics"


def _get(app: Any, path: str) -> str:
    environ: dict[str, Any] = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    status: list[str] = []
    b"".join(app(environ, lambda s, headers: status.append(s)))
    return status[0]


def test_the_probes_ask_the_exporters_health_and_readiness_paths() -> None:
    liveness = container()["livenessProbe"]["httpGet"]
    readiness = container()["readinessProbe"]["httpGet"]
    assert liveness == {"path": "/-/healthy", "port": "http-metrics"}
    assert readiness == {"path": "/-/ready", "port": "http-metrics"}
    polled = False

    def servers() -> list[ServerInfo]:
        return [ServerInfo("em01", "https://em01:9398", polled, None, None, False)]

    app = make_app(CollectorRegistry(), servers)
    assert _get(app, liveness["path"]) == "200 OK"
    assert _get(app, readiness["path"]) == "503 Service Unavailable"
    polled = True
    assert _get(app, readiness["path"]) == "200 OK"
    assert _get(app, "/-/nonexistent") == "404 Not Found"


def test_resources_are_requested_and_limited() -> None:
    res = container()["resources"]
    assert res["requests"]["memory"] == "100Mi"
    assert res["limits"]["memory"] == "256Mi"
    for kind in ("cpu", "memory"):
        assert 0 < quantity(res["requests"][kind]) <= quantity(res["limits"][kind]), kind


def test_sigterm_grace_period_covers_the_logouts() -> None:
    # The exporter's stop is bounded to a few seconds (every EM logged out in parallel).
    assert 10 <= pod_spec()["terminationGracePeriodSeconds"] <= 30


def test_the_config_comes_from_the_configmap_and_is_valid(tmp_path: Path) -> None:
    args = build_parser().parse_args(container()["args"])
    config_dir = mount_path("config")
    assert args.config_file == f"{config_dir}/config.yml"
    (generated,) = generated_config_maps()
    assert volume("config")["configMap"]["name"] == generated["metadata"]["name"]
    assert "config.yml" in generated["data"]
    # Valid as the exporter reads it, with the password file where the Secret is mounted.
    secret_dir = mount_path("em-password")
    text = generated["data"]["config.yml"]
    keys = set(load(SECRET_EXAMPLE)["stringData"])
    for key in keys:
        (tmp_path / key).write_text("s3cret\n")
    config = tmp_path / "config.yml"
    config.write_text(text.replace(secret_dir, str(tmp_path)), encoding="utf-8")
    loaded = load_file(str(config))
    assert [s.name for s in loaded.servers] == ["em01"]
    files = re.findall(r"^\s*password_file:\s*(\S+)", text, re.M)
    assert files == [f"{secret_dir}/{key}" for key in sorted(keys)]
    assert "password:" not in text.replace("password_file:", "")


def test_the_password_secret_is_mounted_whole_and_group_readable() -> None:
    # A subPath mount would never see a rotated Secret.
    mounts = container()["volumeMounts"]
    assert all("subPath" not in m for m in mounts)
    secret = volume("em-password")["secret"]
    assert secret["defaultMode"] == 0o440
    assert "optional" not in secret  # the pod waits for the Secret rather than run without it


# --- Service and ServiceMonitor -----------------------------------------------------------------


def test_the_service_selects_the_pods_on_the_named_port() -> None:
    service = resources()["Service"]
    assert service["spec"]["type"] == "ClusterIP"
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    _, default_port = parse_listen_address(DEFAULT_LISTEN)
    assert port == {
        "name": "http-metrics",
        "port": default_port,
        "targetPort": "http-metrics",
        "protocol": "TCP",
    }


def test_the_servicemonitor_scrapes_the_services_port_as_the_rules_job() -> None:
    monitor = resources()["ServiceMonitor"]
    service = resources()["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert set(spec) <= SERVICEMONITOR_SPEC, sorted(set(spec) - SERVICEMONITOR_SPEC)
    assert {"selector", "endpoints"} <= set(spec)
    assert set(spec["selector"]) == {"matchLabels"}
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert "namespaceSelector" not in spec  # the Service is in the ServiceMonitor's namespace
    # The rules of alerts.yml find the exporter's `up` by job name.
    assert service["metadata"]["labels"][spec["jobLabel"]] == job_of_the_rules()
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= SERVICEMONITOR_ENDPOINT, sorted(set(endpoint) - SERVICEMONITOR_ENDPOINT)
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == build_parser().parse_args([]).telemetry_path
    assert endpoint["interval"] == "60s"
    assert endpoint["honorLabels"] is False
    for key in ("interval", "scrapeTimeout"):
        assert DURATION.match(endpoint[key]), endpoint[key]
    assert int(endpoint["scrapeTimeout"].rstrip("s")) < int(endpoint["interval"].rstrip("s"))


# --- PrometheusRule ----------------------------------------------------------------------------


def test_the_committed_prometheusrule_is_what_the_generator_writes() -> None:
    committed = prometheusrule.OUTPUT.read_text(encoding="utf-8")
    assert committed == prometheusrule.render(), (
        "deploy/kubernetes/prometheusrule.yaml differs from prometheus/alerts.yml: "
        "run `make prometheusrule`"
    )


def test_the_prometheusrule_holds_the_groups_of_alerts_yml() -> None:
    rule = resources()["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == load(ALERTS)["groups"]
    for group in rule["spec"]["groups"]:
        assert set(group) <= RULE_GROUP and "name" in group, group.get("name")
        for r in group["rules"]:
            assert set(r) <= RULE, sorted(set(r) - RULE)
            assert "expr" in r
            assert ("alert" in r) != ("record" in r)
            assert DURATION.match(str(r.get("for", "0"))), r


def test_the_generator_rebases_the_runbooks_and_adds_labels(tmp_path: Path) -> None:
    output = tmp_path / "rule.yaml"
    base = "https://wiki.example.com/ops/veeam-em"
    code = prometheusrule.main(
        ["--runbook-base-url", base, "--label", "release=prometheus", "-o", str(output)]
    )
    assert code == 0
    written = load(output)
    assert written["metadata"]["labels"]["release"] == "prometheus"
    original = load(ALERTS)["groups"]
    urls = 0
    for group, source in zip(written["spec"]["groups"], original, strict=True):
        for rule, source_rule in zip(group["rules"], source["rules"], strict=True):
            if "alert" not in rule:
                assert rule == source_rule
                continue
            url = rule["annotations"].pop("runbook_url")
            assert url == f"{base}#{rule['alert'].lower()}"
            source_rule["annotations"].pop("runbook_url")
            assert rule == source_rule  # nothing else changed
            urls += 1
    assert urls == len([r for g in original for r in g["rules"] if "alert" in r]) > 0


def test_the_generator_refuses_a_runbook_outside_the_documented_base() -> None:
    groups = prometheusrule.load_groups(ALERTS)
    groups[-1]["rules"][0]["annotations"]["runbook_url"] = "https://elsewhere.example.com/#x"
    with pytest.raises(ValueError, match="is not https://"):
        prometheusrule.rebase_runbooks(groups, "https://wiki.example.com/x")
    with pytest.raises(ValueError, match="fragment"):
        prometheusrule.rebase_runbooks(groups, "https://wiki.example.com/x#y")


def test_the_generators_check_mode_reports_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "rule.yaml"
    assert prometheusrule.main(["--check", "-o", str(output)]) == 1
    assert "make prometheusrule" in capsys.readouterr().err
    assert prometheusrule.main(["-o", str(output)]) == 0
    assert prometheusrule.main(["--check", "-o", str(output)]) == 0
    assert output.read_text(encoding="utf-8") == prometheusrule.OUTPUT.read_text(encoding="utf-8")


def test_make_regenerates_the_prometheusrule() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    target = re.search(r"^prometheusrule:.*\n\t(.+)$", makefile, re.M)
    assert target, "the Makefile has no prometheusrule target"
    assert "-m tools.prometheusrule" in target.group(1)


# --- kustomize ---------------------------------------------------------------------------------


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path:
        return path
    message = "kubectl not found (apt-get install kubernetes-client)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def built() -> Iterable[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_kustomize_builds_what_kubectl_apply_k_applies() -> None:
    objects = {obj["kind"]: obj for obj in built()}
    assert set(objects) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
    }
    for obj in objects.values():
        assert obj["metadata"]["namespace"] == "veeam-em-exporter", obj["kind"]
    config_map = objects["ConfigMap"]
    # The generated name carries a hash of the content, and the Deployment follows it.
    assert re.fullmatch(r"veeam-em-exporter-config-[a-z0-9]+", config_map["metadata"]["name"])
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (config_volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    assert config_volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert config_map["data"] == generated_config_maps()[0]["data"]
    image = pod["containers"][0]["image"]
    assert image == f"registry.example.com/veeam-em-exporter:{__version__}"
    assert objects["PrometheusRule"]["spec"] == resources()["PrometheusRule"]["spec"]
    for kind in ("ConfigMap", "Deployment", "Service"):
        for version in K8S_VERSIONS:
            validate(objects[kind], version)
