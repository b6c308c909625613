"""The report's HPA and KEDA YAML: valid as deploy/'s objects are, and the same objects.

Validation reuses tests/test_deploy.py's own check (the OpenAPI schema of every supported
Kubernetes minor, 1.29 to 1.37, through kubernetes-validate, strict; the ScaledObject and
TriggerAuthentication against the JSON schemas in tests/schemas/, the ScaledObject's HPA
behaviour against each minor's too), so a report's manifest passes exactly the bar the committed
ones do. With ``tolerance=True`` (the per-HPA tolerance of the simulated behaviour) they are
valid from the minor whose API knows the field and rejected before it.
"""

from __future__ import annotations

import copy

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

from autoscaler.hpa import render
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR, behavior_to_dict
from autoscaler.kubernetes_support import (
    HPA_TOLERANCE,
    NEWEST_MINOR,
    OLDEST_MINOR,
    SUPPORTED_VERSIONS,
    version,
)
from autoscaler.offline.report import manifests
from autoscaler.offline.report.recommend import Settings
from external_metrics.keda.metadata import parse_scaler_metadata
from tests.test_deploy import _objects, _scaled_object, _validation_errors


def settings(
    namespace: str = "llm",
    name: str = "llama-70b",
    lo: int = 1,
    hi: int = 20,
    keda_lo: int | None = None,
) -> Settings:
    return Settings(
        namespace=namespace,
        name=name,
        policy="forecast@1",
        headroom=1.0,
        meets_target=True,
        headroom_reason="cheapest",
        min_replicas=lo,
        min_reason="quiet hours need it",
        max_replicas=hi,
        max_reason="the peak plus a quarter",
        keda_min_replicas=lo if keda_lo is None else keda_lo,
        keda_min_reason="no idle stretch",
        targets={},
        lead_time_s=240.0,
        warm_lead_time_s=60.0,
        cold_start_advice=(),
        prefetch={},
        prefetch_advice=(),
    )


CASES = [
    settings(),
    settings("prod", "mixtral.8x7b", lo=3, hi=48),
    settings("a", "b", lo=2, hi=3, keda_lo=0),
]


def _documents(s, *, tolerance=False):
    docs = [
        *_objects(manifests.hpa_yaml(s, tolerance=tolerance), "hpa.yaml"),
        *_objects(manifests.keda_yaml(s, tolerance=tolerance), "keda-scaledobject.yaml"),
    ]
    assert [d["kind"] for d in docs] == [
        "HorizontalPodAutoscaler",
        "ScaledObject",
        "TriggerAuthentication",
    ]
    return docs


