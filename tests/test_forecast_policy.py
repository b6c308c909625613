"""Our ``forecast`` policy and its first forecaster, on hand-built snapshots."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.core.slo import SloSpec
from autoscaler.policies.base import PolicyContext
from autoscaler.policies.forecast import (
    DESIRED_METRIC,
    LOAD_METRIC,
    CapacityLearner,
    ForecastPolicy,
    RelativeBand,
    band_quantile_for,
)
from forecasting.holt import DampedHolt

CTX = PolicyContext(
    slo=SloSpec(), max_replicas=50, replica_token_capacity=1000.0, prefill_weight=1.0,
    decode_weight=5.0, default_lead_time_s=240.0,
)  # fmt: skip


def snap(t, *, ready=4, prompt_rate=2000.0, gen_rate=200.0, waiting=0.0, growth=0.0,
         ttft=0.3, tpot=0.05, queue=0.05, kv=0.3, stale=False, starting_ages=(),
         running=None, per_replica_waiting=()):  # fmt: skip
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
        running=running,
        per_replica_waiting=per_replica_waiting,
    )


def test_steady_load_gives_load_over_capacity_plus_headroom_and_publishes_replica_units():
    policy = ForecastPolicy(CTX)
    for k in range(20):
        rec = policy.recommend(snap(15.0 * k))
    # demand = 2000 + 5 * 200 = 3000 work/s; the plan keeps min_headroom (20%) below the learned
    # capacity (was: exactly 3 replicas at the seed, before the head-room and the probe existed)
    capacity = policy.capacity.capacity_
    assert 1000.0 <= capacity <= 1200.0  # comfortable latency at 750/replica: a bounded probe
    assert rec.desired_replicas == math.ceil(3000.0 * policy.min_headroom / capacity)
    assert rec.winner == "forecast"
    published = {m.name: m.value for m in rec.metrics}
    assert published[DESIRED_METRIC] == float(rec.desired_replicas)
    assert published[LOAD_METRIC] == pytest.approx(3000.0 / capacity)
    assert policy.hpa_spec().metrics[0].target_type == "AverageValue"


def test_rising_demand_scales_ahead_of_the_current_load():
    policy = ForecastPolicy(CTX)
    for k in range(20):
        rec = policy.recommend(snap(15.0 * k, prompt_rate=2000.0 + 300.0 * k, ready=8))
    current_need = (2000.0 + 300.0 * 19 + 1000.0) / 1000.0
    assert rec.desired_replicas is not None and rec.desired_replicas > current_need + 1


def test_a_step_up_is_planned_for_at_once_not_a_minute_later():
    policy = ForecastPolicy(CTX)
    for k in range(20):
        policy.recommend(snap(15.0 * k, ready=8))
    rec = policy.recommend(snap(300.0, ready=8, prompt_rate=5000.0))  # 3000 -> 6000 work/s
    capacity = policy.capacity.capacity_
    # the latest 1-minute rate counts at once; the smoothed series would still say 3750
    assert rec.desired_replicas is not None
    assert rec.desired_replicas >= math.ceil(6000.0 * policy.min_headroom / capacity)


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


def test_stuck_replicas_are_reported_but_never_add_to_the_desired_count():
    policy = ForecastPolicy(CTX)
    base = policy.recommend(snap(0.0, starting_ages=(30.0,)))
    late = ForecastPolicy(CTX).recommend(snap(0.0, starting_ages=(700.0, 900.0)))
    assert late.desired_replicas == base.desired_replicas
    assert "capacity unavailable: 2 replica(s) not ready after 600s" in late.candidates[0].detail
    assert "capacity unavailable" not in base.candidates[0].detail


def test_the_pending_timeout_comes_from_the_context():
    ctx = replace(CTX, pending_timeout_s=60.0)
    rec = ForecastPolicy(ctx).recommend(snap(0.0, starting_ages=(90.0,)))
    assert "1 replica(s) not ready after 60s" in rec.candidates[0].detail
    rec = ForecastPolicy(CTX).recommend(snap(0.0, starting_ages=(90.0,)))
    assert "capacity unavailable" not in rec.candidates[0].detail


def test_a_cluster_short_of_gpus_does_not_ratchet_the_fleet_up():
    """The live reproduction: 12 pods stuck Pending, load 0.6-0.9 replicas, an HPA that sets the
    fleet to the published desired count. Adding stuck pods to the desired count took it
    3 -> 20; now the fleet scales down to what the load needs and the stuck pods go first."""
    slots, tick = 3, 15.0  # the cluster fits three replicas; every other pod pends forever
    created = [-1200.0] * 3 + [-700.0 - i for i in range(12)]  # 3 ready, 12 stuck past 600 s
    policy = ForecastPolicy(CTX)
    desired_seen = []
    for i in range(120):  # 30 minutes
        t = i * tick
        ready = min(slots, len(created))
        starting = [t - c for c in created[ready:]]
        work = 600.0 + 300.0 * (i % 7) / 6  # 0.6-0.9 replicas of work at 1000 work/s each
        rec = policy.recommend(snap(t, ready=ready, prompt_rate=work, gen_rate=0.0,
                                    starting_ages=starting))  # fmt: skip
        assert rec.desired_replicas is not None
        desired_seen.append(rec.desired_replicas)
        if starting and any(a > CTX.pending_timeout_s for a in starting):
            assert "capacity unavailable" in rec.candidates[0].detail
        # the HPA: AverageValue 1 on llm_desired_replicas -> spec = desired; the ReplicaSet
        # removes the newest (unscheduled) pods first and adds new ones at the end
        if rec.desired_replicas < len(created):
            created = created[: rec.desired_replicas]
        else:
            created += [t] * (rec.desired_replicas - len(created))
    assert desired_seen[0] < 15, desired_seen[:5]  # a scale-down below the current count
    assert max(desired_seen) <= slots, desired_seen
    assert len(created) <= slots


def test_capacity_learner_drops_on_violation_without_compounding():
    learner = CapacityLearner(seed=1000.0)
    first = learner.observe(800.0, 1.5)
    # nothing within the target seen yet: the limit is below the load that broke, by at most 20%
    assert 0.8 * 780.0 <= first <= 800.0
    assert learner.observe(800.0, 1.5) == first  # the same overload does not compound
    assert learner.observe(100.0, 3.0) == first  # far below capacity: no evidence about it


def test_capacity_learner_probes_up_only_when_comfortable_near_capacity():
    learner = CapacityLearner(seed=1000.0)
    learner.observe(700.0, 0.65)  # inside the target but not comfortably: hold
    assert learner.capacity_ == 1000.0
    learner.observe(700.0, 0.4)  # comfortably inside at a real load: one small step up
    assert 1000.0 < learner.capacity_ <= 1000.0 * (1 + learner.probe_step)
    before = learner.capacity_
    learner.observe(300.0, 0.1)  # far below capacity: says nothing about the limit
    assert learner.capacity_ == before


def test_capacity_learner_never_trusts_beyond_what_was_observed():
    learner = CapacityLearner(seed=1000.0)
    for _ in range(2000):
        learner.observe(0.7 * learner.capacity_, 0.3)
    # every observation comfortable: the probe climbs, but only to 1.5x the largest load seen
    assert learner.limit_ == math.inf
    assert learner.capacity_ <= (1 + learner.trust_margin) * learner.trusted_ + 1e-6
    assert learner.trusted_ <= 0.7 * learner.capacity_ * 1.03


def test_capacity_learner_finds_where_latency_crosses_the_target_by_isotonic_fit():
    learner = CapacityLearner(seed=1000.0)
    rng = np.random.default_rng(3)
    loads = rng.uniform(500.0, 1500.0, 3000)
    # latency rises with load and crosses the 0.75 target at 1200/replica; noisy, as per tick
    for load in loads:
        learner.observe(float(load), 0.45 + 0.3 * (load - 500.0) / 700.0 + rng.normal(0, 0.03))
    assert learner.limit_ == pytest.approx(1200.0, rel=0.05)
    assert learner.capacity_ <= learner.limit_ + 1e-9


def test_one_slow_window_among_steady_ones_does_not_cut_the_capacity():
    learner = CapacityLearner(seed=1000.0)
    for load in (900.0, 950.0, 1000.0, 1050.0) * 3:  # within the target up to 1,050/replica
        learner.observe(load, 0.7)
    assert learner.capacity_ == 1000.0
    learner.observe(1000.0, 0.85)  # one burst: pooled with the others, still within the target
    assert learner.limit_ == math.inf and learner.capacity_ == 1000.0
    for _ in range(10):  # repeated: now the fit crosses the target, and the capacity drops
        learner.observe(1000.0, 0.95)
    assert learner.limit_ < 1000.0 and learner.capacity_ == learner.limit_


def test_capacity_learner_is_bounded_around_the_seed():
    learner = CapacityLearner(seed=1000.0, floor=0.5, ceiling=2.0)
    for _ in range(50):
        learner.observe(learner.capacity_, 2.0)
    assert learner.capacity_ == 500.0


def test_relative_band_scores_forecasts_at_their_horizon():
    band = RelativeBand(window=100, min_scored=3, prior=1.3)
    for _ in range(3):  # a history shorter than the horizon: its forecasts are not scored
        band.observe(100.0)
        band.forecast(4, 50.0)
    assert band.factor(0.9) == 1.3  # the prior, until enough forecasts were scored
    for _ in range(20):
        band.observe(100.0)
        band.forecast(4, 80.0)
    assert band.scored == 20 - 4  # every forecast made from a history as long as the horizon,
    # except the last four, still pending
    assert band.factor(0.5) == pytest.approx(100.0 / 80.0)


def test_relative_band_is_an_empirical_quantile_and_skips_censored_minutes():
    band = RelativeBand(window=1000, min_scored=1)
    actuals = [100.0] * 90 + [150.0] * 10
    for k in range(101):
        band.observe(actuals[k - 1] if k else 100.0)
        band.forecast(1, 100.0)
    assert band.factor(0.5) == pytest.approx(1.0)
    assert band.factor(0.95) == pytest.approx(1.5)
    scored = band.scored
    band.observe(1000.0, censored=True)  # an overloaded minute scores nothing
    band.forecast(1, 100.0, censored=True)  # and makes no forecast to score
    band.observe(100.0)
    assert band.scored == scored


def test_the_band_quantile_follows_the_attainment_target():
    assert band_quantile_for(0.9) == pytest.approx(0.5)
    assert band_quantile_for(0.99) == pytest.approx(0.75)
    assert band_quantile_for(0.999) == pytest.approx(0.875)
    assert band_quantile_for(1.0) == pytest.approx(0.99)  # bounded, never infinite
    assert band_quantile_for(0.5) == pytest.approx(0.5)
    loose = ForecastPolicy(CTX)
    strict = ForecastPolicy(replace(CTX, slo=SloSpec(attainment_target=0.999)))
    assert (loose.band_quantile, strict.band_quantile) == (0.75, 0.875)
    # the same history of noisy demand: the stricter target plans for more (the band scored
    # against the point alone; the HPA's hold would cover most of this noise: next test)
    minutes = 2000.0 * np.random.default_rng(3).lognormal(0.0, 0.5, size=60)
    last = {}
    for policy in (loose, strict):
        policy.band = RelativeBand(hold_ticks=0)
        for k in range(240):  # a level that changes every minute, by ~50%
            rec = policy.recommend(snap(15.0 * k, prompt_rate=float(minutes[k // 4])))
        last[policy.band_quantile] = rec.candidates[0].replicas
        assert "band x" in rec.candidates[0].detail
    assert last[0.875] > 1.1 * last[0.75]


def test_a_burst_within_the_hpas_hold_does_not_widen_the_band():
    """Demand back at a level seen within the scale-down window finds the fleet still sized for
    it: the band scores against the held level, so recurring bursts do not widen it."""
    burst = [4000.0] * 8 + [1000.0] * 8  # 2 min on, 2 min off: within the 5-minute hold
    held, point_only = RelativeBand(hold_ticks=20), RelativeBand(hold_ticks=0)
    for band in (held, point_only):
        for k in range(160):
            actual = burst[k % len(burst)]
            band.observe(actual)
            band.forecast(8, actual)  # a last-value forecast, two minutes ahead
    assert point_only.factor(0.75) > 3.0  # an off tick's forecast, scored in the burst
    assert held.factor(0.75) <= 1.0 + 1e-9  # the burst was held: no shortfall
    # a new high is a shortfall whatever the hold
    held.observe(9000.0)
    for _ in range(4):
        held.forecast(4, 9000.0)
        held.observe(20000.0)
    assert max(held._log_ratios) > 0.5


def test_the_hold_is_the_shipped_scale_down_window():
    from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR
    from autoscaler.policies.forecast.decision import held_ticks

    assert held_ticks(15.0) == SHIPPED_BEHAVIOR.scale_down.stabilization_window_s / 15.0 == 20
    assert ForecastPolicy(CTX).band.hold_ticks == 20


def test_an_overload_teaches_no_capacity():
    policy = ForecastPolicy(CTX)
    for k in range(12):
        policy.recommend(snap(15.0 * k, ttft=30.0, queue=25.0, tpot=0.5))
    # latency far over budget at a steady load: the latency guard acts, the learner waits for
    # a minute without overload (the demand and latency of an overload are censored)
    assert policy.capacity.capacity_ == CTX.replica_token_capacity


def test_running_requests_growing_count_as_demand():
    grows, flat = ForecastPolicy(CTX), ForecastPolicy(CTX)
    for k in range(5):
        a = grows.recommend(snap(15.0 * k, running=10.0 + 20.0 * k))
        b = flat.recommend(snap(15.0 * k, running=10.0))
    load = {m.name: m.value for m in a.metrics}[LOAD_METRIC]
    base = {m.name: m.value for m in b.metrics}[LOAD_METRIC]
    # 80 more running over 60 s, half of 100 output tokens x decode weight 5 still to come each
    assert load * CTX.replica_token_capacity == pytest.approx(
        base * CTX.replica_token_capacity + 80.0 / 60.0 * 0.5 * 100.0 * 5.0
    )


def test_only_queues_that_outlast_the_lead_time_take_replicas_away():
    policy = ForecastPolicy(CTX)
    # mean work 1000 + 5 * 100 = 1500 per request; capacity 1000/s; lead 240 s
    short = snap(0.0, waiting=100.0)  # 25 per replica: 37.5 s of work each, drained in time
    assert policy._backlog_replicas(short, 1500.0, 1000.0, 240.0) == 0.0
    long = snap(0.0, waiting=4 * 400.0)  # 400 per replica: 600 s each, 360 s past the lead
    assert policy._backlog_replicas(long, 1500.0, 1000.0, 240.0) == pytest.approx(4.0)
    one = snap(0.0, waiting=400.0, per_replica_waiting=(400.0, 0.0, 0.0, 0.0))
    assert policy._backlog_replicas(one, 1500.0, 1000.0, 240.0) == pytest.approx(1.0)


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


def _with_histograms(s: SignalSnapshot, late: float) -> SignalSnapshot:
    """``late`` of the window's requests past the TPOT budget; TTFTs well within theirs."""
    inf = math.inf
    return replace(
        s,
        ttft_buckets=((0.5, 20.0), (inf, 20.0)),
        prompt_buckets=((1000.0, 20.0), (inf, 20.0)),
        tpot_buckets=((0.1, 20.0 * (1.0 - late)), (inf, 20.0)),
    )


