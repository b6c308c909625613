"""The layout's import rules (DESIGN.md's "must not" column, issue 18's rooms), enforced on the
import graph that ``ast`` reads from the source (STYLE.md, lesson 1).

Every import counts: top-level, inside a function (the CLI's lazy ones) and under
``TYPE_CHECKING``, because each is an arrow in the design even where it costs nothing at run time.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("autoscaler", "external_metrics", "cache", "forecasting")
IO_CLIENTS = ("aiohttp", "kubernetes", "prometheus_api_client", "requests", "grpc", "socket",
              "subprocess", "http", "autoscaler.clients")  # fmt: skip
LIVE_LOOP = ("autoscaler.live",)
"""The live control loop (issue 18's ``live`` room). ``replica_states`` is not in it: it is pure
(``autoscaler/core/``), and the simulator reads pods through it too."""


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def _imported(path: Path, known: frozenset[str] = frozenset()) -> set[str]:
    """Modules ``path`` imports. ``from pkg import mod`` names ``pkg.mod`` when that is one of the
    ``known`` modules, and ``pkg`` itself only when some name is not a module: an arrow to the
    module, not to the package ``__init__`` that may re-export it (import-linter's reading too)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            submodules = {f"{module}.{alias.name}" for alias in node.names} & known
            names.update(submodules)
            if len(submodules) < len(node.names):
                names.add(module)
    return names


def imports_of(package: str) -> dict[str, set[str]]:
    """File (relative to the repository) -> the modules it imports, for a package's sources."""
    return {str(path.relative_to(ROOT)): _imported(path) for path in _sources(package)}


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for file, names in imports_of(package).items():
        for name in sorted(names):
            if _within(name, forbidden):
                bad.append(f"{file} imports {name}")
    return bad


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("forecasting", (*IO_CLIENTS, "autoscaler", "external_metrics", "cache")),
        ("autoscaler/policies", (*IO_CLIENTS, "autoscaler.simulation", "autoscaler.cli")),
        ("autoscaler/hpa", (*IO_CLIENTS, "autoscaler.simulation", "autoscaler.policies")),
        ("autoscaler/perf", (*IO_CLIENTS, "autoscaler.simulation", "autoscaler.policies")),
        ("autoscaler/engines", (*IO_CLIENTS, "autoscaler.simulation", "autoscaler.policies")),
        ("autoscaler/simulation", (*IO_CLIENTS, "autoscaler.cli")),
        ("cache", ("autoscaler.policies",)),
        ("external_metrics", ("autoscaler.simulation",)),
        ("autoscaler/offline", (*LIVE_LOOP, "autoscaler.cli")),
        (
            "autoscaler/clients",
            (
                *LIVE_LOOP,
                "autoscaler.policies",
                "autoscaler.simulation",
                "autoscaler.offline",
                "autoscaler.cli",
            ),
        ),
    ],
)
def test_package_respects_its_import_contract(package, forbidden):
    assert _violations(package, forbidden) == []


def _core_imports() -> list[tuple[str, str]]:
    return [
        (file, name)
        for file, names in imports_of("autoscaler/core").items()
        for name in sorted(names)
        if not _within(name, ("autoscaler.core",))
    ]


def test_the_core_imports_nothing_of_ours_outside_the_core():
    """``autoscaler.core`` is pure (its ``__init__`` says why); ``from autoscaler import x`` counts
    as reaching past it too."""
    assert ("autoscaler/core/attainment.py", "numpy") in _core_imports()  # the walk sees imports
    assert [f"{file} imports {name}" for file, name in _core_imports() if _within(name, OURS)] == []


def test_the_core_needs_only_the_standard_library_and_numpy():
    third_party = {name.split(".")[0] for _, name in _core_imports()}
    assert third_party - set(sys.stdlib_module_names) <= {"numpy"}


@pytest.mark.parametrize(
    "package",
    ["autoscaler/simulation", "autoscaler/core", "autoscaler/policies", "autoscaler/hpa",
     "autoscaler/perf", "autoscaler/engines"],
)  # fmt: skip
def test_the_simulator_and_the_decision_side_never_import_the_live_loop(package):
    """The simulator builds its own snapshots from emulated scrapes; what it shares with the live
    service is the core, the policies and the HPA emulation, never the loop that talks to
    Prometheus. The decision side is what both run, so it may not lean on either one's loop."""
    assert _violations(package, LIVE_LOOP) == []


def test_a_client_takes_plain_values_not_the_live_loop():
    """The HPA reader returns the core's ``CurrentAutoscaler``, which the live store keeps; the
    client never reaches into the store for it (the contract above holds it to that)."""
    workloads = imports_of("autoscaler/clients")["autoscaler/clients/kube/workloads.py"]
    assert "autoscaler.core.current_autoscaler" in workloads
    assert _violations("autoscaler/clients", LIVE_LOOP) == []


def test_the_pod_lifecycle_is_defined_once():
    """Both simulators (request-level ``fleet.py`` and rate-level ``fluid_fleet.py``) start, place
    and rank pods through ``simulation/lifecycle.py``; neither keeps its own copy of the phases."""
    sim = imports_of("autoscaler/simulation")
    for user in ("autoscaler/simulation/fleet.py", "autoscaler/simulation/fluid_fleet.py"):
        assert "autoscaler.simulation.lifecycle" in sim[user]
    defining = sorted(
        str(path.relative_to(ROOT))
        for package in OURS
        for path in _sources(package)
        if re.search(r"^(PULLING|_?UNREADY_ORDER)\b.*=", path.read_text(), re.M)
    )
    assert defining == ["autoscaler/simulation/lifecycle.py"]


