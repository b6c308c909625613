"""The collection step against a data fake of Prometheus (STYLE.md, lesson 5): no HTTP here."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.clients.fake_prometheus import FakePrometheus
from autoscaler.clients.prometheus import (
    PrometheusQueryError,
    PrometheusUnavailable,
    PrometheusUnreachable,
    RangeSeries,
    Sample,
)
from autoscaler.config import WorkloadConfig
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.engines.promql import build_queries
from autoscaler.engines.registry import ENGINES
from autoscaler.errors import UnknownNameError
from autoscaler.live.collection import NO_REPLICAS, collect

NOW = 1_700_000_000.0
VLLM = {q.field: q.promql for q in build_queries(ENGINES["vllm"])}


def workload(name: str, engine: str = "vllm", namespace: str = "llm") -> WorkloadConfig:
    return WorkloadConfig(namespace=namespace, name=name, engine=engine, selector={"app": name})


def row(name: str, value: float, ts: float = NOW, namespace: str = "llm", **labels: str) -> Sample:
    return Sample({"namespace": namespace, "workload": name, **labels}, ts, value)


def vllm_results(names: list[str], ts: float = NOW) -> dict[str, list[Sample]]:
    """A healthy vLLM fleet: workload i has request rate 10 * (i + 1), two pods each."""
    results: dict[str, list[Sample]] = {promql: [] for promql in VLLM.values()}
    for i, name in enumerate(names):
        k = float(i + 1)
        for field, value in {
            "request_rate": 10 * k,
            "prompt_tokens_rate": 1000 * k,
            "generation_tokens_rate": 200 * k,
            "preemption_rate": 0.0,
            "ttft_p90_s": 0.1 * k,
            "tpot_p90_s": 0.02 * k,
            "e2e_p95_s": 5 * k,
            "queue_time_p90_s": 0.05 * k,
            "p90_prompt_tokens": 900 * k,
            "mean_prompt_tokens": 500 * k,
            "waiting": 4 * k,
            "waiting_growth_rate": 0.5 * k,
            "running": 30 * k,
            "kv_usage": 0.4,
            "kv_usage_max": 0.6,
        }.items():
            results[VLLM[field]].append(row(name, value, ts))
        for pod, share in (("b", 0.25), ("a", 0.75)):
            results[VLLM["per_replica_waiting"]].append(row(name, 4 * k * share, ts, pod=pod))
            results[VLLM["per_replica_running"]].append(row(name, 30 * k * share, ts, pod=pod))
            results[VLLM["per_replica_kv_usage"]].append(row(name, share, ts, pod=pod))
    return results


def run(
    api: FakePrometheus, workloads: list[WorkloadConfig], **kw: Any
) -> dict[str, SignalSnapshot]:
    kw.setdefault("staleness_s", 45.0)
    return collect(api, workloads, now=NOW, engines=ENGINES, **kw)


def test_a_vllm_fleet_of_three_fills_every_field_of_its_own_workload():
    names = ["chat", "code", "summarize"]
    api = FakePrometheus(results=vllm_results(names))
    snaps = run(api, [workload(n) for n in names])

    assert sorted(snaps) == ["llm/chat", "llm/code", "llm/summarize"]
    code = snaps["llm/code"]
    assert code.workload == "llm/code" and code.timestamp == NOW
    assert not code.stale and code.data_age_s == 0.0
    assert code.request_rate == 20.0
    assert code.prompt_tokens_rate == 2000.0
    assert code.generation_tokens_rate == 400.0
    assert code.waiting_growth_rate == 1.0
    assert code.ttft_p90_s == pytest.approx(0.2)
    assert code.tpot_p90_s == pytest.approx(0.04)
    assert code.e2e_p95_s == 10.0
    assert code.queue_time_p90_s == pytest.approx(0.1)
    assert code.p90_prompt_tokens == 1800.0
    assert code.mean_prompt_tokens == 1000.0
    assert (code.waiting, code.running) == (8.0, 60.0)
    assert (code.kv_usage, code.kv_usage_max, code.preemption_rate) == (0.4, 0.6, 0.0)
    # per-replica vectors in pod order (a, b), whatever order Prometheus returned
    assert code.per_replica_waiting == (6.0, 2.0)
    assert code.per_replica_running == (45.0, 15.0)
    assert code.per_replica_kv_usage == (0.75, 0.25)
    assert snaps["llm/chat"].request_rate == 10.0
    assert snaps["llm/summarize"].request_rate == 30.0
    assert code.replicas == NO_REPLICAS
    assert all(at == NOW for at in api.times)


def test_replica_counts_come_from_the_argument_not_prometheus():
    counts = ReplicaCounts(spec=3, ready=2, starting=1, pending=0, terminating=0)
    api = FakePrometheus(results=vllm_results(["chat"]))
    snaps = run(api, [workload("chat")], replicas={"llm/chat": counts})
    assert snaps["llm/chat"].replicas == counts


def test_the_number_of_queries_does_not_grow_with_the_workloads():
    def count(n: int) -> int:
        names = [f"w{i}" for i in range(n)]
        api = FakePrometheus(results=vllm_results(names))
        snaps = run(api, [workload(name) for name in names])
        assert len(snaps) == n and not any(s.stale for s in snaps.values())
        return len(api.calls)

    assert count(1) == count(50) == len(VLLM)


def test_a_second_engine_adds_one_query_set_not_one_per_workload():
    tgi = build_queries(ENGINES["tgi"])
    api = FakePrometheus(results=vllm_results(["a", "b"]))
    run(api, [workload("a"), workload("b"), workload("t1", "tgi"), workload("t2", "tgi")])
    assert len(api.calls) == len(VLLM) + len(tgi)


def test_rows_of_unknown_workloads_and_other_namespaces_are_ignored():
    results = vllm_results(["chat"])
    results[VLLM["request_rate"]] += [
        row("not-configured", 99.0),
        row("chat", 77.0, namespace="other"),
        Sample({"workload": "chat"}, NOW, 55.0),  # no namespace label
    ]
    snaps = run(FakePrometheus(results=results), [workload("chat")])
    assert list(snaps) == ["llm/chat"]
    assert snaps["llm/chat"].request_rate == 10.0


def test_nan_becomes_none_and_is_not_stale_unless_core():
    results = vllm_results(["idle"])
    for field in ("ttft_p90_s", "e2e_p95_s", "mean_prompt_tokens"):
        results[VLLM[field]] = [row("idle", math.nan)]
    results[VLLM["per_replica_kv_usage"]] = [row("idle", math.nan, pod="a")]
    snap = run(FakePrometheus(results=results), [workload("idle")])["llm/idle"]
    assert snap.ttft_p90_s is None and snap.e2e_p95_s is None and snap.mean_prompt_tokens is None
    assert snap.per_replica_kv_usage == ()
    assert snap.request_rate == 10.0
    assert not snap.stale


def test_a_nan_core_signal_makes_the_snapshot_stale():
    results = vllm_results(["chat"])
    results[VLLM["request_rate"]] = [row("chat", math.nan)]
    snap = run(FakePrometheus(results=results), [workload("chat")])["llm/chat"]
    assert snap.request_rate is None and snap.stale


def test_old_samples_make_the_snapshot_stale_and_report_their_age():
    api = FakePrometheus(results=vllm_results(["chat"], ts=NOW - 120.0))
    snap = run(api, [workload("chat")], staleness_s=45.0)["llm/chat"]
    assert snap.stale and snap.data_age_s == 120.0
    assert snap.request_rate == 10.0  # the old value is shown, flagged stale, never dropped


def test_samples_within_the_staleness_bound_are_fresh():
    api = FakePrometheus(results=vllm_results(["chat"], ts=NOW - 30.0))
    snap = run(api, [workload("chat")], staleness_s=45.0)["llm/chat"]
    assert not snap.stale and snap.data_age_s == 30.0


def test_a_workload_without_any_data_is_stale_with_infinite_age():
    api = FakePrometheus(results=vllm_results(["chat"]))
    snaps = run(api, [workload("chat"), workload("new")])
    new = snaps["llm/new"]
    assert new.stale and new.data_age_s == math.inf
    assert new.request_rate is None and new.per_replica_waiting == ()
    assert not snaps["llm/chat"].stale


@pytest.mark.parametrize(
    "error",
    [PrometheusUnavailable("down", status=503), PrometheusQueryError("parse error", status=400)],
)
def test_a_failing_core_query_leaves_its_field_empty_and_the_snapshot_stale(error):
    api = FakePrometheus(
        results=vllm_results(["chat", "code"]), errors={VLLM["request_rate"]: error}
    )
    snaps = run(api, [workload("chat"), workload("code")])
    for snap in snaps.values():
        assert snap.stale and snap.request_rate is None
        assert snap.running is not None  # other queries still answered
    assert len(api.calls) == len(VLLM)  # the failure did not stop the tick


def test_a_failing_non_core_query_only_empties_its_field():
    api = FakePrometheus(
        results=vllm_results(["chat"]),
        errors={VLLM["ttft_p90_s"]: PrometheusUnavailable("timeout")},
    )
    snap = run(api, [workload("chat")])["llm/chat"]
    assert snap.ttft_p90_s is None and snap.request_rate == 10.0 and not snap.stale


def test_an_unreachable_prometheus_is_asked_once_per_tick_not_once_per_query():
    errors = {q: PrometheusUnreachable("connection refused") for q in VLLM.values()}
    api = FakePrometheus(errors=errors)
    snap = run(api, [workload("chat")])["llm/chat"]
    assert snap.stale and snap.request_rate is None
    assert len(api.calls) == 1


def test_prometheus_down_for_every_query_gives_stale_empty_snapshots():
    errors = {q: PrometheusUnavailable("connection refused") for q in VLLM.values()}
    snaps = run(FakePrometheus(errors=errors), [workload("chat")])
    snap = snaps["llm/chat"]
    assert snap.stale and snap.data_age_s == math.inf and snap.request_rate is None


def test_an_engine_without_a_profile_is_named():
    only_tgi = {"tgi": ENGINES["tgi"]}
    with pytest.raises(UnknownNameError, match="unknown engine 'vllm'; known: tgi"):
        collect(FakePrometheus(), [workload("chat")], now=NOW, staleness_s=45.0, engines=only_tgi)


def test_the_fake_answers_range_queries_and_errors_from_data():
    series = RangeSeries({"workload": "w"}, np.array([1.0]), np.array([2.0]))
    api = FakePrometheus(
        range_results={"r": [series]}, errors={"bad": PrometheusQueryError("parse error")}
    )
    assert api.query_range("r", 0.0, 1.0, 1.0) == [series]
    assert api.query("unknown") == []
    with pytest.raises(PrometheusQueryError):
        api.query_range("bad", 0.0, 1.0, 1.0)
    assert api.calls == ["r", "unknown", "bad"]


def _bucket_rows(name: str, pairs: list[tuple[str, float]]) -> list[Sample]:
    return [row(name, value, le=le) for le, value in pairs]


def test_histogram_buckets_are_filed_per_workload_in_le_order():
    """TTFT, prompt-size and per-request TPOT buckets reach the snapshot as ``(le, rate)``
    pairs, ascending with ``+Inf`` last, whatever order the rows came in: the observed SLO
    attainment reads them (autoscaler/core/attainment.py)."""
    results = vllm_results(["chat"])
    results[VLLM["ttft_buckets"]] = _bucket_rows(
        "chat", [("+Inf", 10.0), ("0.5", 6.0), ("1.0", 9.0), ("2.5", 9.5)]
    )
    results[VLLM["prompt_buckets"]] = _bucket_rows("chat", [("1000", 7.0), ("+Inf", 10.0)])
    results[VLLM["tpot_buckets"]] = _bucket_rows("chat", [("0.1", 9.9), ("+Inf", 10.0)])
    snap = run(FakePrometheus(results=results), [workload("chat")])["llm/chat"]
    assert snap.ttft_buckets == ((0.5, 6.0), (1.0, 9.0), (2.5, 9.5), (math.inf, 10.0))
    assert snap.prompt_buckets == ((1000.0, 7.0), (math.inf, 10.0))
    assert snap.tpot_buckets == ((0.1, 9.9), (math.inf, 10.0))


@pytest.mark.parametrize(
    "pairs, why",
    [
        ([("0.5", 6.0), ("1.0", 9.0)], "no +Inf bucket"),
        ([("0.5", 6.0), ("1.0", 4.0), ("+Inf", 10.0)], "decreasing"),
        ([("0.5", 6.0), ("0.5", 7.0), ("+Inf", 10.0)], "le twice"),
        ([("0.5", -1.0), ("+Inf", 10.0)], "a negative rate leaves a hole"),
        ([("fast", 1.0), ("+Inf", 10.0)], "garbage le"),
    ],
)
def test_a_broken_histogram_is_not_observed(pairs, why):
    """A histogram that is not a whole cumulative one is left out (the learner then falls back
    to p90 ratios), never filed in part; the rest of the snapshot is unaffected."""
    results = vllm_results(["chat"])
    results[VLLM["ttft_buckets"]] = _bucket_rows("chat", pairs)
    snap = run(FakePrometheus(results=results), [workload("chat")])["llm/chat"]
    assert snap.ttft_buckets == (), why
    assert not snap.stale and snap.request_rate == 10.0


def test_gpu_memory_from_dcgm_fills_the_snapshot_and_an_impossible_share_is_rejected():
    from autoscaler.engines.promql import gpu_memory_queries

    gpu = {q.field: q.promql for q in gpu_memory_queries(ENGINES["vllm"], ENGINES["dcgm"])}
    results = vllm_results(["chat", "code"])
    results[gpu["gpu_memory_usage"]] = [row("chat", 0.5), row("code", 1.5)]
    results[gpu["gpu_memory_usage_max"]] = [row("chat", 0.75)]
    results[gpu["per_replica_gpu_memory_usage"]] = [
        row("chat", 0.75, pod="b"),
        row("chat", 0.25, pod="a"),
    ]
    api = FakePrometheus(results=results)
    snaps = run(api, [workload("chat"), workload("code")], gpu_memory=ENGINES["dcgm"])
    chat, code = snaps["llm/chat"], snaps["llm/code"]
    assert (chat.gpu_memory_usage, chat.gpu_memory_usage_max) == (0.5, 0.75)
    assert chat.per_replica_gpu_memory_usage == (0.25, 0.75)  # by pod name
    assert code.gpu_memory_usage is None and not code.stale  # not a core signal
    assert any(r.startswith("gpu_memory_usage=1.5: above 1") for r in code.rejected)
    assert len(api.calls) == len(VLLM) + 3


def test_without_dcgm_rows_the_gpu_memory_fields_stay_empty_and_nothing_is_stale():
    snaps = run(FakePrometheus(results=vllm_results(["chat"])), [workload("chat")],
                gpu_memory=ENGINES["dcgm"])  # fmt: skip
    snap = snaps["llm/chat"]
    assert snap.gpu_memory_usage is None and snap.per_replica_gpu_memory_usage == ()
    assert not snap.stale


def _histogram_as_it_was(rows: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """``collection._histogram`` before its fast paths (the reference it must agree with)."""
    if any(math.isnan(le) for le, _ in rows):
        return ()
    ordered = sorted(rows)
    les = [le for le, _ in ordered]
    if not ordered or not math.isinf(les[-1]) or len(set(les)) != len(les):
        return ()
    values = [v for _, v in ordered]
    if any(b < a - 1e-9 * max(abs(a), 1.0) for a, b in zip(values, values[1:], strict=False)):
        return ()
    return tuple(ordered)


_BOUND = st.one_of(
    st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.5, math.inf, math.nan]),
    st.floats(min_value=0.0, max_value=1e6),
)


@given(
    st.lists(
        st.one_of(
            st.tuples(_BOUND, st.floats(min_value=0.0, max_value=100.0)),
            st.just((math.nan, math.nan)),  # a rejected or unreadable row
        ),
        max_size=12,
    ),
    st.booleans(),
)
def test_histogram_assembly_agrees_with_the_plain_reading(rows, cumulative):
    """The bucket rows' checks (fast paths for the common case) decide exactly as the plain
    reading does, on cumulative and broken histograms alike."""
    from autoscaler.live.collection import _histogram

    if cumulative:  # make most of them whole cumulative histograms
        les = sorted({le for le, _ in rows if not math.isnan(le)} | {math.inf})
        # every other bucket a hair below the one before: decreasing, within the tolerance
        rows = [(le, float(i // 2) - (1e-10 if i % 2 else 0.0)) for i, le in enumerate(les)]
    assert _histogram(list(rows)) == _histogram_as_it_was(list(rows))