def test_observed_misses_teach_a_smaller_capacity_than_the_p90s_alone():
    """Same loads and p90s (TPOT p90 at half its budget); one fleet's histograms show 3% of the
    requests past the TPOT budget, the other's none. The policy learns from the histograms when
    it has them and says so."""
    missing = ForecastPolicy(CTX)
    healthy = ForecastPolicy(CTX)
    for k in range(40):
        rec_missing = missing.recommend(_with_histograms(snap(15.0 * k), 0.03))
        rec_healthy = healthy.recommend(_with_histograms(snap(15.0 * k), 0.0))
    assert missing.capacity.capacity_ < 750.0 < healthy.capacity.capacity_
    assert (rec_missing.desired_replicas or 0) > (rec_healthy.desired_replicas or 0)
    assert "(attainment)" in rec_missing.candidates[0].detail
    p90_only = ForecastPolicy(CTX)
    for k in range(40):
        rec = p90_only.recommend(snap(15.0 * k))
    assert "(p90 latency)" in rec.candidates[0].detail


def test_latency_from_a_queue_that_is_gone_adds_nothing():
    """The window's p90s still show requests that waited in a queue now empty: no latency
    candidate then. With the queue still there, or a slow prefill and no queue, there is."""
    gone = ForecastPolicy(CTX).recommend(
        snap(0.0, ready=10, prompt_rate=1000.0, gen_rate=0.0, ttft=3.0, queue=2.5, waiting=0.0)
    )
    assert "latency" not in {c.reason for c in gone.candidates}
    queued = ForecastPolicy(CTX).recommend(
        snap(0.0, ready=10, prompt_rate=1000.0, gen_rate=0.0, ttft=3.0, queue=2.5, waiting=40.0)
    )
    assert queued.winner == "latency"


