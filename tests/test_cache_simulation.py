"""Prefetch in the simulator: the live planner drives simulated pulls; warm starts go up."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.core.recommendation import Candidate, PublishedMetric, Recommendation
from autoscaler.core.signals import SignalSnapshot
from autoscaler.core.slo import SloSpec
from autoscaler.core.wire_names import DESIRED_METRIC, FORECAST_METRIC, LOAD_METRIC
from autoscaler.hpa.spec import HpaSpec
from autoscaler.simulation import prefetch as sim_prefetch
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.fleet import Fleet
from autoscaler.simulation.fluid import simulate_fluid
from autoscaler.simulation.fluid_model import build_replica_model, length_sample
from autoscaler.simulation.lifecycle import PULLING, LifecycleConfig
from autoscaler.simulation.prefetch import PrefetchSim
from autoscaler.simulation.requests import RequestTable
from autoscaler.traces.synthetic import AZURE_CONV_LENGTHS
from cache import planner
from cache.planner import PlannerSettings
from tests.simhelpers import poisson_trace, toy_profile

RAMP = (1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 8, 8, 8, 8)
"""Replicas per minute: a slow ramp that a forecast sees coming."""
LIFECYCLE = LifecycleConfig(pull_s=120.0, init_s=30.0)


class LookAhead:
    """A native policy that wants this minute's replicas and publishes, like ``forecast``, a
    load (this minute) and an upper forecast (four minutes ahead)."""

    actuation = "native"

    def __init__(self, per_minute: tuple[int, ...] = RAMP) -> None:
        self.per_minute = per_minute

    def hpa_spec(self) -> HpaSpec | None:
        return None

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        last = len(self.per_minute) - 1
        minute = min(int(snapshot.timestamp // 60), last)
        want = self.per_minute[minute]
        ahead = self.per_minute[min(minute + 4, last)]
        return Recommendation(
            workload=snapshot.workload,
            timestamp=snapshot.timestamp,
            desired_replicas=want,
            winner="plan",
            candidates=(Candidate("plan", float(want)),),
            metrics=(
                PublishedMetric(DESIRED_METRIC, float(want)),
                PublishedMetric(LOAD_METRIC, float(want)),
                PublishedMetric(FORECAST_METRIC, float(ahead)),
            ),
        )


def run(prefetch: PrefetchSim | None, lifecycle: LifecycleConfig = LIFECYCLE):
    trace = poisson_trace(rate=5.0, duration=len(RAMP) * 60.0, prompt=200, output=20)
    config = SimConfig(max_replicas=8, start_replicas=1, lifecycle=lifecycle, prefetch=prefetch)
    return simulate(trace, LookAhead(), profile=toy_profile(), config=config)


def time_to_ready(out) -> list[float]:
    return [r.ready_at - r.created for r in out.fleet.records if r.ready_at and r.created > 0]


def test_prefetch_on_gives_more_warm_starts_and_shorter_starts_than_off():
    off = run(None)
    on = run(PrefetchSim(settings=PlannerSettings(max_warm_nodes=2, max_concurrent_per_pool=2)))
    assert off.fleet.warm_starts + off.fleet.cold_starts == 7  # 1 -> 8 replicas
    assert on.fleet.warm_starts + on.fleet.cold_starts == 7
    assert on.fleet.warm_starts > off.fleet.warm_starts
    assert on.fleet.cold_starts == 0  # the look-ahead covers every node in time
    assert time_to_ready(on) == [LIFECYCLE.init_s] * 7  # every start skipped the pull
    assert np.mean(time_to_ready(off)) > LIFECYCLE.init_s + 0.4 * LIFECYCLE.pull_s
    assert on.prefetch is not None and off.prefetch is None
    assert on.prefetch.pulls_started == 3  # nodes 1-3 (node 0 holds the starting replica)
    assert on.prefetch.pull_seconds_until(on.duration_s) == pytest.approx(3 * 120.0)


def test_a_cap_of_zero_warm_nodes_changes_nothing():
    off = run(None)
    capped = run(PrefetchSim(settings=PlannerSettings(max_warm_nodes=0, fleet_fraction=0.0)))
    assert capped.prefetch is not None and capped.prefetch.pulls_started == 0
    assert (capped.fleet.warm_starts, capped.fleet.cold_starts) == (
        off.fleet.warm_starts,
        off.fleet.cold_starts,
    )


def test_the_shortcut_never_changes_a_decision(monkeypatch):
    cfg = PrefetchSim(settings=PlannerSettings(max_warm_nodes=1, max_concurrent_per_pool=1))
    fast = run(cfg)
    calls = []
    original = planner.plan_prefetch

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(sim_prefetch, "plan_prefetch", counted)
    monkeypatch.setattr(sim_prefetch.SimPrefetcher, "_no_pull_possible", lambda *a: False)
    slow = run(cfg)
    assert len(calls) > fast.prefetch.pulls_started  # the planner really ran every tick
    assert slow.prefetch.pulls_started == fast.prefetch.pulls_started
    assert (slow.fleet.warm_starts, slow.fleet.cold_starts) == (
        fast.fleet.warm_starts,
        fast.fleet.cold_starts,
    )


def test_a_replica_joins_a_running_prefetch_and_other_tenants_evict_idle_images():
    lifecycle = LifecycleConfig(pull_s=100.0, init_s=10.0, image_slots=2,
                                foreign_image_interval_s=50.0)  # fmt: skip
    trace = poisson_trace(rate=1.0, duration=60.0, prompt=100, output=5)
    fleet = Fleet(profile=toy_profile(), lifecycle=lifecycle, num_nodes=2,
                  reqs=RequestTable(trace, (1.0, 1.0)))  # fmt: skip
    fleet.create_ready(0.0)
    fleet.create_ready(0.0)  # node 0 full and warm
    fleet.pods.prefetch_until[1] = 60.0  # our pull on node 1 ends at 60
    fleet.scale_to(3, 20.0)
    joined = fleet.records[2]
    assert joined.node == 1 and joined.phase == PULLING and not joined.warm
    assert joined.until == 60.0  # the rest of the running pull, not 20 + 100
    # node 1 idle from 200 on: two foreign images (50 s apart) push ours out at 300
    fleet.prefetch_done(1, 60.0)
    fleet.scale_to(2, 200.0)
    assert fleet.pods.warm[1]
    fleet.expire_images(299.0)
    assert fleet.pods.warm[1]
    fleet.expire_images(300.0)
    assert not fleet.pods.warm[1]


def test_fluid_mode_takes_prefetch_too():
    rates = np.array(RAMP, dtype=float) * 0.5
    slo = SloSpec()
    model = build_replica_model(toy_profile(), slo, *length_sample(AZURE_CONV_LENGTHS, n=1024))

    def fluid(prefetch: PrefetchSim | None):
        config = SimConfig(max_replicas=8, start_replicas=1, lifecycle=LIFECYCLE,
                           prefetch=prefetch)  # fmt: skip
        return simulate_fluid(rates, 60.0, LookAhead(), profile=toy_profile(), config=config,
                              slo=slo, model=model)  # fmt: skip

    off = fluid(None)
    on = fluid(PrefetchSim(settings=PlannerSettings(max_warm_nodes=2)))
    assert off.warm_starts + off.cold_starts == on.warm_starts + on.cold_starts == 7
    assert on.warm_starts > off.warm_starts and on.cold_starts == 0
    assert on.prefetch is not None and on.prefetch.pulls_started == 3
    assert np.mean([t for t in on.time_to_ready if t > 0]) < np.mean(
        [t for t in off.time_to_ready if t > 0]
    )


def test_metric_names_agree_with_the_policy():
    """One definition (``autoscaler.core.wire_names``): the planner keeps no copy that could drift
    and the simulated prefetcher reads the very names the policy publishes."""
    assert not hasattr(planner, "FORECAST_METRIC") and not hasattr(planner, "LOAD_METRIC")
    assert sim_prefetch.FORECAST_METRIC == FORECAST_METRIC
    assert sim_prefetch.LOAD_METRIC == LOAD_METRIC


def test_demand_from_a_recommendation():
    demand = planner.demand_from(5, 7.2, 4.5, 5, min_replicas=1, max_replicas=10)
    assert demand == planner.Demand(8, 5, pytest.approx(2.7))
    assert planner.demand_from(None, 7.2, 4.5, 5) is None  # the policy holds: no demand
    assert planner.demand_from(5, None, None, 3) == planner.Demand(5, 3, 0.0)
    capped = planner.demand_from(5, 30.0, 4.0, 5, max_replicas=10)
    assert capped is not None and capped.replicas_needed == 10 and capped.growth_replicas == 5


def test_simulate_takes_prefetch_on_and_off(tmp_path, capsys):
    import json
    from datetime import datetime, timedelta

    from autoscaler.cli import main

    start = datetime(2023, 11, 16, 18, 0, 0)
    rows = [
        f"{(start + timedelta(seconds=0.5 * i)).strftime('%Y-%m-%d %H:%M:%S.%f')},300,30"
        for i in range(600)
    ]
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    figures = {}
    for flag in ("on", "off"):
        code = main(["simulate", "--trace", str(trace), "--policy", "forecast", "--seeds", "1",
                     "--prefetch", flag, "--json"])  # fmt: skip
        assert code == 0
        result = json.loads(capsys.readouterr().out)
        assert result["lifecycle"]["prefetch"] is (flag == "on")
        figures[flag] = result["policies"]["forecast"]
    assert set(figures["on"]) == set(figures["off"])
