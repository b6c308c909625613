"""Baseline policies against hand-built snapshots: each decision checked against its algorithm."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.core.recommendation import Recommendation
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.core.slo import SloSpec
from autoscaler.errors import InputError
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR
from autoscaler.hpa.controller import HpaController
from autoscaler.hpa.spec import ExternalMetricTarget
from autoscaler.policies import apa, dynamo, hpa_kv, hpa_queue, kpa
from autoscaler.policies.apa import ApaPolicy
from autoscaler.policies.base import Policy, PolicyContext
from autoscaler.policies.dynamo import DynamoPolicy
from autoscaler.policies.hpa_kv import HpaKvPolicy, analyze_saturation
from autoscaler.policies.hpa_queue import HpaQueuePolicy
from autoscaler.policies.kpa import KpaPolicy
from autoscaler.policies.static_peak import StaticPeakPolicy

TICK = 15.0


def ctx(**kw: Any) -> PolicyContext:
    base: dict[str, Any] = {"slo": SloSpec(), "max_replicas": 20, "min_replicas": 1}
    base.update(kw)
    return PolicyContext(**base)


def snap(
    t: float = 0.0,
    ready: int = 4,
    spec: int | None = None,
    starting: int = 0,
    pending: int = 0,
    stale: bool = False,
    **signals: Any,
) -> SignalSnapshot:
    counts = ReplicaCounts(
        spec=ready + starting + pending if spec is None else spec,
        ready=ready,
        starting=starting,
        pending=pending,
        terminating=0,
    )
    return SignalSnapshot(workload="w", timestamp=t, replicas=counts, stale=stale, **signals)


def drive(
    policy: Policy,
    make: Callable[[float, int], SignalSnapshot],
    start_replicas: int,
    ticks: int,
    t0: float = 0.0,
) -> list[Recommendation]:
    """Run ``ticks`` ticks where the fleet instantly becomes what the policy asked for."""
    replicas = start_replicas
    out = []
    for i in range(ticks):
        rec = policy.recommend(make(t0 + i * TICK, replicas))
        out.append(rec)
        if rec.desired_replicas is not None:
            replicas = rec.desired_replicas
    return out


def assert_holds(rec: Recommendation) -> None:
    assert rec.holds
    assert rec.desired_replicas is None
    assert rec.metrics == ()
    assert rec.winner == "hold"
    assert rec.candidates and rec.candidates[0].detail


# --------------------------------------------------------------------------------------------
# hpa-queue


@pytest.mark.parametrize(
    ("waiting", "target", "desired"),
    [
        (17.0, 3.0, 6),  # ceil(17 / 3)
        (15.0, 3.0, 5),  # exact multiple: no extra replica
        (9.0, 1.0, 9),
        (9.0, 8.0, 2),
        (0.0, 3.0, 1),  # idle: down to min_replicas
        (1000.0, 3.0, 20),  # never beyond max_replicas
    ],
)
def test_hpa_queue_publishes_total_waiting(waiting: float, target: float, desired: int) -> None:
    policy = HpaQueuePolicy(ctx(), target)
    rec = policy.recommend(snap(waiting=waiting, running=40.0))
    assert [(m.name, m.value) for m in rec.metrics] == [(hpa_queue.METRIC_NAME, waiting)]
    assert rec.desired_replicas == desired
    assert rec.winner == "queue"
    assert rec.candidates[0].replicas == math.ceil(waiting / target)


def test_hpa_queue_spec_is_average_value_with_shipped_behaviour() -> None:
    policy = HpaQueuePolicy(ctx(min_replicas=2, max_replicas=12))
    spec = policy.hpa_spec()
    assert spec.metrics == (ExternalMetricTarget("num_requests_waiting", "AverageValue", 3.0),)
    assert spec.behavior is SHIPPED_BEHAVIOR
    assert (spec.min_replicas, spec.max_replicas) == (2, 12)
    assert policy.actuation == "hpa" and policy.setting == 3.0


def test_hpa_queue_holds_on_stale_or_missing_gauge() -> None:
    policy = HpaQueuePolicy(ctx())
    assert_holds(policy.recommend(snap(stale=True, waiting=50.0)))
    assert_holds(policy.recommend(snap(waiting=None)))


# --------------------------------------------------------------------------------------------
# hpa-kv (WVA)


@pytest.mark.parametrize(
    ("kv", "queue", "up", "down_safe"),
    [
        ((0.65, 0.72), (0.0, 0.0), False, False),  # docs example: spare 0.115 >= 0.10
        ((0.75, 0.78), (0.0, 0.0), True, False),  # spare KV 0.035 < 0.10
        ((0.20, 0.20), (3.0, 3.0), True, False),  # spare queue 2 < 3
        ((0.90, 0.85), (0.0, 0.0), True, False),  # every replica saturated
        ((0.10, 0.10, 0.10), (0.0, 0.0, 0.0), False, True),  # idle: one fewer is fine
        ((0.40, 0.40, 0.40), (0.0, 0.0, 0.0), False, True),  # 1.2 / 2 = 0.6: spare 0.2 >= 0.1
        ((0.60, 0.60), (0.0, 0.0), False, False),  # 1.2 on one replica: saturated, unsafe
        ((0.05,), (0.0,), False, False),  # a single replica is never removed
        ((0.95, 0.10, 0.10), (0.0, 0.0, 0.0), False, True),  # saturated one ignored
    ],
)
def test_wva_saturation_analysis(
    kv: tuple[float, ...], queue: tuple[float, ...], up: bool, down_safe: bool
) -> None:
    analysis = analyze_saturation(kv, queue, kv_threshold=0.80)
    assert analysis.scale_up is up
    assert analysis.scale_down_safe is down_safe


def kv_snap(t: float, kv: tuple[float, ...], queue: float = 0.0, **kw: Any) -> SignalSnapshot:
    return snap(
        t,
        ready=len(kv),
        per_replica_kv_usage=kv,
        per_replica_waiting=(queue,) * len(kv),
        kv_usage=sum(kv) / len(kv),
        waiting=queue * len(kv),
        **kw,
    )


def test_hpa_kv_scales_up_one_replica_and_passes_through() -> None:
    policy = HpaKvPolicy(ctx())
    rec = policy.recommend(kv_snap(0.0, (0.78, 0.79)))
    assert rec.metrics[0].name == hpa_kv.METRIC_NAME == "wva_desired_replicas"
    assert rec.metrics[0].value == 3.0
    assert rec.desired_replicas == 3
    assert rec.winner == "saturation-up"
    spec = policy.hpa_spec()
    assert spec.metrics == (ExternalMetricTarget("wva_desired_replicas", "AverageValue", 1.0),)
    # the shipped behaviour, whose tolerance is 0: a pass-through of WVA's count
    assert spec.behavior is hpa_kv.PASS_THROUGH_BEHAVIOR
    for mine, shipped in (
        (spec.behavior.scale_up, SHIPPED_BEHAVIOR.scale_up),
        (spec.behavior.scale_down, SHIPPED_BEHAVIOR.scale_down),
    ):
        assert mine == shipped
        assert mine.tolerance == 0.0


def test_hpa_kv_growing_queue_scales_a_large_fleet_through_the_hpa() -> None:
    """Regression: at 21 replicas, ready + 1 = 22 is 4.8 % above the count, inside the HPA's
    default 10 % tolerance, so the Deployment never grew while the queue exploded."""
    policy = HpaKvPolicy(ctx(max_replicas=40))
    hpa = HpaController(policy.hpa_spec(), sync_period_s=TICK)
    spec, ready, born = 21, 21, []
    published: list[float] = []
    for i in range(80):  # 20 minutes; new replicas become ready after 120 s
        t = i * TICK
        ready += sum(1 for b in born if t - b == 120.0)
        queue = 10.0 + 5.0 * i  # every replica saturated, queue growing
        counts = ReplicaCounts(
            spec=spec, ready=ready, starting=spec - ready, pending=0, terminating=0
        )
        rec = policy.recommend(
            SignalSnapshot(
                workload="w",
                timestamp=t,
                replicas=counts,
                kv_usage=0.6,
                waiting=queue * ready,
                per_replica_kv_usage=(0.6,) * ready,
                per_replica_waiting=(queue,) * ready,
            )
        )
        value = rec.metrics[0].value
        published.append(value)
        decision = hpa.sync(
            now=t,
            spec_replicas=spec,
            status_replicas=spec,
            ready_pods=ready,
            metric_values={hpa_kv.METRIC_NAME: value},
        )
        born += [t] * (decision.desired_replicas - spec)
        spec = decision.desired_replicas
    assert published[0] == 22.0
    assert max(published) >= 25.0  # keeps raising as replicas become ready
    assert spec >= 25  # and the HPA applies every +1 (never WithinTolerance)
    assert published == sorted(published)


def test_hpa_kv_skips_scale_up_while_replicas_start() -> None:
    policy = HpaKvPolicy(ctx())
    rec = policy.recommend(kv_snap(0.0, (0.78, 0.79), starting=1))
    assert rec.winner == "pending-guard"
    assert rec.metrics[0].value == 3.0  # keeps spec (2 ready + 1 starting), adds nothing


def test_hpa_kv_scales_down_when_idle_and_holds_otherwise() -> None:
    policy = HpaKvPolicy(ctx())
    assert policy.recommend(kv_snap(0.0, (0.05,) * 4)).metrics[0].value == 3.0
    steady = HpaKvPolicy(ctx()).recommend(kv_snap(0.0, (0.55, 0.6, 0.6)))
    assert (steady.winner, steady.desired_replicas) == ("saturation-hold", 3)


def test_hpa_kv_cycles_every_60_s() -> None:
    policy = HpaKvPolicy(ctx())
    first = policy.recommend(kv_snap(0.0, (0.78, 0.79)))
    for t in (15.0, 30.0, 45.0):  # load changed, but WVA has not run again
        assert policy.recommend(kv_snap(t, (0.05, 0.05, 0.05))).metrics == first.metrics
    assert policy.recommend(kv_snap(60.0, (0.05, 0.05, 0.05))).metrics[0].value == 2.0


@pytest.mark.parametrize(("threshold", "up"), [(0.8, False), (0.7, True)])
def test_hpa_kv_setting_is_the_kv_cache_threshold(threshold: float, up: bool) -> None:
    rec = HpaKvPolicy(ctx(), threshold).recommend(kv_snap(0.0, (0.65, 0.65)))
    assert (rec.winner == "saturation-up") is up


def test_hpa_kv_falls_back_to_fleet_means_and_stays_in_bounds() -> None:
    policy = HpaKvPolicy(ctx(max_replicas=2))
    rec = policy.recommend(snap(ready=2, kv_usage=0.79, waiting=0.0))
    assert rec.desired_replicas == 2  # wants 3, capped at max
    assert "fallback" in rec.candidates[0].detail
    assert_holds(HpaKvPolicy(ctx()).recommend(snap(ready=2)))
    assert_holds(HpaKvPolicy(ctx()).recommend(kv_snap(0.0, (0.9, 0.9), stale=True)))


# --------------------------------------------------------------------------------------------
# kpa (Knative)


def test_kpa_scales_up_under_load() -> None:
    policy = KpaPolicy(ctx())  # target 32 * 0.7 = 22.4 in flight per replica
    rec = policy.recommend(snap(ready=4, running=80.0, waiting=20.0))
    assert rec.desired_replicas == math.ceil(100 / 22.4)  # 5
    assert {c.reason for c in rec.candidates} >= {"stable", "panic"}


def test_kpa_starts_in_panic_and_does_not_scale_down_an_empty_history() -> None:
    policy = KpaPolicy(ctx())
    rec = policy.recommend(snap(0.0, ready=6, running=0.0, waiting=0.0))
    assert policy.in_panic
    assert (rec.desired_replicas, rec.winner) == (6, "panic-no-scale-down")


def test_kpa_panics_refuses_scale_down_and_exits_after_a_stable_window() -> None:
    policy = KpaPolicy(ctx())
    for t in range(0, 91, 15):  # quiet: the start-up panic ends after 60 s
        policy.recommend(snap(float(t), ready=2, running=20.0, waiting=0.0))
    assert not policy.in_panic
    burst = policy.recommend(snap(105.0, ready=2, running=150.0, waiting=50.0))
    assert policy.in_panic
    assert (burst.desired_replicas, burst.winner) == (math.ceil(200 / 22.4), "panic")  # 9
    for t in (120.0, 135.0, 150.0, 165.0):  # burst over, still within 60 s of the last panic
        rec = policy.recommend(snap(t, ready=2, running=20.0, waiting=0.0))
        assert policy.in_panic
        assert (rec.desired_replicas, rec.winner) == (9, "panic-no-scale-down")
    rec = policy.recommend(snap(180.0, ready=2, running=20.0, waiting=0.0))
    assert not policy.in_panic
    assert (rec.desired_replicas, rec.winner) == (1, "stable")


def test_kpa_scale_down_rate_halves_at_most() -> None:
    policy = KpaPolicy(ctx())
    recs = drive(policy, lambda t, n: snap(t, ready=n, running=0.0, waiting=0.0), 8, 12)
    counts = [r.desired_replicas for r in recs]
    assert counts[:5] == [8] * 5  # start-up panic: no scale-down for a stable window
    assert counts[5:8] == [4, 2, 1]  # then at most halving per tick
    assert all(c == 1 for c in counts[8:])


@pytest.mark.parametrize(("target", "desired"), [(8.0, 18), (32.0, 5), (128.0, 2)])
def test_kpa_setting_is_the_concurrency_target(target: float, desired: int) -> None:
    rec = KpaPolicy(ctx(), target).recommend(snap(ready=1, running=100.0, waiting=0.0))
    assert rec.desired_replicas == max(1, math.ceil(100 / (0.7 * target)))
    assert rec.desired_replicas == desired


def test_kpa_bounds_and_hold() -> None:
    rec = KpaPolicy(ctx(max_replicas=10)).recommend(snap(ready=2, running=5000.0, waiting=0.0))
    assert rec.desired_replicas == 10
    assert_holds(KpaPolicy(ctx()).recommend(snap(stale=True, running=100.0)))
    assert_holds(KpaPolicy(ctx()).recommend(snap()))
    assert kpa.PANIC_WINDOW_S < TICK  # the panic window is the latest sample (documented)


# --------------------------------------------------------------------------------------------
# apa (AIBrix)


@pytest.mark.parametrize(
    ("kv", "target", "desired", "why"),
    [
        (0.80, 0.5, 7, "ceil(4 x 1.6)"),
        (1.00, 0.3, 8, "ceil(4 x 3.33) = 14, capped at 2 x 4"),
        (0.54, 0.5, 4, "1.08 within +10 %"),
        (0.46, 0.5, 4, "0.92 within -10 %"),
        (0.30, 0.5, 3, "ceil(4 x 0.6)"),
        (0.05, 0.5, 2, "ceil(4 x 0.1) = 1, at most halved"),
    ],
)
def test_apa_proportional_with_tolerance_and_rate_cap(
    kv: float, target: float, desired: int, why: str
) -> None:
    rec = ApaPolicy(ctx(), target).recommend(snap(ready=4, kv_usage=kv))
    assert rec.desired_replicas == desired, why


def test_apa_scale_down_waits_for_the_cooldown() -> None:
    policy = ApaPolicy(ctx())
    busy = drive(policy, lambda t, n: snap(t, ready=n, kv_usage=0.5), 4, 20)
    assert {r.desired_replicas for r in busy} == {4}
    t0 = 20 * TICK
    idle = drive(policy, lambda t, n: snap(t, ready=n, kv_usage=0.02), 4, 60, t0=t0)
    counts = [r.desired_replicas or 0 for r in idle]
    first_down = next(i for i, c in enumerate(counts) if c != 4)
    assert first_down * TICK >= apa.SCALE_DOWN_COOLDOWN_S
    assert idle[first_down - 1].winner == "scale-down-cooldown"
    assert counts[first_down] >= 2  # at most halving
    assert counts[-1] == 1


def test_apa_pending_guard_counts_starting_replicas_as_empty() -> None:
    rec = ApaPolicy(ctx()).recommend(snap(ready=4, starting=2, kv_usage=0.8))
    assert rec.winner == "pending-guard"
    assert rec.desired_replicas == math.ceil(4 * 0.8 / 0.5)  # 7, not ceil(6 x 1.6) = 10


def test_apa_bounds_and_hold() -> None:
    assert ApaPolicy(ctx(max_replicas=5)).recommend(snap(kv_usage=0.9)).desired_replicas == 5
    assert ApaPolicy(ctx(min_replicas=3)).recommend(snap(kv_usage=0.0)).desired_replicas == 3
    assert_holds(ApaPolicy(ctx()).recommend(snap(stale=True, kv_usage=0.9)))
    assert_holds(ApaPolicy(ctx()).recommend(snap(kv_usage=None)))


# --------------------------------------------------------------------------------------------
# dynamo (SLA planner)


def dyn_snap(t: float, n: int = 2, **kw: Any) -> SignalSnapshot:
    base: dict[str, Any] = {
        "request_rate": 50.0,
        "mean_prompt_tokens": 1000.0,
        "mean_output_tokens": 200.0,
        "generation_tokens_rate": 10_000.0,
        "ttft_p90_s": 2.0,  # above the profile's prefill time: correction capped at 1
        "tpot_p90_s": 0.0625,  # = expected ITL at 5,000 tok/s per replica: correction 1
    }
    base.update(kw)
    return snap(t, ready=n, **base)


def test_dynamo_acts_every_180_s_only() -> None:
    policy = DynamoPolicy(ctx())
    recs = [policy.recommend(dyn_snap(i * TICK)) for i in range(25)]
    assert [r.desired_replicas for r in recs[:12]] == [2] * 12  # keeps the current count
    assert all(r.winner == "interval" for r in recs[:12])
    assert recs[12].winner == "sla-planner"  # t = 180 s
    # prefill 50 x 1000 / 10,000 = 5 replicas, decode 50 x 200 / 10,000 = 1 replica
    assert recs[12].desired_replicas == 6
    assert [r.winner for r in recs[13:24]] == ["interval"] * 11
    assert {r.desired_replicas for r in recs[13:24]} == {6}
    assert recs[24].winner == "sla-planner"  # t = 360 s
    assert dynamo.ADJUSTMENT_INTERVAL_S == 12 * TICK


def plan(policy: DynamoPolicy, **kw: Any) -> Recommendation:
    rec = None
    for i in range(13):
        rec = policy.recommend(dyn_snap(i * TICK, **kw))
    assert rec is not None and rec.winner == "sla-planner"
    return rec


def test_dynamo_uses_the_run_slo_for_decode() -> None:
    loose = plan(DynamoPolicy(ctx()))
    # Same fleet and latencies, tighter TPOT SLO: the ITL target is the run's, so more replicas.
    tight = plan(DynamoPolicy(ctx(slo=SloSpec(tpot_s=0.07))))
    assert tight.desired_replicas is not None and loose.desired_replicas is not None
    assert tight.desired_replicas > loose.desired_replicas
    # ITL twice what the profile expects: corrected ITL is half the SLO, decode thpt 1/3.
    slow = plan(DynamoPolicy(ctx()), tpot_p90_s=0.125)
    decode = next(c for c in slow.candidates if c.reason == "decode")
    assert decode.replicas == pytest.approx(3.0)
    assert slow.desired_replicas == 8


def test_dynamo_prefill_correction_only_shrinks() -> None:
    fast = plan(DynamoPolicy(ctx()), ttft_p90_s=0.05)  # 0.5 x the expected 0.1 s
    prefill = next(c for c in fast.candidates if c.reason == "prefill")
    assert prefill.replicas == pytest.approx(2.5)
    assert fast.desired_replicas == 4  # ceil(2.5 + 1)


@pytest.mark.parametrize(("scale", "desired"), [(0.7, 9), (0.85, 8), (1.0, 6), (1.2, 5)])
def test_dynamo_setting_scales_throughput(scale: float, desired: int) -> None:
    assert plan(DynamoPolicy(ctx(), scale)).desired_replicas == desired


def test_dynamo_caps_at_run_replicas_and_holds() -> None:
    assert plan(DynamoPolicy(ctx(max_replicas=4))).desired_replicas == 4
    idle = plan(DynamoPolicy(ctx(min_replicas=2)), request_rate=0.0, generation_tokens_rate=0.0)
    assert idle.desired_replicas == 2
    policy = DynamoPolicy(ctx())
    assert_holds(policy.recommend(dyn_snap(0.0, stale=True)))
    no_data = [policy.recommend(snap(i * TICK, ready=3)) for i in range(13)]
    assert no_data[-1].desired_replicas == 3 and no_data[-1].winner == "interval"


# --------------------------------------------------------------------------------------------
# static-peak


def test_static_peak() -> None:
    assert StaticPeakPolicy(ctx(peak_replicas=7)).recommend(snap()).desired_replicas == 7
    assert StaticPeakPolicy(ctx()).recommend(snap(ready=1)).desired_replicas == 20
    assert StaticPeakPolicy(ctx(peak_replicas=99)).recommend(snap()).desired_replicas == 20
    assert_holds(StaticPeakPolicy(ctx()).recommend(snap(stale=True)))
    with pytest.raises(InputError):
        StaticPeakPolicy(ctx(), 3.0)


# --------------------------------------------------------------------------------------------
# every baseline


BASELINES: list[Callable[[PolicyContext], Policy]] = [
    HpaQueuePolicy,
    HpaKvPolicy,
    KpaPolicy,
    ApaPolicy,
    DynamoPolicy,
    StaticPeakPolicy,
]


@dataclass(frozen=True)
class Tick:
    ready: int
    starting: int
    running: float
    waiting: float
    kv: float
    rate: float
    ttft: float
    tpot: float
    stale: bool

    def snapshot(self, t: float) -> SignalSnapshot:
        base = snap(
            t,
            ready=self.ready,
            starting=self.starting,
            stale=self.stale,
            running=self.running,
            waiting=self.waiting,
            kv_usage=self.kv,
            request_rate=self.rate,
            mean_prompt_tokens=800.0,
            mean_output_tokens=150.0,
            ttft_p90_s=self.ttft,
            tpot_p90_s=self.tpot,
        )
        return replace(
            base,
            per_replica_kv_usage=(self.kv,) * self.ready,
            per_replica_waiting=(self.waiting / max(self.ready, 1),) * self.ready,
        )


ticks_strategy = st.builds(
    Tick,
    ready=st.integers(0, 30),
    starting=st.integers(0, 5),
    running=st.floats(0, 2000),
    waiting=st.floats(0, 2000),
    kv=st.floats(0, 1),
    rate=st.floats(0, 200),
    ttft=st.floats(0.01, 30),
    tpot=st.floats(0.005, 1),
    stale=st.booleans(),
)


@pytest.mark.parametrize("factory", BASELINES, ids=lambda f: f.__name__)
@settings(max_examples=30, deadline=None)
@given(ticks=st.lists(ticks_strategy, min_size=1, max_size=30))
def test_every_baseline_stays_in_bounds_and_explains(
    factory: Callable[[PolicyContext], Policy], ticks: list[Tick]
) -> None:
    policy = factory(ctx(min_replicas=2, max_replicas=12, peak_replicas=9))
    for i, tick in enumerate(ticks):
        snapshot = tick.snapshot(i * TICK)
        rec = policy.recommend(snapshot)
        assert rec.winner and rec.candidates
        if snapshot.stale:
            assert rec.holds and rec.metrics == ()
            continue
        if rec.desired_replicas is not None:
            assert 2 <= rec.desired_replicas <= 12
        for m in rec.metrics:
            assert math.isfinite(m.value) and m.value >= 0


@pytest.mark.parametrize("factory", BASELINES, ids=lambda f: f.__name__)
def test_every_baseline_cites_its_source_and_has_one_constructor_shape(
    factory: Callable[..., Policy],
) -> None:
    assert "Source:" in (factory.__doc__ or "")
    policy = factory(ctx(), None)
    assert policy.actuation in ("hpa", "native")
    assert (policy.hpa_spec() is None) == (policy.actuation == "native")
