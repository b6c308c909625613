"""The multi-policy runner: shared yardsticks, equal starting conditions, seeds and spread."""

from __future__ import annotations

import pytest

from autoscaler.perf.profiles import get_profile
from autoscaler.simulation.fleet import LifecycleConfig
from autoscaler.simulation.results import FIGURES
from autoscaler.simulation.runner import ORACLE, ORACLE_LATE, RunRequest, run, run_seed
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
