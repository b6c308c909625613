"""Per-role HPA and KEDA manifests (deploy/examples/pd-roles-*.yaml): valid on every supported
Kubernetes minor, in sync with their generator and the example config, and each selecting
exactly its own role's published value."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.config import load_config
from autoscaler.kubernetes_support import SUPPORTED_VERSIONS
from autoscaler.live.loop import workload_info
from autoscaler.offline.report import role_manifests
from external_metrics import selectors
from external_metrics.keda.metadata import parse_scaler_metadata
from external_metrics.lookup import WorkloadIndex
from tests.test_deploy import _objects, _validation_errors

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "examples" / "llm-autoscaler-roles.yaml"
HPA = ROOT / "deploy" / "examples" / "pd-roles-hpa.yaml"
KEDA = ROOT / "deploy" / "examples" / "pd-roles-keda.yaml"


def documents() -> list[dict]:
    return _objects(HPA.read_text(), HPA.name) + _objects(KEDA.read_text(), KEDA.name)


def test_the_examples_are_what_the_generator_writes(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert role_manifests.main(["--check"]) == 0


def test_the_examples_match_the_example_configs_roles():
    config = load_config(CONFIG)
    (workload,) = config.workloads
    got = {(t.role, t.name, t.kind, t.min_replicas, t.max_replicas) for t in config.targets}
    want = {
        (r.role, r.name, r.kind, r.min_replicas, r.max_replicas)
        for r in role_manifests.EXAMPLE_TARGETS
    }
    assert got == want
    kinds = [d["kind"] for d in documents()]
    assert kinds == ["HorizontalPodAutoscaler"] * 2 + ["ScaledObject"] * 2 + [
        "TriggerAuthentication"
    ]
    for doc in documents()[:4]:
        assert doc["metadata"]["namespace"] == workload.namespace


@pytest.mark.parametrize("k8s", SUPPORTED_VERSIONS)
def test_every_document_is_valid_on_every_supported_minor(k8s):
    assert [m for d in documents() for m in _validation_errors(d, k8s)] == []


def test_each_hpa_and_trigger_selects_its_own_role_only():
    config = load_config(CONFIG)
    infos = [workload_info(config, t) for t in config.targets]
    index = WorkloadIndex(infos)
    by_target = {t.name: t for t in config.targets}
    docs = documents()
    for hpa in docs[:2]:
        target = hpa["spec"]["scaleTargetRef"]
        role_target = by_target[target["name"]]
        assert target["kind"] == role_target.kind
        assert target["apiVersion"] == (
            "leaderworkerset.x-k8s.io/v1" if role_target.kind == "LeaderWorkerSet" else "apps/v1"
        )
        labels = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]
        text = ",".join(f"{k}={v}" for k, v in labels.items())
        (found,) = index.select(role_target.namespace, selectors.parse(text))
        assert found.name == role_target.name
        # without the role the selector would match both roles: the API refuses that
        without = ",".join(f"{k}={v}" for k, v in labels.items() if k != "role")
        assert len(index.select(role_target.namespace, selectors.parse(without))) == 2
    for so in docs[2:4]:
        trigger = so["spec"]["triggers"][0]["metadata"]
        parsed = parse_scaler_metadata(
            so["metadata"]["namespace"],
            trigger,
            metrics=["llm_desired_replicas"],
            default_metric="llm_desired_replicas",
        )
        role_target = by_target[so["spec"]["scaleTargetRef"]["name"]]
        assert (parsed.name, parsed.role) == (role_target.group, role_target.role)
