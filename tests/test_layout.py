"""DESIGN.md's "must not" column, enforced on the import graph (STYLE.md, lesson 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IO_CLIENTS = ("aiohttp", "kubernetes", "prometheus_api_client", "requests", "grpc", "socket",
              "subprocess", "http", "autoscaler.clients")  # fmt: skip


def imports_of(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for file, names in imports_of(package).items():
        for name in names:
            if any(name == f or name.startswith(f + ".") for f in forbidden):
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
    ],
)
def test_package_respects_its_import_contract(package, forbidden):
    assert _violations(package, forbidden) == []


def test_the_contract_check_would_catch_a_violation(tmp_path, monkeypatch):
    pkg = tmp_path / "fake"
    pkg.mkdir()
    (pkg / "m.py").write_text("import aiohttp.web\nfrom kubernetes import client\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert len(_violations("fake", IO_CLIENTS)) == 2
