"""The pure half of the KEDA scaler: which workload a trigger names, and what we answer for it."""

from __future__ import annotations

import math

import pytest

from autoscaler.core.recommendation import PublishedMetric, Recommendation, hold
from autoscaler.live.store import Entry, WorkloadInfo
from external_metrics.keda.errors import BadMetadata, NotFresh, UnknownMetric
from external_metrics.keda.metadata import ScalerTarget, parse_scaler_metadata
from external_metrics.keda.reading import (
    DEFAULT_METRIC,
    REPLICA_UNIT_METRICS,
    fresh_recommendation,
    is_active,
    metric_value,
)

METRICS = REPLICA_UNIT_METRICS


def parse(namespace: str, metadata: dict[str, str]) -> ScalerTarget:
    return parse_scaler_metadata(
        namespace, metadata, metrics=METRICS, default_metric=DEFAULT_METRIC
    )


@pytest.mark.parametrize(
    ("so_namespace", "metadata", "expected"),
    [
        ("team", {"workload": "prod/llama"}, ("prod", "llama", "llm_desired_replicas")),
        ("team", {"workload": "llama"}, ("team", "llama", "llm_desired_replicas")),
        ("team", {"name": "llama"}, ("team", "llama", "llm_desired_replicas")),
        ("team", {"name": "llama", "namespace": "prod"}, ("prod", "llama", "llm_desired_replicas")),
        ("team", {"workload": "prod/llama-3.1", "metric": "llm_forecast_load_replicas"},
         ("prod", "llama-3.1", "llm_forecast_load_replicas")),
        ("team", {"workload": " prod/llama ", "metric": " "},
         ("prod", "llama", "llm_desired_replicas")),
        # KEDA passes the whole trigger metadata: keys we do not know are ignored.
        ("team", {"workload": "prod/llama", "scalerAddress": "svc:9443", "enableTLS": "true"},
         ("prod", "llama", "llm_desired_replicas")),
    ],
)  # fmt: skip
def test_metadata_names_the_workload_and_metric(so_namespace, metadata, expected):
    target = parse(so_namespace, metadata)
    assert (target.namespace, target.name, target.metric) == expected
    assert target.workload == f"{expected[0]}/{expected[1]}"


@pytest.mark.parametrize(
    ("so_namespace", "metadata", "key", "words"),
    [
        ("team", {}, "workload", "does not name the workload"),
        ("team", {"scalerAddress": "svc:9443"}, "workload", "does not name the workload"),
        ("team", {"workload": "prod/llama", "name": "llama"}, "workload", "twice"),
        ("team", {"workload": "llama", "namespace": "prod"}, "workload", "twice"),
        ("team", {"workload": "a/b/c"}, "workload", "'<namespace>/<name>'"),
        ("team", {"workload": "prod/"}, "workload", "not a Kubernetes object name"),
        ("team", {"workload": "Prod/llama"}, "workload", "not a Kubernetes namespace name"),
        ("team", {"name": "llama_3"}, "name", "not a Kubernetes object name"),
        ("team", {"name": "llama", "namespace": "x" * 64}, "namespace", "DNS-1123 label"),
        ("", {"name": "llama"}, "namespace", "namespace is empty"),
        ("team", {"workload": "prod/llama", "metric": "vllm:num_requests_waiting"}, "metric",
         "llm_desired_replicas, llm_forecast_load_replicas, llm_load_replicas"),
    ],
)  # fmt: skip
def test_bad_metadata_says_which_key_and_why(so_namespace, metadata, key, words):
    with pytest.raises(BadMetadata) as err:
        parse(so_namespace, metadata)
    assert err.value.key == key
    assert words in str(err.value)
    assert "scalerMetadata" in str(err.value)


def test_metric_must_be_among_those_offered():
    with pytest.raises(BadMetadata, match="llm_load_replicas"):
        parse_scaler_metadata(
            "team",
            {"workload": "prod/llama"},
            metrics=("llm_load_replicas",),
            default_metric=DEFAULT_METRIC,
        )


INFO = WorkloadInfo(namespace="prod", name="llama")


def rec(desired: int | None = 2, ts: float = 1000.0, **metrics: float) -> Recommendation:
    if desired is None:
        return hold("prod/llama", ts, "prometheus query failed")
    return Recommendation(
        workload="prod/llama",
        timestamp=ts,
        desired_replicas=desired,
        winner="forecast",
        metrics=tuple(PublishedMetric(name, value) for name, value in metrics.items()),
    )


def test_fresh_recommendation_is_served():
    good = rec(3, llm_desired_replicas=3.0)
    entry = Entry(info=INFO, last_good=good, latest=good, updated_at=1000.0)
    assert fresh_recommendation(entry, now=1030.0, staleness_s=45.0) is good


def test_no_data_stale_and_held_each_say_why():
    with pytest.raises(NotFresh, match="prod/llama has no recommendation yet"):
        fresh_recommendation(Entry(info=INFO), now=0.0, staleness_s=45.0)

    good = rec(3)
    old = Entry(info=INFO, last_good=good, latest=good, updated_at=1000.0)
    with pytest.raises(NotFresh, match=r"100 s old \(limit 45 s\).*fallback"):
        fresh_recommendation(old, now=1100.0, staleness_s=45.0)

    held = Entry(info=INFO, last_good=good, latest=rec(None), updated_at=1000.0)
    with pytest.raises(NotFresh, match="held \\(prometheus query failed\\)"):
        fresh_recommendation(held, now=1001.0, staleness_s=45.0)


def test_metric_value_never_invents_one():
    r = rec(3, llm_desired_replicas=3.0, llm_load_replicas=2.4)
    assert metric_value(r, "llm_load_replicas") == pytest.approx(2.4)
    with pytest.raises(UnknownMetric, match="publishes: llm_desired_replicas, llm_load_replicas"):
        metric_value(r, "llm_forecast_load_replicas")
    with pytest.raises(NotFresh, match="not a number"):
        metric_value(rec(3, llm_load_replicas=math.nan), "llm_load_replicas")


@pytest.mark.parametrize(
    ("desired", "metrics", "active"),
    [
        (2, {}, True),
        (0, {}, False),
        (0, {"llm_forecast_load_replicas": 0.3}, True),  # wake before the first request queues
        (0, {"llm_load_replicas": 0.5}, True),
        (0, {"llm_forecast_load_replicas": 0.001, "llm_load_replicas": 0.0}, False),  # < epsilon
        (0, {"llm_forecast_load_replicas": math.inf}, False),
        (0, {"llm_desired_replicas": 0.0, "some_other_metric": 5.0}, False),
    ],
)
def test_activation_follows_desired_replicas_and_the_forecast(desired, metrics, active):
    assert is_active(rec(desired, **metrics)) is active


def test_activation_epsilon_is_a_parameter():
    r = rec(0, llm_forecast_load_replicas=0.005)
    assert is_active(r) is False
    assert is_active(r, epsilon=0.001) is True