def test_latency_does_not_scale_the_ready_count_past_replicas_already_on_the_way():
    """Six replicas starting for ten ready: a latency of 3x budget asks for no more than the 16
    already ordered (scaling the ready count again each tick while they start compounds)."""
    rec = ForecastPolicy(CTX).recommend(
        snap(0.0, ready=10, prompt_rate=1000.0, gen_rate=0.0, ttft=3.0, waiting=40.0,
             starting_ages=(30.0,) * 6)
    )  # fmt: skip
    latency = next(c for c in rec.candidates if c.reason == "latency")
    assert latency.replicas == 15.0  # min(1.5 x 10 ready, 16 ordered)
    rec = ForecastPolicy(CTX).recommend(
        snap(0.0, ready=10, prompt_rate=1000.0, gen_rate=0.0, ttft=3.0, waiting=40.0,
             starting_ages=(30.0,) * 2)
    )  # fmt: skip
    latency = next(c for c in rec.candidates if c.reason == "latency")
    assert latency.replicas == 12.0


def _memory_snap(t, usage, waiting, per_replica=(), growth=0.5):
    return replace(
        snap(t, waiting=waiting, kv=None, growth=growth),
        gpu_memory_usage=usage,
        gpu_memory_usage_max=usage,
        per_replica_gpu_memory_usage=per_replica,
    )


