"""The fluid simulator agrees with the request-level one on the shared hour-long traces.

Issue 4's acceptance: SLO attainment within 2 points and GPU-hours within 5%. The Azure
conversation trace is turned into what a Prometheus history holds: one rate per minute (the rate
of requests of the trace's mean token work, so each minute carries the trace's work) with that
minute's mean prompt and output lengths (its token rates over its request rate), and the trace's
(prompt, output) pairs as the length distribution. Both simulators then run the same policy
with the same fleet, lifecycle, SLO and replica cap, as ``runner.run_seed`` sets them up.

Measured when this test was written (rate-scale 20, seed 0; request-level -> fluid):

* oracle plan (instant start): 0.9890 -> 0.9853 (-0.4 pt), 175.7 -> 175.6 GPU-h (-0.1%)
* static peak plan: 0.9445 -> 0.9481 (+0.4 pt), 237.3 -> 237.3 GPU-h (0.0%)
* ``forecast`` (first version): 0.9249 -> 0.9257 (+0.1 pt), 282.4 -> 292.2 GPU-h (+3.5%); with
  the learned capacity limit: 0.9074 -> 0.9020 (-0.5 pt), 233.7 -> 244.3 GPU-h (+4.5%). The
  learner counts an observation only while the work in the system (queue *and* running batch)
  is steady: the fluid batch fills for a minute before its queue forms, and counting that
  minute taught the fluid run a limit 30% low (GPU-h +10.7%).
* every baseline (issue 17), before -> after the fluid snapshot counted KV usage as the held
  context (not the reserved one), the engines' waiting queues (Little's law), per-replica values
  of the replicas holding a backlog and each minute's own request mix (the rates come with the
  trace's per-minute mean lengths, as a Prometheus history's token rates give them); ``dynamo``
  with its ARIMA predictor from then on:

  - ``forecast``: -0.5 pt, +4.4% -> +0.1 pt, +3.3%
  - ``kpa``: +0.9 pt, -2.7% -> +1.3 pt, -2.2%
  - ``hpa-kv``: +1.8 pt, +8.0% -> +1.8 pt, -0.9%
  - ``static-peak``: +0.4 pt, 0.0% -> the same
  - ``dynamo``: +2.0 pt, -6.8% (constant predictor) -> +1.4 pt, -1.9% (+2.2 pt, -3.3% without
    the per-minute lengths: not reported on a trace without them)
  - ``apa``: +8.7 pt, +6.2% -> +5.3 pt, +0.1% (not reported in fluid mode)
  - ``hpa-queue@3``: -1.8 pt, -5.8% -> the same (not reported in fluid mode)

Baselines outside the band are not reported by the fluid runner
(:func:`autoscaler.simulation.fluid_runner.not_reported`, with the measured reason): the test
checks that every baseline is either within the band or marked. Known gaps: under a sudden
overload the waiting queue of a replica filling its batch forms 2-4 minutes later in the fluid
model (``hpa-queue``); deep, long overloads are reproduced only roughly (``apa``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from autoscaler.core.slo import SloSpec
from autoscaler.perf.profiles import get_profile
from autoscaler.policies.base import Policy, PolicyContext
from autoscaler.policies.registry import make_policy, policy_names
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.fluid import fluid_figures, simulate_fluid
from autoscaler.simulation.fluid_model import build_replica_model, length_sample
from autoscaler.simulation.fluid_runner import (
    NOT_REPORTED,
    NOT_REPORTED_WITHOUT_LENGTHS,
    not_reported,
    run_fluid,
)
from autoscaler.simulation.lifecycle import LifecycleConfig
from autoscaler.simulation.oracle import (
    INSTANT,
    PlanPolicy,
    oracle_plan,
    replica_capacity,
    seed_capacity,
    work_weights,
)
from autoscaler.simulation.results import run_figures
from autoscaler.simulation.runner import RunRequest
from autoscaler.traces.readers import read_trace
from autoscaler.traces.records import Trace
from autoscaler.traces.scaling import scale_rate
from autoscaler.traces.servegen import RateWindows

SLO_POINTS = 0.02
GPU_REL = 0.05


def per_minute_rates(trace: Trace, weights: tuple[float, float]) -> np.ndarray:
    """Requests/s per minute, counted in requests of the trace's mean token work."""
    minutes = max(1, math.ceil(trace.duration_s / 60.0))
    idx = np.minimum((trace.arrival_s // 60.0).astype(np.int64), minutes - 1)
    work = trace.prompt_tokens * weights[0] + np.maximum(trace.output_tokens, 1) * weights[1]
    per_minute = np.bincount(idx, weights=work, minlength=minutes)
    return np.asarray(per_minute / 60.0 / float(work.mean()), dtype=np.float64)


def per_minute_lengths(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """Mean prompt and output tokens of each minute's requests (NaN for an empty minute): what a
    Prometheus history's token rates over its request rate give."""
    minutes = max(1, math.ceil(trace.duration_s / 60.0))
    idx = np.minimum((trace.arrival_s // 60.0).astype(np.int64), minutes - 1)
    count = np.bincount(idx, minlength=minutes).astype(np.float64)
    prompt = np.bincount(idx, weights=trace.prompt_tokens, minlength=minutes)
    output = np.bincount(idx, weights=np.maximum(trace.output_tokens, 1), minlength=minutes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return prompt / count, output / count


_SETUP: dict[str, tuple[object, ...]] = {}


@pytest.fixture
def setup(shared_file):
    """Trace, profile, SLO, weights, oracle plan, replica cap, policy context and fluid replica
    model, as ``runner.run_seed`` would set them up (computed once per session)."""
    path = shared_file("traces/azure2023_conv.csv")
    key = str(path)
    if key not in _SETUP:
        trace = scale_rate(read_trace(path), 20.0, seed=0)
        profile, slo = get_profile(), SloSpec()
        weights = work_weights(profile, slo)
        capacity = replica_capacity(trace, profile, slo, weights, seed=0)
        plan = oracle_plan(trace, capacity, weights, profile.tp)
        peak = max(plan.replicas_per_minute)
        cap = max(2 * peak, peak + 4)
        ctx = PolicyContext(
            slo=slo,
            max_replicas=cap,
            tick_s=15.0,
            replica_token_capacity=seed_capacity(profile, slo),
            prefill_weight=weights[0],
            decode_weight=weights[1],
            gpus_per_replica=profile.tp,
            default_lead_time_s=240.0,
            peak_replicas=peak,
        )
        model = build_replica_model(
            profile, slo, *length_sample((trace.prompt_tokens, trace.output_tokens))
        )
        _SETUP[key] = (trace, profile, slo, weights, plan, cap, ctx, model)
    return _SETUP[key]


def _both(setup, make: object, lifecycle: LifecycleConfig):
    trace, profile, slo, weights, plan, cap, _, model = setup
    config = SimConfig(
        max_replicas=cap,
        start_replicas=plan.replicas_per_minute[0],
        lifecycle=lifecycle,
        work_weights=weights,
    )
    assert callable(make)
    ref = simulate(trace, make(), profile=profile, config=config)
    ref_f = run_figures(ref, slo, oracle_gpu_hours=plan.gpu_hours, work_bound_gpu_hours=0.0)
    out = simulate_fluid(
        per_minute_rates(trace, weights),
        60.0,
        make(),
        profile=profile,
        config=config,
        slo=slo,
        model=model,
        duration_s=trace.duration_s,
        window_lengths=per_minute_lengths(trace),
    )
    flu_f = fluid_figures(out, oracle_gpu_hours=plan.gpu_hours, work_bound_gpu_hours=0.0)
    return ref_f, flu_f


def _assert_agrees(ref, flu):
    assert flu["slo_attainment"] == pytest.approx(ref["slo_attainment"], abs=SLO_POINTS)
    assert flu["gpu_hours"] == pytest.approx(ref["gpu_hours"], rel=GPU_REL)
    assert flu["requests"] == pytest.approx(ref["requests"], rel=0.01)


@pytest.mark.slow
def test_oracle_plan_agrees(setup):
    plan = setup[4]

    def make() -> Policy:
        return PlanPolicy("oracle", plan.replicas_per_minute)

    ref, flu = _both(setup, make, INSTANT)
    _assert_agrees(ref, flu)


@pytest.mark.slow
def test_fixed_fleet_with_cold_starts_agrees(setup):
    plan = setup[4]
    peak = max(plan.replicas_per_minute)

    def make() -> Policy:
        return PlanPolicy("fixed", (peak,))

    ref, flu = _both(setup, make, LifecycleConfig())
    _assert_agrees(ref, flu)
    assert (flu["cold_starts"], flu["warm_starts"]) == (ref["cold_starts"], ref["warm_starts"])


AGREEING = [name for name in policy_names() if not_reported(name, has_lengths=True) is None]
"""``forecast`` and every baseline whose fluid figures are reported for a history with its own
per-window lengths (the rates of this test come with the trace's per-minute means)."""


def test_every_baseline_agrees_or_is_not_reported():
    assert set(AGREEING) | set(NOT_REPORTED) == set(policy_names())
    assert "forecast" in AGREEING and "dynamo" in AGREEING
    for name, reason in {**NOT_REPORTED, **NOT_REPORTED_WITHOUT_LENGTHS}.items():
        assert name in reason and "tests/test_fluid_agreement.py" in reason
    # without per-window lengths (ServeGen) dynamo is not reported either
    assert not_reported("dynamo@0.85", has_lengths=False) == NOT_REPORTED_WITHOUT_LENGTHS["dynamo"]
    assert not_reported("kpa", has_lengths=False) is None


def test_the_fluid_runner_marks_the_baselines_it_does_not_report():
    n = 30
    windows = RateWindows(
        path="test",
        category="test",
        model="m",
        window_start_s=np.arange(n) * 60.0,
        rate_rps=np.full(n, 2.0),
        active_clients=np.zeros(n, dtype=np.int64),
        top_client_rate_rps=np.full(n, np.nan),
        client_cv_mean=np.full(n, np.nan),
        window_s=60.0,
    )
    marked = [f"{name}@{value}" for name, value in (("hpa-queue", 3), ("apa", 0.5))]
    names = ["kpa", "dynamo", *marked]
    calls: list[tuple[str, float]] = []
    req = RunRequest(policies=names, profile=get_profile(), seeds=1)
    out = run_fluid(windows, req, lambda name, frac: calls.append((name, frac)))
    policies, skipped = out["policies"], out["not_reported"]
    assert isinstance(policies, dict) and isinstance(skipped, dict)
    assert "kpa" in policies and set(skipped) == {"dynamo", *marked}
    assert not set(skipped) & set(policies)
    assert skipped["hpa-queue@3"] == NOT_REPORTED["hpa-queue"]
    # every policy still reports its progress (the report's step count relies on it)
    assert {name for name, frac in calls if frac >= 1.0} >= set(names)
    # with the history's own lengths dynamo is run and reported
    lengths = (np.full(n, 2000.0), np.full(n, 150.0))
    out = run_fluid(windows, replace(req, policies=["dynamo"]), lengths=lengths)
    assert isinstance(out["policies"], dict) and "dynamo" in out["policies"]
    assert out["not_reported"] == {}


@pytest.mark.slow
@pytest.mark.parametrize("name", AGREEING)
def test_reactive_policies_agree(setup, name):
    ctx = setup[6]

    def make() -> Policy:
        return make_policy(name, ctx)

    ref, flu = _both(setup, make, LifecycleConfig())
    _assert_agrees(ref, flu)
