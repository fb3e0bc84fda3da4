"""The rules of ``prometheus/alerts.yml`` as a Prometheus Operator ``PrometheusRule``.

``alerts.yml`` is the one source of the thresholds, recording rules and alerts; the
PrometheusRule in ``deploy/kubernetes/`` is written from it by this module and never edited by
hand (tests/test_kubernetes.py fails when the committed file differs from what it writes)::

    python -m tools.prometheusrule            # rewrite deploy/kubernetes/prometheusrule.yaml
    python -m tools.prometheusrule --check    # exit 1 if that file is out of date
    python -m tools.prometheusrule --runbook-base-url https://wiki.example.com/veeam-em \\
        --label release=prometheus --output my-prometheusrule.yaml

Every alert's ``runbook_url`` is ``RUNBOOK_BASE_URL#<anchor>``; ``--runbook-base-url`` puts
another base in front of the same anchors (docs/alerts.md, "Runbook links").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from exporter.web import HOME_URL

REPO = Path(__file__).resolve().parent.parent
ALERTS = REPO / "prometheus" / "alerts.yml"
OUTPUT = REPO / "deploy" / "kubernetes" / "prometheusrule.yaml"

# The runbooks are the sections of docs/alerts.md, one heading per alert. Rule files have no
# variables, so alerts.yml spells this base out in every runbook_url; a test keeps them equal.
RUNBOOK_BASE_URL = f"{HOME_URL}/blob/main/docs/alerts.md"

NAME = "veeam-em-exporter"
# The labels every object of deploy/kubernetes/ carries.
LABELS: Mapping[str, str] = {
    "app.kubernetes.io/name": "veeam-em-exporter",
    "app.kubernetes.io/instance": "veeam-em-exporter",
}

HEADER = """\
# GENERATED from prometheus/alerts.yml by `python -m tools.prometheusrule` (`make prometheusrule`).
# Do not edit: change prometheus/alerts.yml (the thresholds too) and regenerate; a test fails
# while this file differs from what the command writes.
# Runbook links: {base}#<alert>
"""


def load_groups(path: Path = ALERTS) -> list[dict[str, Any]]:
    """The rule groups of a Prometheus rule file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise ValueError(f"{path}: not a rule file (no list of groups)")
    groups: list[dict[str, Any]] = data["groups"]
    return groups


def rebase_runbooks(groups: Sequence[Mapping[str, Any]], base: str) -> list[dict[str, Any]]:
    """A copy of ``groups`` whose runbook URLs start with ``base`` instead of the project's.

    A runbook_url that does not start with ``RUNBOOK_BASE_URL#`` is an error rather than left
    alone: it would be a link the new base silently fails to move.
    """
    if "#" in base or not base.startswith(("https://", "http://")):
        raise ValueError(f"runbook base URL {base!r}: an http(s) URL without a #fragment")
    prefix = RUNBOOK_BASE_URL + "#"
    rebased: list[dict[str, Any]] = []
    for group in groups:
        rules: list[dict[str, Any]] = []
        for rule in group["rules"]:
            rule = dict(rule)
            annotations = dict(rule.get("annotations") or {})
            url = annotations.get("runbook_url")
            if url is not None:
                if not str(url).startswith(prefix):
                    raise ValueError(f"{rule.get('alert')}: runbook_url {url} is not {prefix}...")
                annotations["runbook_url"] = base + "#" + str(url)[len(prefix) :]
                rule["annotations"] = annotations
            rules.append(rule)
        rebased.append({**group, "rules": rules})
    return rebased


def prometheus_rule(
    groups: Sequence[Mapping[str, Any]], extra_labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": NAME, "labels": {**LABELS, **(extra_labels or {})}},
        "spec": {"groups": list(groups)},
    }


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key, as Kubernetes manifests usually are."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # As alerts.yml writes them: multi-line expressions as literal blocks, long texts (the
    # descriptions) folded, so the file reads and diffs like the source.
    style = "|" if "\n" in value else ">" if len(value) > 80 and " " in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(
    base: str = RUNBOOK_BASE_URL,
    extra_labels: Mapping[str, str] | None = None,
    alerts: Path = ALERTS,
) -> str:
    """The PrometheusRule manifest, as the committed file holds it for the defaults."""
    document = prometheus_rule(rebase_runbooks(load_groups(alerts), base), extra_labels)
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return HEADER.format(base=base) + body


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: use KEY=VALUE")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.prometheusrule",
        description="Write the rules of prometheus/alerts.yml as a PrometheusRule.",
    )
    parser.add_argument(
        "--runbook-base-url",
        default=RUNBOOK_BASE_URL,
        help="base of every runbook_url; the alert's anchor follows after '#' (default: %(default)s)",
    )
    parser.add_argument(
        "--label",
        type=_label,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra metadata label, e.g. release=prometheus for a Prometheus's ruleSelector",
    )
    parser.add_argument(
        "--output",
        "-o",
        default=str(OUTPUT),
        help="file to write, '-' for standard output (default: %(default)s)",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the output file differs"
    )
    args = parser.parse_args(argv)
    try:
        text = render(args.runbook_base_url, dict(args.label))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    output = Path(args.output)
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output} is out of date: run `make prometheusrule`", file=sys.stderr)
            return 1
        return 0
    output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