def test_gpu_memory_pressure_with_a_building_queue_adds_a_saturation_step_where_live():
    ctx = replace(CTX, gpu_memory_guard=True)
    rec = ForecastPolicy(ctx).recommend(_memory_snap(0.0, 0.97, 6.0, (0.97, 0.96, 0.5, 0.4)))
    sat = [c for c in rec.candidates if c.reason == "saturation"]
    assert len(sat) == 1 and sat[0].replicas == 5.0  # ready 4 + max(1, 10%)
    pressed = "GPU memory at 97% on the fullest replica (2 replica(s) at or above 95%)"
    assert pressed in sat[0].detail
    assert "6 request(s) waiting, the queue growing" in sat[0].detail
    assert rec.desired_replicas >= 5 and rec.winner == "saturation"


@pytest.mark.parametrize(
    ("guard", "usage", "waiting", "growth"),
    [
        (False, 0.99, 6.0, 0.5),  # vLLM/SGLang: GPU memory is the KV pool, the KV gauge guards it
        (True, 0.99, 0.0, 0.0),  # a full GPU with an empty queue serves what it is sent
        (True, 0.99, 3.0, 0.5),  # under one waiting per replica: the next prefill step's
        (True, 0.99, 6.0, -0.5),  # a draining queue
        (True, 0.99, 6.0, 0.0),  # a steady queue: the queue guard's business
        (True, 0.94, 6.0, 0.5),  # below the pressure share
        (True, None, 6.0, 0.5),  # no DCGM data
    ],
)
def test_the_memory_guard_stays_idle(guard, usage, waiting, growth):
    ctx = replace(CTX, gpu_memory_guard=guard)
    rec = ForecastPolicy(ctx).recommend(_memory_snap(0.0, usage, waiting, growth=growth))
    assert all("GPU memory" not in c.detail for c in rec.candidates)


