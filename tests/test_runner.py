"""The multi-policy runner: shared yardsticks, equal starting conditions, seeds and spread."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoscaler.errors import InputError
from autoscaler.perf.profiles import get_profile
from autoscaler.simulation.lifecycle import LifecycleConfig
from autoscaler.simulation.results import FIGURES
from autoscaler.simulation.runner import (
    ORACLE,
    ORACLE_LATE,
    RunRequest,
    default_warmup_s,
    run,
    run_seed,
)
from autoscaler.traces.synthetic import SyntheticWorkload, generate


@pytest.fixture(scope="module")
def small_trace():
    return generate(SyntheticWorkload(duration_s=900.0, mean_rate_rps=8.0), seed=1)


def test_every_policy_gets_the_same_start_cap_and_yardsticks(small_trace):
    req = RunRequest(
        policies=["forecast", "hpa-queue@3", "static-peak"],
        profile=get_profile(),
        seeds=1,
        lifecycle=LifecycleConfig(pull_s=60.0, init_s=20.0),
        warmup_s=0.0,
    )
    seed_run = run_seed(small_trace, req, seed=0)
    assert set(seed_run.figures) == {ORACLE, ORACLE_LATE, "forecast", "hpa-queue@3", "static-peak"}
    starts = {
        name: sum(1 for r in out.fleet.records if r.created == 0.0 and r.ready_at == 0.0)
        for name, out in seed_run.outputs.items()
    }
    assert len(set(starts.values())) == 1, starts
    oracle_hours = {f["oracle_gpu_hours"] for f in seed_run.figures.values()}
    bounds = {f["work_bound_gpu_hours"] for f in seed_run.figures.values()}
    assert len(oracle_hours) == 1 and len(bounds) == 1
    (oracle_h,), (bound,) = oracle_hours, bounds
    assert 0 < bound < oracle_h
    caps = {out.max_replicas for out in seed_run.outputs.values()}
    peak = seed_run.outputs[ORACLE].max_replicas
    assert max(caps) <= max(2 * peak, peak + 4)
    # static-peak holds the oracle's peak once its replicas are up
    assert seed_run.outputs["static-peak"].timeline[-1].ready == peak
    # oracle-late asks for the oracle's count of each minute, at that minute, and waits for
    # the real start-up; the oracle has its replicas at once
    late, oracle = seed_run.outputs[ORACLE_LATE], seed_run.outputs[ORACLE]
    assert [t.spec for t in late.timeline] == [t.spec for t in oracle.timeline]

    def shortfall(out):
        return sum(max(0, t.spec - t.ready) for t in out.timeline)

    assert shortfall(late) > shortfall(oracle)
    yard = seed_run.yardstick
    assert yard["fleet_capacity"] > 0 and yard["replica_capacity"] > 0
    assert 0 < yard["slo_ceiling"] <= 1 and yard["oracle_target_met"] is True
    assert yard["oracle_attainment_feasible"] >= req.slo.attainment_target


def test_seeds_are_averaged_with_their_spread(small_trace):
    req = RunRequest(policies=["kpa"], profile=get_profile(), seeds=2, rate_scale=1.5)
    result = run(small_trace, req)
    figs = result["policies"]["kpa"]  # type: ignore[index]
    assert figs["seeds"] == 2
    assert set(FIGURES) <= set(figs["spread"])
    assert result["trace"]["rate_scale"] == 1.5  # type: ignore[index]
    # rate-scale 1.5 thins the second copy: about 1.5x the requests
    assert result["trace"]["requests"] == pytest.approx(1.5 * small_trace.requests, rel=0.05)  # type: ignore[index]


def test_during_the_warm_up_the_plan_acts_and_the_policy_only_observes(small_trace):
    lifecycle = LifecycleConfig(pull_s=60.0, init_s=20.0)
    req = RunRequest(policies=["forecast", "kpa"], profile=get_profile(), seeds=1,
                     lifecycle=lifecycle, warmup_s=300.0)  # fmt: skip
    seed_run = run_seed(small_trace, req, seed=0)
    oracle = seed_run.outputs[ORACLE]
    for name in ("forecast", "kpa", ORACLE_LATE):
        out = seed_run.outputs[name]
        assert out.warmup_s == 300.0
        warm = [t for t in out.timeline if t.t < 300.0]
        # the fleet is the oracle's, ready, whatever the policy said
        assert [t.spec for t in warm] == [t.spec for t in oracle.timeline if t.t < 300.0]
        # ready at the next scrape: what the plan asked for one tick earlier
        assert all(b.ready == a.spec for a, b in zip(warm, warm[1:], strict=False)), name
        # no start is counted and no replica is created but ready at once before the end
        assert all(r.ready_at == r.created for r in out.fleet.records if r.created < 300.0)
    # the policy saw the warm-up: it recommended at every warm-up tick (its winner is recorded)
    assert all(t.winner not in ("", "plan") for t in seed_run.outputs["forecast"].timeline[:5])
    figs = seed_run.figures["forecast"]
    assert figs["requests"] == int((small_trace.arrival_s >= 300.0).sum())
    assert seed_run.yardstick["warmup_s"] == 300.0
    no_warmup = run_seed(small_trace, replace(req, warmup_s=0.0), seed=0)
    assert figs["gpu_hours"] < no_warmup.figures["forecast"]["gpu_hours"]
    assert figs["oracle_gpu_hours"] < no_warmup.figures["forecast"]["oracle_gpu_hours"]


def test_a_warm_up_as_long_as_the_trace_is_refused(small_trace):
    req = RunRequest(policies=["kpa"], profile=get_profile(), seeds=1, warmup_s=900.0)
    with pytest.raises(InputError, match="warm-up of 900s leaves nothing"):
        run_seed(small_trace, req, seed=0)


def test_the_default_warm_up_is_ten_minutes_or_two_lead_times_at_most_half_the_trace():
    assert default_warmup_s(240.0, 3600.0) == 600.0
    assert default_warmup_s(420.0, 3600.0) == 840.0
    assert default_warmup_s(240.0, 900.0) == 420.0