@pytest.mark.parametrize("k8s", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("s", CASES, ids=lambda s: f"{s.namespace}/{s.name}")
def test_every_document_is_valid_on_every_supported_minor(s, k8s):
    assert [m for d in _documents(s) for m in _validation_errors(d, k8s)] == []


@pytest.mark.parametrize(
    "k8s",
    [
        pytest.param(
            k8s,
            id=f"{k8s}-{'valid' if int(k8s[2:]) >= HPA_TOLERANCE.accepted_from else 'rejected'}",
        )
        for k8s in SUPPORTED_VERSIONS
    ],
)
def test_the_tolerance_opt_in_needs_its_version(k8s):
    """The HPA and the ScaledObject's HPA behaviour both carry it; both are rejected before."""
    docs = _documents(CASES[0], tolerance=True)
    errors = {d["kind"]: _validation_errors(d, k8s) for d in docs}
    if int(k8s[2:]) >= HPA_TOLERANCE.accepted_from:
        assert errors == {k: [] for k in errors}
    else:
        assert errors["HorizontalPodAutoscaler"] and errors["ScaledObject"]
        assert all("tolerance" in m for ms in errors.values() for m in ms)
        assert errors["TriggerAuthentication"] == []


def test_the_schema_check_would_catch_a_bad_manifest():
    (hpa,) = _objects(manifests.hpa_yaml(settings()), "hpa.yaml")
    hpa["spec"]["minReplicas"] = "two"
    assert _validation_errors(hpa) != []
    so = manifests.scaled_object(settings())
    so["spec"]["triggers"][0]["metadata"]["workload"] = 7
    assert _validation_errors(so) != []


def test_the_yaml_is_the_object_it_was_built_from():
    s = CASES[1]
    assert _objects(manifests.hpa_yaml(s), "hpa") == [manifests.hpa(s)]
    assert _objects(manifests.keda_yaml(s), "keda") == [
        manifests.scaled_object(s),
        manifests.trigger_authentication(s.namespace),
    ]


def test_the_hpa_is_the_shipped_example_for_the_same_workload_and_bounds():
    expected = render.render_hpa("llama-70b", "llm", "llama-70b", render.EXAMPLE_SPEC)
    assert manifests.hpa(settings(lo=1, hi=20)) == expected
    metric = manifests.hpa(CASES[1])["spec"]["metrics"][0]["external"]
    assert metric == {
        "metric": {
            "name": "llm_desired_replicas",
            "selector": {"matchLabels": {"workload": "mixtral.8x7b"}},
        },
        "target": {"type": "AverageValue", "averageValue": "1"},
    }
    behavior = manifests.hpa(CASES[1])["spec"]["behavior"]
    assert behavior == behavior_to_dict(SHIPPED_BEHAVIOR, tolerance=False)
    full = manifests.hpa(CASES[1], tolerance=True)["spec"]["behavior"]
    assert full == behavior_to_dict(SHIPPED_BEHAVIOR), "the opt-in is the simulated behaviour"
    advanced = manifests.scaled_object(CASES[1], tolerance=True)["spec"]["advanced"]
    assert advanced["horizontalPodAutoscalerConfig"]["behavior"] == full


def test_the_hpa_floor_is_one_even_when_keda_may_scale_to_zero():
    s = settings(lo=0, hi=4, keda_lo=0)
    assert manifests.hpa(s)["spec"]["minReplicas"] == 1
    assert manifests.scaled_object(s)["spec"]["minReplicaCount"] == 0


def test_the_scaled_object_is_deploys_polled_trigger_with_the_recommended_bounds():
    shipped = _scaled_object()
    expected = copy.deepcopy(shipped)
    expected["spec"]["triggers"] = [
        t for t in shipped["spec"]["triggers"] if t["type"] == "external"
    ]
    assert manifests.scaled_object(settings(lo=1, hi=20)) == expected
    bounds = manifests.scaled_object(CASES[1])["spec"]
    assert (bounds["minReplicaCount"], bounds["maxReplicaCount"]) == (3, 48)
    assert bounds["fallback"]["replicas"] == 3


@pytest.mark.parametrize("s", CASES, ids=lambda s: f"{s.namespace}/{s.name}")
def test_the_trigger_names_the_workload_as_the_scaler_reads_it(s):
    (trigger,) = manifests.scaled_object(s)["spec"]["triggers"]
    assert trigger["metadata"]["scalerAddress"] == "llm-autoscaler.llm-autoscaler.svc:9443"
    target = parse_scaler_metadata(
        s.namespace,
        trigger["metadata"],
        metrics={"llm_desired_replicas"},
        default_metric="llm_desired_replicas",
    )
    assert (target.namespace, target.name, target.metric) == (
        s.namespace,
        s.name,
        "llm_desired_replicas",
    )


def test_the_headers_give_the_reasons_as_comments():
    s = settings(lo=2, hi=6)
    text = manifests.hpa_yaml(s)
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("minReplicas 2: quiet hours need it." in line for line in header)
    assert all(len(line) <= 100 for line in header)
    keda = manifests.keda_yaml(s)
    assert "llm-autoscaler-ca (key ca.crt) must exist in llm" in _header(keda)
    assert len(list(yaml.safe_load_all(keda))) == 2
    floor, newest = version(OLDEST_MINOR), version(NEWEST_MINOR)
    for text in (manifests.hpa_yaml(s), keda):
        assert f"Kubernetes: valid on {floor} to {newest}." in _header(text)
        assert f"({HPA_TOLERANCE.floor}+, or 1.33+ with HPAConfigurableTolerance" in _header(text)
    assert "KEDA 2.18+" in _header(keda)
    assert "reject the field" in _header(manifests.hpa_yaml(s, tolerance=True))


def _header(text):
    return " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