def test_a_live_memory_guard_without_dcgm_data_is_named_in_the_fallbacks():
    from autoscaler.policies.forecast import NO_GPU_MEMORY

    live = ForecastPolicy(replace(CTX, gpu_memory_guard=True)).recommend(snap(0.0))
    assert NO_GPU_MEMORY in live.fallbacks
    with_data = ForecastPolicy(replace(CTX, gpu_memory_guard=True))
    assert NO_GPU_MEMORY not in with_data.recommend(_memory_snap(0.0, 0.5, 0.0)).fallbacks
    assert NO_GPU_MEMORY not in ForecastPolicy(CTX).recommend(snap(0.0)).fallbacks


def _triton_snap(t, queue_mean, prompt_rate=2000.0):
    """A Triton/TRT-LLM snapshot: no histograms, the mean queue time of its duration counters."""
    return replace(snap(t, ttft=None, tpot=None, queue=None, prompt_rate=prompt_rate),
                   queue_time_mean_s=queue_mean)  # fmt: skip


def test_without_histograms_the_mean_queue_time_drives_the_latency_guard():
    rec = ForecastPolicy(CTX).recommend(_triton_snap(0.0, queue_mean=2.0))  # 2x a 1 s budget
    latency = [c for c in rec.candidates if c.reason == "latency"]
    assert latency and latency[0].replicas == 4 * 1.5 and "2.00x budget" in latency[0].detail
    assert not any(c.reason == "latency" for c in
                   ForecastPolicy(CTX).recommend(_triton_snap(0.0, 0.2)).candidates)  # fmt: skip


