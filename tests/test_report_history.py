"""Where a report's history comes from: trace files, and a Prometheus range (data fake here;
tests/test_report_cli.py serves the same data over real HTTP)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from autoscaler.clients.fake_prometheus import FakePrometheus
from autoscaler.clients.prometheus import PrometheusUnavailable, RangeSeries
from autoscaler.core.slo import SloSpec
from autoscaler.engines.promql import build_queries
from autoscaler.engines.registry import ENGINES
from autoscaler.errors import InputError, UnknownNameError
from autoscaler.live.collection import collect_history
from autoscaler.offline.report import history
from autoscaler.offline.series import trace_series
from autoscaler.perf.profiles import get_profile
from autoscaler.simulation.oracle import work_weights
from autoscaler.traces.readers import read_trace
from autoscaler.traces.servegen import read_rate_windows

START = 1_700_000_040.0  # a whole minute
STEP = 60.0
WEIGHTS = work_weights(get_profile(), SloSpec())
VLLM = {q.field: q.promql for q in build_queries(ENGINES["vllm"])}


def rate_of(i: int) -> float:
    """Requests per second at step ``i``: a slow wave between 2 and 6."""
    return 4.0 + 2.0 * math.sin(i / 9.0)


def canned_history(
    workloads: dict[str, float], n: int = 90, start: float = START, step: float = STEP
) -> dict[str, list[RangeSeries]]:
    """Range results of the vLLM queries: workload ``ns/name`` -> its rate multiplier.

    Each request has 1,000 prompt and 200 output tokens; the queue neither grows nor drains.
    """
    t = start + step * np.arange(n, dtype=np.float64)
    out: dict[str, list[RangeSeries]] = {promql: [] for promql in VLLM.values()}
    for key, k in workloads.items():
        ns, name = key.split("/")
        labels = {"namespace": ns, "workload": name}
        r = k * np.array([rate_of(i) for i in range(n)], dtype=np.float64)
        values: np.ndarray
        for field, values in {
            "request_rate": r,
            "prompt_tokens_rate": 1000.0 * r,
            "generation_tokens_rate": 200.0 * r,
            "waiting_growth_rate": np.zeros(n),
            "waiting": np.zeros(n),
            "ttft_p90_s": np.full(n, 0.3),
        }.items():
            out[VLLM[field]].append(RangeSeries(labels, t, values))
        for pod in ("a", "b"):
            pod_labels = {**labels, "pod": f"{name}-{pod}"}
            out[VLLM["per_replica_running"]].append(RangeSeries(pod_labels, t, r))
    return out


def expected_work(n: int = 90, k: float = 1.0) -> np.ndarray:
    r = k * np.array([rate_of(i) for i in range(n)])
    return r * 1000.0 * WEIGHTS[0] + r * 200.0 * WEIGHTS[1]


def read(
    api: FakePrometheus, workload: str = "llm/chat", n: int = 90, **kw: Any
) -> history.History:
    kw.setdefault("start", START)
    kw.setdefault("end", START + STEP * (n - 1))
    kw.setdefault("step", STEP)
    return history.from_prometheus(
        api,
        history.workload_config(workload),
        profile=ENGINES["vllm"],
        weights=WEIGHTS,
        collect=collect_history,
        url="http://prom:9090",
        **kw,
    )


# -- Prometheus ----------------------------------------------------------------------------


def test_the_demand_is_token_work_as_the_policy_counts_it():
    api = FakePrometheus(range_results=canned_history({"llm/chat": 1.0, "llm/code": 3.0}))
    h = read(api)
    assert h.workload == "llm/chat" and h.mode == "fluid" and h.interval_s == STEP
    np.testing.assert_allclose(h.demand, expected_work(), rtol=1e-9)
    assert h.windows is not None and h.windows.window_s == STEP
    np.testing.assert_allclose(h.windows.rate_rps, [rate_of(i) for i in range(90)])
    assert h.start_unix == START
    assert h.source["start"] == "2023-11-14T22:14:00Z"
    code = read(api, workload="llm/code")
    np.testing.assert_allclose(code.demand, expected_work(k=3.0), rtol=1e-9)


def test_stale_steps_are_gaps_and_the_edges_are_trimmed():
    canned = canned_history({"llm/chat": 1.0}, n=80)
    for series in canned[VLLM["waiting_growth_rate"]]:
        values = series.values.copy()
        values[[0, 1, 40, 79]] = np.nan  # a core signal missing: stale
        canned[VLLM["waiting_growth_rate"]] = [
            RangeSeries(series.labels, series.timestamps, values)
        ]
    h = read(FakePrometheus(range_results=canned), n=80)
    assert h.demand.size == 77  # steps 2 .. 78
    assert math.isnan(h.demand[38]) and np.isfinite(np.delete(h.demand, 38)).all()
    assert h.start_unix == START + 2 * STEP
    assert h.source["missing_steps"] == 1


def test_an_empty_range_says_so():
    with pytest.raises(InputError) as err:
        read(FakePrometheus())
    message = str(err.value)
    assert "has no vllm request-rate series between 2023-11-14T22:14:00Z and" in message
    assert "the range is empty" in message and "\n" not in message


def test_an_unknown_workload_lists_the_ones_prometheus_has():
    api = FakePrometheus(range_results=canned_history({"llm/code": 1.0, "prod/chat": 1.0}))
    with pytest.raises(
        InputError, match=r"unknown workload llm/chat: .* only for llm/code, prod/chat"
    ):
        read(api)


def test_prometheus_being_down_is_not_called_an_empty_range():
    api = FakePrometheus(errors={q: PrometheusUnavailable("refused") for q in VLLM.values()})
    with pytest.raises(PrometheusUnavailable, match="refused"):
        read(api)
    assert len(api.calls) == 1  # the first query tells, before the batch would log each failure


def test_series_without_a_usable_step_are_not_a_history():
    canned = canned_history({"llm/chat": 1.0})
    canned[VLLM["waiting_growth_rate"]] = []  # a core signal never present: every step stale
    with pytest.raises(InputError, match="llm/chat has vllm series .* but no step with every"):
        read(FakePrometheus(range_results=canned))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"end": START - 60}, "must be after --start"),
        ({"step": 90.0}, "whole number of minutes"),
        ({"step": 60.0, "end": START + 60 * 20_000}, "Prometheus answers at most 11000"),
    ],
)
def test_bad_ranges_are_refused_before_any_query(kw, message):
    api = FakePrometheus()
    with pytest.raises(InputError, match=message):
        read(api, **kw)
    assert api.calls == []


def test_the_default_step_is_a_whole_minute_under_the_point_limit():
    assert history.default_step(0.0, 3600.0) == 60.0
    fourteen_days = 14 * 86_400.0
    step = history.default_step(0.0, fourteen_days)
    assert step % 60 == 0 and fourteen_days / step + 1 <= history.MAX_POINTS_PER_SERIES
    assert fourteen_days / (step - 60) + 1 > history.MAX_POINTS_PER_SERIES


# -- flags ---------------------------------------------------------------------------------


def test_times_in_every_accepted_form():
    now = 1_700_000_000.0
    assert history.parse_time("now", now=now) == now
    assert history.parse_time("now-6h", now=now) == now - 6 * 3600
    assert history.parse_time(" now - 14d ", now=now) == now - 14 * 86_400
    assert history.parse_time("1700000123.5", now=now) == 1_700_000_123.5
    when = datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()
    assert history.parse_time("2024-05-01T12:00:00Z", now=now) == when
    assert history.parse_time("2024-05-01T12:00:00", now=now) == when
    assert history.parse_time("2024-05-01T14:00:00+02:00", now=now) == when


@pytest.mark.parametrize("text", ["yesterday", "now-6 hours", "nan", "2024-13-01"])
def test_bad_times_are_named(text):
    with pytest.raises(InputError, match=repr(text).replace("'", ".")):
        history.parse_time(text, now=0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chat", "NAMESPACE/NAME"),
        ("a/b/c", "NAMESPACE/NAME"),
        ("Prod/chat", "--workload: namespace: 'Prod' is not a Kubernetes namespace"),
        ("llm/Chat_1", "--workload: name: 'Chat_1' is not a Kubernetes object name"),
    ],
)
def test_bad_workload_names_are_named(text, message):
    with pytest.raises(InputError, match=message):
        history.workload_config(text)


def test_an_unknown_engine_is_named():
    with pytest.raises(InputError, match="unknown engine 'vllm2'"):
        history.workload_config("llm/chat", "vllm2")


# -- trace files ---------------------------------------------------------------------------


def test_a_request_trace_is_kept_whole_with_its_token_work_series(shared_file):
    path = shared_file("traces/azure2023_conv.csv")
    h = history.from_trace(path, weights=WEIGHTS, workload="llm/chat")
    trace = read_trace(path)
    assert h.mode == "requests" and h.trace is not None and h.trace.requests == trace.requests
    assert h.interval_s == 15.0
    np.testing.assert_array_equal(
        h.demand, trace_series(trace, interval_s=15.0, kind="token_work", weights=WEIGHTS)
    )
    assert h.source == {
        "kind": "trace",
        "path": str(path),
        "format": "azure",
        "requests": trace.requests,
    }


def test_rate_scale_is_applied_to_the_history_once(shared_file):
    path = shared_file("traces/azure2023_conv.csv")
    base = history.from_trace(path, weights=WEIGHTS)
    double = history.from_trace(path, weights=WEIGHTS, rate_scale=2.0)
    assert double.trace is not None and base.trace is not None
    assert double.trace.requests == 2 * base.trace.requests
    assert np.nansum(double.demand) == pytest.approx(2 * np.nansum(base.demand), rel=0.01)
    assert double.source["rate_scale"] == 2.0


def test_a_servegen_model_is_its_rates_in_token_work(shared_file):
    path = shared_file("traces/servegen_aggregate_rate_10min.csv")
    h = history.from_trace(path, weights=WEIGHTS, servegen_model="m-large")
    windows = read_rate_windows(path, "m-large")
    assert h.mode == "fluid" and h.interval_s == 600.0 and h.demand.size == 2016
    np.testing.assert_allclose(
        h.demand, windows.rate_rps * history.mean_request_work(WEIGHTS), equal_nan=True
    )
    with pytest.raises(InputError, match="pick a model with --servegen-model .*m-large"):
        history.from_trace(path, weights=WEIGHTS)
    with pytest.raises(UnknownNameError, match="unknown servegen model 'm-huge'"):
        history.from_trace(path, weights=WEIGHTS, servegen_model="m-huge")


def test_a_missing_trace_file_is_one_line(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: no such file"):
        history.from_trace(tmp_path / "nope.csv", weights=WEIGHTS)


def test_the_fluid_replay_uses_the_historys_own_lengths():
    h = read(FakePrometheus(range_results=canned_history({"llm/chat": 1.0})))
    assert h.lengths is not None
    prompt, output = h.lengths
    np.testing.assert_allclose(prompt, 1000.0)
    np.testing.assert_allclose(output, 200.0)
    from autoscaler.offline.report.replay import replay
    from autoscaler.simulation.runner import RunRequest

    out = replay(h, RunRequest(policies=[], profile=get_profile(), seeds=1))
    trace = out["trace"]
    assert isinstance(trace, dict) and trace["lengths"] == "history"
    assert trace["mean_prompt_tokens"] == pytest.approx(1000.0, rel=0.01)
    assert trace["mean_output_tokens"] == pytest.approx(200.0, rel=0.01)


def test_a_prometheus_history_summarises_the_replicas_gpu_memory():
    from autoscaler.engines.promql import gpu_memory_queries
    from autoscaler.offline.report.document import _gpu_memory_fact

    canned = canned_history({"llm/chat": 1.0})
    gpu = {q.field: q.promql for q in gpu_memory_queries(ENGINES["vllm"], ENGINES["dcgm"])}
    t = START + STEP * np.arange(90, dtype=np.float64)
    labels = {"namespace": "llm", "workload": "chat"}
    peak = np.full(90, 0.9)
    peak[[10, 11]] = 0.97
    canned[gpu["gpu_memory_usage"]] = [RangeSeries(labels, t, np.full(90, 0.8))]
    canned[gpu["gpu_memory_usage_max"]] = [RangeSeries(labels, t, peak)]
    h = read(FakePrometheus(range_results=canned), gpu_memory=ENGINES["dcgm"])
    summary = h.source["gpu_memory"]
    assert summary == {"steps": 90, "mean": pytest.approx(0.8), "max": 0.97, "pressed_steps": 2,
                       "pressure": 0.95, "guard": False}  # fmt: skip
    fact = _gpu_memory_fact(h.source)
    assert fact is not None and fact.startswith("mean 80% of the framebuffer")
    assert "up to 97% (at or above 95% in 2 steps)" in fact and "KV gauge" in fact

    bare = read(FakePrometheus(range_results=canned_history({"llm/chat": 1.0})),
                gpu_memory=ENGINES["dcgm"])  # fmt: skip
    assert bare.source["gpu_memory"]["steps"] == 0
    assert "no dcgm-exporter data" in (_gpu_memory_fact(bare.source) or "")
    assert "gpu_memory" not in read(FakePrometheus(range_results=canned)).source
