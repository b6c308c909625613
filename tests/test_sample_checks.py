"""Impossible samples (negative, infinite, a KV share above 1) become missing signals, with the
reason in the snapshot (``/v1``) — never a value a policy acts on. Property-tested through the
Prometheus response parser and the collector, with every kind of float Prometheus can send."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.clients.fake_prometheus import FakePrometheus
from autoscaler.clients.prometheus import _parse_instant
from autoscaler.config import WorkloadConfig
from autoscaler.core.sample_checks import FRACTION_FIELDS, SIGNED_FIELDS, sample_problem
from autoscaler.core.signals import SignalSnapshot
from autoscaler.engines.promql import build_queries
from autoscaler.engines.registry import ENGINES
from autoscaler.live.collection import CORE_FIELDS, collect

NOW = 1_700_000_000.0
VLLM = {q.field: q.promql for q in build_queries(ENGINES["vllm"])}
W = WorkloadConfig(namespace="llm", name="chat", engine="vllm", selector={"app": "chat"})
SCALARS = sorted(
    f
    for f in VLLM
    if not f.startswith("per_replica_")
    and not f.endswith("_buckets")  # histograms: tests/test_collection.py
    and f in SignalSnapshot.__slots__
)
LABELS = {"namespace": "llm", "workload": "chat"}


def prom_text(x: float) -> str:
    """How Prometheus writes a sample value in its JSON API."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(x)


def vector(*rows: tuple[dict[str, str], float]) -> dict:
    """A Prometheus instant-vector ``data`` object, values written as Prometheus writes them."""
    result = [{"metric": labels, "value": [NOW, prom_text(x)]} for labels, x in rows]
    return {"resultType": "vector", "result": result}


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-1.0, -1e-3, 0.0, 0.5, 1.0, 1.5, 1e12]),
)


@given(st.text(min_size=1, max_size=30), values)
def test_sample_problem_accepts_exactly_the_possible_values(field, x):
    problem = sample_problem(field, x)
    if math.isnan(x):
        assert problem is None
    elif math.isinf(x):
        assert problem == "infinite"
    elif x < -1e-9 and field not in SIGNED_FIELDS:
        assert problem == "negative"
    elif field in FRACTION_FIELDS and x > 1 + 1e-9:
        assert problem == "above 1"
    else:
        assert problem is None


def healthy_raw() -> dict[str, float]:
    return {f: 1.0 if f != "kv_usage" else 0.4 for f in SCALARS}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(SCALARS), values, max_size=6),
       st.lists(values, min_size=1, max_size=4))  # fmt: skip
def test_no_impossible_value_reaches_a_snapshot(overrides, kv_by_pod):
    raw = {**healthy_raw(), **overrides}
    results = {}
    for field, x in raw.items():
        results[VLLM[field]] = _parse_instant(vector((LABELS, x)), VLLM[field])
    pods = vector(*[({**LABELS, "pod": f"p{i}"}, x) for i, x in enumerate(kv_by_pod)])
    results[VLLM["per_replica_kv_usage"]] = _parse_instant(pods, "kv")
    snap = collect(FakePrometheus(results=results), [W], now=NOW, staleness_s=45.0,
                   engines=ENGINES)["llm/chat"]  # fmt: skip

    for field, x in raw.items():
        got = getattr(snap, field)
        if sample_problem(field, x) is not None or math.isnan(x):
            assert got is None, (field, x, got)
        else:
            assert got == x
    assert all(-1e-9 <= v <= 1 + 1e-9 for v in snap.per_replica_kv_usage)  # float slack
    bad = [f for f, x in raw.items() if sample_problem(f, x)]
    bad_pods = [x for x in kv_by_pod if sample_problem("per_replica_kv_usage", x)]
    assert len(snap.rejected) == min(8, len(bad) + len(bad_pods))
    missing_core = any(getattr(snap, f) is None for f in CORE_FIELDS)
    assert snap.stale == missing_core


def test_a_negative_request_rate_is_named_in_the_snapshot_and_holds_the_policy():
    from autoscaler.core.slo import SloSpec
    from autoscaler.policies.base import PolicyContext
    from autoscaler.policies.forecast import ForecastPolicy

    results = {VLLM[f]: [] for f in VLLM}
    for f, x in {**healthy_raw(), "request_rate": -3.2}.items():
        results[VLLM[f]] = _parse_instant(vector((LABELS, x)), VLLM[f])
    snap = collect(FakePrometheus(results=results), [W], now=NOW, staleness_s=45.0,
                   engines=ENGINES)["llm/chat"]  # fmt: skip
    assert snap.request_rate is None and snap.stale
    assert snap.rejected == ("request_rate=-3.2: negative",)
    policy = ForecastPolicy(PolicyContext(slo=SloSpec(), max_replicas=10, peak_replicas=1))
    assert policy.recommend(snap).holds