@pytest.mark.parametrize(("queue_mean", "learns"), [(0.2, True), (None, False)])
def test_the_capacity_learner_learns_from_the_mean_queue_time_where_it_is_all_there_is(
    queue_mean, learns
):
    policy = ForecastPolicy(CTX)
    for i in range(40):  # steady fleet and load: observations count after two steady ticks
        policy.recommend(_triton_snap(15.0 * i, queue_mean))
    assert bool(policy.capacity.weight_.sum() > 0) is learns


def test_with_a_profile_the_capacity_follows_the_request_mix():
    from autoscaler.perf.capacity import mix_capacity
    from autoscaler.perf.profiles import get_profile

    profile = get_profile()
    ctx = replace(CTX, profile=profile, replica_token_capacity=6000.0)

    def steady(policy, mean_prompt, p90_prompt, mean_output, ticks=12):
        for k in range(ticks):
            s = replace(snap(15.0 * k, prompt_rate=60_000.0, gen_rate=1000.0),
                        mean_prompt_tokens=mean_prompt, p90_prompt_tokens=p90_prompt,
                        mean_output_tokens=mean_output)  # fmt: skip
            rec = policy.recommend(s)
        return rec

    chat, long_prompts = (1154.0, 2525.0, 210.0), (16000.0, 31000.0, 300.0)
    plain = steady(ForecastPolicy(CTX), *long_prompts)
    at_chat = steady(ForecastPolicy(ctx), *chat)
    at_long = steady(ForecastPolicy(ctx), *long_prompts)
    # the same token work needs more replicas of long prompts, by the model's ratio
    expected = mix_capacity(profile, ctx.slo, *chat) / mix_capacity(profile, ctx.slo, *long_prompts)
    assert expected > 2.0
    ratio = at_long.candidates[0].replicas / at_chat.candidates[0].replicas
    assert ratio == pytest.approx(expected, rel=0.02)
    assert "mix x" in at_long.candidates[0].detail
    # without a profile nothing changes: the seed alone, no mix in the reason
    assert "mix x" not in plain.candidates[0].detail


def test_the_mix_scale_moves_slowly_and_holds_on_stale_data():
    from autoscaler.perf.profiles import get_profile

    policy = ForecastPolicy(replace(CTX, profile=get_profile()))
    policy.recommend(replace(snap(0.0), mean_prompt_tokens=1154.0, mean_output_tokens=210.0,
                             p90_prompt_tokens=2525.0))  # fmt: skip
    first = policy.mix.scale
    assert first is not None
    # one minute of a 16k-token mix moves the scale by a few percent, not all the way
    for k in range(1, 5):
        policy.recommend(replace(snap(15.0 * k), mean_prompt_tokens=16000.0,
                                 mean_output_tokens=300.0, p90_prompt_tokens=31000.0))  # fmt: skip
    moved = policy.mix.scale
    assert moved is not None and 0.8 * first < moved < first
    policy.recommend(snap(75.0, stale=True))  # stale data holds, the mix with it
    assert policy.mix.scale == moved
