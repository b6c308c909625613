"""The fleet oracle: a tight yardstick (the plan meets the target, one step cheaper does not),
found from C* either way, cached per trace and settings, and robust to a damaged cache."""

from __future__ import annotations

import json
import logging
import math

import pytest

from autoscaler.core.slo import SloSpec
from autoscaler.perf.profiles import get_profile
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.fleet_oracle import ITERATIONS, cache_key, fleet_oracle
from autoscaler.simulation.oracle import (
    INSTANT,
    PlanPolicy,
    feasible_on_idle_replica,
    oracle_plan,
    replica_capacity,
    work_weights,
)
from autoscaler.traces.synthetic import SyntheticWorkload, generate

PROFILE = get_profile()
SLO = SloSpec()
WEIGHTS = work_weights(PROFILE, SLO)


@pytest.fixture(scope="module")
def trace():
    return generate(SyntheticWorkload(duration_s=1200.0, mean_rate_rps=6.0), seed=3)


@pytest.fixture(scope="module")
def cstar(trace):
    return replica_capacity(trace, PROFILE, SLO, WEIGHTS, seed=0)


def attainment(trace, capacity: float) -> tuple[float, float]:
    """(attainment on the feasible requests, GPU-hours) of the plan at ``capacity``."""
    plan = oracle_plan(trace, capacity, WEIGHTS, PROFILE.tp)
    config = SimConfig(max_replicas=max(plan.replicas_per_minute),
                       start_replicas=plan.replicas_per_minute[0], lifecycle=INSTANT,
                       work_weights=WEIGHTS)  # fmt: skip
    out = simulate(trace, PlanPolicy("p", plan.replicas_per_minute), profile=PROFILE,
                   config=config)  # fmt: skip
    reqs = out.reqs
    met = SLO.met(reqs.prompt_arr, reqs.output_arr,
                  reqs.column("first_token") - reqs.arrival_arr,
                  reqs.column("finished") - reqs.arrival_arr)  # fmt: skip
    return float(met[feasible_on_idle_replica(trace, PROFILE, SLO)].mean()), plan.gpu_hours


def test_the_plan_meets_the_target_and_a_cheaper_one_does_not(trace, cstar):
    found = fleet_oracle(trace, PROFILE, SLO, WEIGHTS, replica_capacity=cstar)
    assert found.target_met and found.replica_capacity == cstar
    att, hours = attainment(trace, found.plan.capacity)
    assert att == pytest.approx(found.attainment_feasible) and att >= SLO.attainment_target
    assert hours == pytest.approx(found.plan.gpu_hours)
    # the bisection's bracket is one step wide: just above C the plan misses, or costs the same
    step = 2.0 ** (1.0 / 2**ITERATIONS)
    above, above_hours = attainment(trace, found.plan.capacity * step * step)
    assert above < SLO.attainment_target or above_hours == pytest.approx(hours)


def test_the_search_goes_down_from_an_optimistic_start(trace, cstar):
    """Started from 4x C* (a single-replica figure that flatters the fleet), the search halves
    until the plan meets the target, and lands on the same capacity within the precision."""
    up = fleet_oracle(trace, PROFILE, SLO, WEIGHTS, replica_capacity=cstar)
    down = fleet_oracle(trace, PROFILE, SLO, WEIGHTS, replica_capacity=4 * cstar)
    assert down.target_met
    assert down.plan.gpu_hours == pytest.approx(up.plan.gpu_hours, rel=0.05)


def test_the_result_is_cached_per_trace_and_settings(trace, cstar, tmp_path):
    steps: list[float] = []
    first = fleet_oracle(trace, PROFILE, SLO, WEIGHTS, replica_capacity=cstar,
                         cache_dir=tmp_path, progress=steps.append)  # fmt: skip
    assert steps  # computed
    steps.clear()
    again = fleet_oracle(trace, PROFILE, SLO, WEIGHTS, replica_capacity=cstar,
                         cache_dir=tmp_path, progress=steps.append)  # fmt: skip
    assert steps == [] and again == first
    stricter = SloSpec(attainment_target=0.999)
    assert cache_key(trace, PROFILE, stricter, WEIGHTS, 15.0) != cache_key(
        trace, PROFILE, SLO, WEIGHTS, 15.0
    )
    assert cache_key(trace.head(600.0), PROFILE, SLO, WEIGHTS, 15.0) != cache_key(
        trace, PROFILE, SLO, WEIGHTS, 15.0
    )


@pytest.mark.parametrize("damage", ["not json", json.dumps({"capacity": -1.0}), "{}"])
def test_a_damaged_cache_entry_is_recomputed_with_a_warning(trace, cstar, tmp_path, caplog,
                                                              damage):  # fmt: skip
    good = fleet_oracle(trace, PROFILE, SLO, WEIGHTS, replica_capacity=cstar, cache_dir=tmp_path)
    (entry,) = tmp_path.iterdir()
    entry.write_text(damage)
    with caplog.at_level(logging.WARNING):
        again = fleet_oracle(trace, PROFILE, SLO, WEIGHTS, replica_capacity=cstar,
                             cache_dir=tmp_path)  # fmt: skip
    assert again.plan == good.plan
    assert str(entry) in caplog.text
    assert math.isclose(json.loads(entry.read_text())["capacity"], good.plan.capacity)
