"""The shape of the code: one direction of dependencies, no cycles, pure stages without I/O.

Read from the source with ``ast`` (imports inside functions included), so a new import that
breaks the layering fails here rather than in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "exporter"

# The data path, in order: a module may import only modules before it (and the shared nouns).
DATA_PATH = ("config", "emclient", "parse", "snapshot", "collector", "web")
SHARED_NOUNS = ("reasons", "state", "vocabulary")
# Stages that are pure functions over bytes and records: no network, no threads.
PURE = (
    "parse",
    "jsonstream",
    "snapshot",
    "collector",
    "state",
    "vocabulary",
    "reasons",
    "emformat",
    "feed",
    "jobsessions.plan",
    "jobsessions.parse",
    "jobsessions.reduce",
    "jobsessions.state",
    "jobsessions.collector",
)
NETWORK = ("requests", "urllib3", "socket", "http", "ssl", "threading", "exporter.emclient")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{package}.{base}".strip(".")
            for alias in node.names:
                # "from exporter import logs" depends on the module exporter.logs, not on the
                # package's __init__.
                sub = f"{base}.{alias.name}"
                found.add(
                    sub
                    if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                    else base
                )
    return found


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {
    name: {i for i in _imports(path) if i in MODULES} - {name} for name, path in MODULES.items()
}


def test_no_module_imports_one_that_imports_it_back() -> None:
    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, trail = stack.pop()
            for nxt in GRAPH[node]:
                if nxt == start:
                    return [*trail, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = [cycle for name in GRAPH if (cycle := cycle_from(name)) and name != "exporter"]
    assert not cycles, cycles


@pytest.mark.parametrize("stage", DATA_PATH)
def test_the_data_path_reads_in_one_direction(stage: str) -> None:
    later = DATA_PATH[DATA_PATH.index(stage) + 1 :]
    imported = {name.removeprefix("exporter.") for name in GRAPH[f"exporter.{stage}"]}
    assert not imported & set(later), f"exporter.{stage} imports a later stage: {imported}"


@pytest.mark.parametrize("module", PURE)
def test_pure_stages_do_no_io(module: str) -> None:
    imported = _imports(MODULES[f"exporter.{module}"])
    bad = {
        name for name in imported for net in NETWORK if name == net or name.startswith(net + ".")
    }
    assert not bad, f"exporter.{module} imports {bad}"


def test_shared_nouns_import_no_consumer() -> None:
    for noun in SHARED_NOUNS:
        imported = {name.removeprefix("exporter.") for name in GRAPH[f"exporter.{noun}"]}
        assert imported <= {"snapshot", "parse", "vocabulary", "redact"}, (noun, imported)


def test_the_self_metrics_need_no_http_client() -> None:
    imported = _imports(MODULES["exporter.health"])
    assert not any(name.split(".")[0] in ("requests", "lxml") for name in imported)
    assert "exporter.emclient" not in imported


def test_the_simulator_shares_no_code_with_the_exporter() -> None:
    """The simulated EM is an independent reference: it must not borrow the client's rules."""
    for name, imported in GRAPH.items():
        if name.startswith("exporter.simulator"):
            borrowed = {i for i in imported if not i.startswith("exporter.simulator")}
            assert not borrowed, (name, borrowed)