def _defined_with_a_number(pattern: str) -> list[str]:
    found = []
    for package in OURS:
        for path in _sources(package):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(pattern, line):
                    found.append(f"{path.relative_to(ROOT)}:{number}")
    return found


def test_the_lead_time_and_the_pending_timeout_are_defined_once():
    """Their defaults are numbers in ``core/replica_states.py`` only (everything else names those
    constants), and a cold start's length is summed only by ``LifecycleConfig.cold_s``."""
    given = r"(pending_timeout_s|lead_time_s|LEAD_TIME_S|PENDING_TIMEOUT_S)\s*(:[^=]+)?=\s*[0-9]"
    assert [p.split(":")[0] for p in _defined_with_a_number(given)] == [
        "autoscaler/core/replica_states.py",
        "autoscaler/core/replica_states.py",
    ]
    summed = _defined_with_a_number(r"provision_s \+ [\w.]*pull_s \+ [\w.]*init_s")
    assert [p.split(":")[0] for p in summed] == ["autoscaler/simulation/lifecycle.py"]


def test_external_metrics_never_imports_the_clients():
    """The servers only read the store: what talks to Prometheus or Kubernetes (the pod watch,
    the TokenReview and SubjectAccessReview calls) is built by the composition root of ``serve``
    (``autoscaler/cli/serve_assembly.py``) and passed in behind a protocol
    (``external_metrics.access.Reviewer``)."""
    assert "autoscaler.live.store" in imports_of("external_metrics")["external_metrics/app.py"]
    assert _violations("external_metrics", ("autoscaler.clients",)) == []


def import_graph() -> dict[str, set[str]]:
    """Our module -> our modules it imports (packages' ``__init__`` included as modules)."""
    files = {_module_name(path): path for package in OURS for path in _sources(package)}
    known = frozenset(files)
    return {
        module: {name for name in _imported(path, known) if name in known and name != module}
        for module, path in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_among_our_modules():
    graph = import_graph()
    assert "autoscaler.core.signals" in graph["autoscaler.core.attainment"]  # the walk sees arrows
    assert (
        "autoscaler.offline.report.build" in graph["autoscaler.cli.report"]
    )  # from pkg import mod
    assert cycles(graph) == []


def test_the_cycle_check_would_catch_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_contract_check_would_catch_a_violation(tmp_path, monkeypatch):
    pkg = tmp_path / "fake"
    pkg.mkdir()
    (pkg / "m.py").write_text("import aiohttp.web\nfrom kubernetes import client\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert len(_violations("fake", IO_CLIENTS)) == 2


def test_the_architecture_map_names_only_paths_that_exist():
    """docs/architecture.md names files and folders in backticks; each must exist (at the root,
    under ``autoscaler/`` or ``external_metrics/``), so the map follows the next move."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`([\w./-]+(?:\.py|/))`", text))
    assert {"autoscaler/core/", "core/wire_names.py", "tests/test_layout.py"} <= named
    every_py = {path.name for package in OURS for path in _sources(package)}
    missing = [
        name
        for name in sorted(named)
        if not (
            name in every_py
            if "/" not in name
            else any(
                (base / name).exists()
                for base in (ROOT, ROOT / "autoscaler", ROOT / "external_metrics")
            )
        )
    ]
    assert missing == []


MAX_MODULE_LINES = 600
"""Issue 18: a module longer than this holds more than one idea; split it along a real seam."""

GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
"""protoc's output (``external_metrics/keda/``): generated, never edited by hand."""

OVER_THE_LIMIT: dict[str, str] = {}
"""Modules allowed past :data:`MAX_MODULE_LINES`, each with the change in flight that shrinks it
(none now: the last one, ``simulation/fluid.py``, was split when its pod lifecycle became
``simulation/lifecycle.py``, shared with the request-level fleet)."""


def _long_modules() -> dict[str, int]:
    found = {}
    for package in OURS:
        for path in _sources(package):
            if path.name.endswith(GENERATED):
                continue
            lines = len(path.read_text().splitlines())
            if lines > MAX_MODULE_LINES:
                found[str(path.relative_to(ROOT))] = lines
    return found


def test_no_module_is_over_600_lines_outside_the_listed_exemptions():
    assert {name for name in _long_modules() if name not in OVER_THE_LIMIT} == set()


def test_the_line_limit_would_catch_a_long_module(tmp_path, monkeypatch):
    pkg = tmp_path / "autoscaler"
    pkg.mkdir()
    (pkg / "long.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    (pkg / "short.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    (pkg / "api_pb2.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert _long_modules() == {"autoscaler/long.py": MAX_MODULE_LINES + 1}


ROOMS = ("autoscaler/core", "autoscaler/live", "autoscaler/clients", "autoscaler/engines",
         "autoscaler/perf", "autoscaler/hpa", "autoscaler/traces", "autoscaler/emulation",
         "autoscaler/offline", "autoscaler/cli", "autoscaler/config", "forecasting", "cache",
         "external_metrics", "external_metrics/keda", "autoscaler/policies",
         "autoscaler/policies/forecast", "autoscaler/simulation")  # fmt: skip
"""Packages whose ``__init__`` docstring states what the room is for and what it may import."""


@pytest.mark.parametrize("package", ROOMS)
def test_each_room_says_what_it_may_import(package):
    doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text())) or ""
    assert "May import" in doc
