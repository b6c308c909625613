"""Whole runs of the event loop: conservation, lifecycle, scale-down order, yardsticks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.core.slo import SloSpec
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.fleet import Fleet
from autoscaler.simulation.lifecycle import DRAINING, GONE, PULLING, READY, LifecycleConfig
from autoscaler.simulation.oracle import (
    INSTANT,
    PlanPolicy,
    decode_batch_at_slo,
    oracle_plan,
    replica_capacity,
    work_bound_gpu_hours,
    work_weights,
)
from autoscaler.simulation.requests import RequestTable
from autoscaler.simulation.results import run_figures
from autoscaler.traces.records import from_columns
from tests.simhelpers import poisson_trace, toy_profile


def test_every_request_finishes_or_is_rejected_across_scale_changes():
    trace = poisson_trace(rate=20.0, duration=600.0, prompt=500, output=50)
    plan = tuple([2, 4, 1, 3, 1, 5, 2, 2, 1, 1])
    config = SimConfig(max_replicas=6, start_replicas=2, lifecycle=LifecycleConfig(30, 10))
    out = simulate(trace, PlanPolicy("p", plan), profile=toy_profile(), config=config)
    finished = out.reqs.column("finished")
    assert np.isfinite(finished).all()
    assert not any(out.reqs.rejected)
    assert (finished >= out.reqs.arrival_arr).all()
    # scale-downs drained: nobody is left draining, and ready + gone accounts for every pod
    phases = {r.phase for r in out.fleet.records}
    assert phases <= {READY, GONE}
    assert out.replica_changes >= 5


def test_requests_longer_than_the_context_are_rejected_and_missed():
    trace = from_columns("t", "synthetic", [0.0, 1.0], [40_000, 100], [10, 10], duration_s=30)
    config = SimConfig(max_replicas=1, start_replicas=1, lifecycle=INSTANT)
    out = simulate(trace, PlanPolicy("p", (1,)), profile=toy_profile(), config=config)
    assert out.reqs.rejected == [True, False]
    figs = run_figures(out, SloSpec(), oracle_gpu_hours=1.0, work_bound_gpu_hours=0.5)
    assert figs["slo_attainment"] == pytest.approx(0.5)


def test_new_replica_is_ready_after_pull_and_init_and_warm_nodes_skip_the_pull():
    lifecycle = LifecycleConfig(pull_s=100.0, init_s=20.0)
    trace = from_columns("t", "synthetic", [0.0], [10], [2], duration_s=10)
    fleet = Fleet(profile=toy_profile(), lifecycle=lifecycle, num_nodes=2,
                  reqs=RequestTable(trace, (1.0, 1.0)))  # fmt: skip
    fleet.create_ready(0.0)  # node 0 now holds the image (warm), 4 of 8 GPUs used
    fleet.scale_to(2, 0.0)
    new = fleet.records[1]
    # the warm half-full node scores 50 + 100 against the cold empty node's 100
    assert new.node == 0 and new.warm and new.phase == "initializing"
    fleet.scale_to(3, 0.0)
    cold = fleet.records[2]
    assert cold.node == 1 and not cold.warm and cold.phase == PULLING
    events = sorted(fleet.pending_events)
    fleet.pending_events.clear()
    for when, slot in events:
        fleet.advance(slot, when)
    assert fleet.records[1].ready_at == 20.0
    assert fleet.records[2].phase == "initializing"
    ((when, slot),) = fleet.pending_events
    fleet.advance(slot, when)
    assert fleet.records[2].ready_at == 120.0
    assert (fleet.cold_starts, fleet.warm_starts) == (1, 1)


def test_scale_down_removes_unready_pods_first_then_the_newest_ready():
    trace = from_columns("t", "synthetic", [0.0], [10], [2], duration_s=10)
    fleet = Fleet(profile=toy_profile(), lifecycle=LifecycleConfig(100, 20), num_nodes=4,
                  reqs=RequestTable(trace, (1.0, 1.0)))  # fmt: skip
    fleet.create_ready(0.0)
    fleet.create_ready(5.0)
    fleet.scale_to(4, 10.0)  # two more, still starting
    fleet.scale_to(3, 11.0)
    assert fleet.records[3].phase == GONE  # newest unready first
    fleet.scale_to(1, 12.0)
    assert fleet.records[2].phase == GONE
    assert fleet.records[1].phase in (GONE, DRAINING)  # newest ready next
    assert fleet.records[0].phase == READY


def test_gpu_hours_count_from_creation_to_deletion():
    trace = poisson_trace(rate=2.0, duration=300.0, prompt=200, output=20)
    config = SimConfig(max_replicas=3, start_replicas=3, lifecycle=INSTANT)
    out = simulate(trace, PlanPolicy("p", (3,)), profile=toy_profile(), config=config)
    assert out.fleet.gpu_seconds(300.0) == pytest.approx(3 * 4 * 300.0)


def test_oracle_capacity_meets_the_target_and_the_work_bound_is_below_the_oracle():
    profile = toy_profile()
    slo = SloSpec()
    trace = poisson_trace(rate=30.0, duration=900.0, prompt=800, output=100, seed=3)
    weights = work_weights(profile, slo)
    cap = replica_capacity(trace, profile, slo, weights, duration_s=300.0, iterations=8)
    assert cap > 0
    plan = oracle_plan(trace, cap, weights, profile.tp)
    bound = work_bound_gpu_hours(trace, profile, slo)
    assert 0 < bound < plan.gpu_hours
    config = SimConfig(max_replicas=max(plan.replicas_per_minute),
                       start_replicas=plan.replicas_per_minute[0], lifecycle=INSTANT,
                       work_weights=weights)  # fmt: skip
    out = simulate(trace, PlanPolicy("oracle", plan.replicas_per_minute),
                   profile=profile, config=config)  # fmt: skip
    figs = run_figures(out, slo, oracle_gpu_hours=plan.gpu_hours, work_bound_gpu_hours=bound)
    assert figs["slo_attainment"] >= 0.95
    assert figs["gpu_hours"] == pytest.approx(plan.gpu_hours, rel=0.1)


def test_decode_batch_at_slo_respects_tpot_and_kv():
    profile = toy_profile()
    b = decode_batch_at_slo(profile, SloSpec(tpot_s=0.05), mean_context=100)
    assert b == 30  # 0.02 + 0.001 * 30 = 0.05
    assert profile.decode_step_s(b + 1, 0) > 0.05
    assert decode_batch_at_slo(profile, SloSpec(tpot_s=1.0), mean_context=10_000) == 10


def test_policies_see_rates_close_to_the_offered_load():
    seen = []

    class Recorder(PlanPolicy):
        def recommend(self, snapshot):
            seen.append(snapshot)
            return super().recommend(snapshot)

    trace = poisson_trace(rate=10.0, duration=600.0, prompt=300, output=30, seed=1)
    config = SimConfig(max_replicas=2, start_replicas=2, lifecycle=INSTANT)
    simulate(trace, Recorder("r", (2,)), profile=toy_profile(), config=config)
    steady = [s for s in seen if s.timestamp >= 120]
    rates = [s.request_rate for s in steady]
    assert all(r is not None for r in rates)
    assert np.mean(rates) == pytest.approx(10.0, rel=0.1)
    assert all(s.ttft_p90_s is not None and s.ttft_p90_s > 0 for s in steady)
    assert all(s.replicas.ready == 2 for s in steady)
    assert seen[0].request_rate is None  # nothing scraped before the first tick
    assert math.isclose(np.mean([s.mean_prompt_tokens for s in steady]), 300.0)
