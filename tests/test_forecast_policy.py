"""Our ``forecast`` policy and its first forecaster, on hand-built snapshots."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.policies.base import PolicyContext
from autoscaler.policies.forecast import DESIRED_METRIC, CapacityLearner, ForecastPolicy
from autoscaler.signals import ReplicaCounts, SignalSnapshot
from autoscaler.slo import SloSpec
from forecasting.holt import DampedHolt

CTX = PolicyContext(
    slo=SloSpec(), max_replicas=50, replica_token_capacity=1000.0, prefill_weight=1.0,
    decode_weight=5.0, default_lead_time_s=240.0,
)  # fmt: skip


def snap(t, *, ready=4, prompt_rate=2000.0, gen_rate=200.0, waiting=0.0, growth=0.0,
         ttft=0.3, tpot=0.05, queue=0.05, kv=0.3, stale=False, starting_ages=()):  # fmt: skip
    return SignalSnapshot(
        workload="ns/llm",
        timestamp=t,
        replicas=ReplicaCounts(
            spec=ready + len(starting_ages),
            ready=ready,
            starting=len(starting_ages),
            pending=0,
            terminating=0,
            starting_ages_s=tuple(starting_ages),
        ),  # fmt: skip
        stale=stale,
        request_rate=2.0,
        prompt_tokens_rate=prompt_rate,
        generation_tokens_rate=gen_rate,
        mean_prompt_tokens=1000.0,
        mean_output_tokens=100.0,
        p90_prompt_tokens=2000.0,
        waiting_growth_rate=growth,
        waiting=waiting,
        ttft_p90_s=ttft,
        tpot_p90_s=tpot,
        queue_time_p90_s=queue,
        kv_usage=kv,
    )


def test_steady_load_gives_load_over_capacity_and_publishes_replica_units():
    policy = ForecastPolicy(CTX)
    for k in range(20):
        rec = policy.recommend(snap(15.0 * k))
    # demand = 2000 + 5 * 200 = 3000 work/s, capacity 1000 -> 3 replicas
    assert rec.desired_replicas == 3
    assert rec.winner == "forecast"
    published = {m.name: m.value for m in rec.metrics}
    assert published[DESIRED_METRIC] == 3.0
    assert policy.hpa_spec().metrics[0].target_type == "AverageValue"


def test_rising_demand_scales_ahead_of_the_current_load():
    policy = ForecastPolicy(CTX)
    for k in range(20):
        rec = policy.recommend(snap(15.0 * k, prompt_rate=2000.0 + 300.0 * k, ready=8))
    current_need = (2000.0 + 300.0 * 19 + 1000.0) / 1000.0
    assert rec.desired_replicas is not None and rec.desired_replicas > current_need + 1


def test_stale_or_missing_data_holds():
    policy = ForecastPolicy(CTX)
    assert policy.recommend(snap(0.0, stale=True)).desired_replicas is None
    empty = SignalSnapshot(workload="ns/llm", timestamp=0.0,
                           replicas=ReplicaCounts(spec=3, ready=3, starting=0, pending=0,
                                                  terminating=0))  # fmt: skip
    rec = policy.recommend(empty)
    assert rec.desired_replicas is None and rec.metrics == ()


def test_latency_over_budget_wins_over_the_forecast():
    policy = ForecastPolicy(CTX)
    rec = policy.recommend(snap(0.0, ready=10, prompt_rate=1000.0, gen_rate=0.0, ttft=3.0))
    assert rec.winner == "latency"
    assert rec.desired_replicas == 15  # capped at 1.5x ready


def test_replicas_pending_past_the_timeout_are_replaced():
    policy = ForecastPolicy(CTX)
    base = policy.recommend(snap(0.0, starting_ages=(30.0,))).desired_replicas
    policy2 = ForecastPolicy(CTX)
    late = policy2.recommend(snap(0.0, starting_ages=(700.0,))).desired_replicas
    assert base is not None and late == base + 1


def test_capacity_learner_drops_on_violation_and_probes_up_only_when_comfortable():
    learner = CapacityLearner(seed=1000.0)
    assert learner.observe(800.0, 1.5) == 800.0 * 0.9
    assert learner.observe(800.0, 1.5) == 800.0 * 0.9  # the same overload does not compound
    before = learner.capacity_
    learner.observe(600.0, 0.8)  # inside budget but not far inside: hold
    assert learner.capacity_ == before
    learner.observe(600.0, 0.2)  # far inside budget at a real load: probe up a little
    assert before < learner.capacity_ <= before * 1.01
    learner.observe(100.0, 0.1)  # far below capacity: no evidence about the limit
    assert learner.capacity_ <= before * 1.01
    for _ in range(500):
        learner.observe(2000.0, 0.1)
    assert learner.capacity_ == 1500.0  # bounded at 1.5x the seed


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=0, max_size=40),
       st.integers(min_value=1, max_value=30))  # fmt: skip
def test_holt_quantiles_are_monotone_finite_and_non_negative(values, horizon):
    model = DampedHolt().fit(values)
    out = model.predict(horizon, [0.1, 0.5, 0.9, 0.99])
    assert out.shape == (horizon, 4)
    assert np.isfinite(out).all() and (out >= 0).all()
    assert (np.diff(out, axis=1) >= -1e-9).all()


def test_holt_update_equals_fit_on_the_whole_series():
    y = np.sin(np.arange(50) / 5.0) * 10 + 50
    a = DampedHolt().fit(y).predict(5, [0.5, 0.9])
    b = DampedHolt().fit(y[:30]).update(y[30:]).predict(5, [0.5, 0.9])
    assert np.allclose(a, b)


def test_holt_on_a_constant_series_predicts_the_constant():
    out = DampedHolt().fit([7.0] * 20).predict(3, [0.5])
    assert np.allclose(out, 7.0)
