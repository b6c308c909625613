"""The simulated inference gateway: arrival counters, and flow control holding the overflow."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.core.signals import SignalSnapshot
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.gateway import GatewaySim
from autoscaler.simulation.lifecycle import LifecycleConfig
from autoscaler.simulation.oracle import INSTANT, PlanPolicy
from tests.simhelpers import poisson_trace, toy_profile


class Watcher(PlanPolicy):
    """A fixed plan that keeps every snapshot it was shown."""

    def __init__(self, plan: tuple[int, ...]) -> None:
        super().__init__("watch", plan)
        self.seen: list[SignalSnapshot] = []

    def recommend(self, snapshot):  # type: ignore[no-untyped-def]
        self.seen.append(snapshot)
        return super().recommend(snapshot)


def run(gateway: GatewaySim | None, rate: float, replicas: int = 1, duration: float = 600.0):
    trace = poisson_trace(rate=rate, duration=duration, prompt=2000, output=200)
    policy = Watcher((replicas,))
    config = SimConfig(
        max_replicas=replicas, start_replicas=replicas, lifecycle=INSTANT, gateway=gateway
    )
    out = simulate(trace, policy, profile=toy_profile(), config=config)
    return out, policy.seen


def test_without_a_gateway_the_snapshot_has_no_gateway_fields():
    _, seen = run(None, rate=2.0)
    assert all(s.gateway_request_rate is None and s.gateway_backlog is None for s in seen)


def test_the_gateway_counts_requests_as_they_arrive_not_as_they_finish():
    _, seen = run(GatewaySim(), rate=5.0)
    late = [s for s in seen if s.timestamp >= 120.0]
    arrivals = np.mean([s.arrival_requests_per_s() for s in late])
    assert arrivals == pytest.approx(5.0, rel=0.15)
    assert all(s.gateway_backlog is None for s in late)  # no flow control: no queue gauge
    assert all(s.gateway_mean_prompt_tokens == 2000.0 for s in late if s.request_rate)


def test_flow_control_holds_the_overflow_at_the_gateway_not_in_the_engine_queue():
    # one replica, offered far more than it can serve
    fc = GatewaySim(flow_control=True, queue_depth_threshold=2)
    out_fc, seen_fc = run(fc, rate=40.0, duration=300.0)
    out_plain, seen_plain = run(GatewaySim(), rate=40.0, duration=300.0)
    last_fc, last_plain = seen_fc[-1], seen_plain[-1]
    assert last_fc.waiting is not None and last_fc.waiting <= 2
    assert last_plain.waiting is not None and last_plain.waiting > 100
    assert last_fc.gateway_backlog is not None and last_fc.gateway_backlog > 100
    # what reaches the engines is capped, what arrives is not
    assert last_fc.gateway_request_rate < 0.5 * 40.0
    assert last_fc.arrival_requests_per_s() == pytest.approx(40.0, rel=0.25)
    # every request is let through or still held, and they are let through in arrival order
    assert out_fc.fleet.dispatched + len(out_fc.fleet.backlog) == len(out_fc.reqs.arrival_arr)
    admitted = out_fc.reqs.column("admitted")
    served = admitted[np.isfinite(admitted)]
    assert len(served) > 0 and (np.diff(served) >= 0).all()


def test_flow_control_lets_requests_through_at_once_while_the_pool_has_room():
    out, seen = run(GatewaySim(flow_control=True), rate=0.5, replicas=2)
    assert all((s.gateway_backlog or 0.0) == 0.0 for s in seen)
    assert out.fleet.dispatched == len(out.reqs.arrival_arr)


def test_a_gateway_with_impossible_thresholds_is_refused():
    with pytest.raises(ValueError, match="queue depth"):
        GatewaySim(flow_control=True, queue_depth_threshold=0)
    with pytest.raises(ValueError, match="KV cache"):
        GatewaySim(kv_cache_threshold=1.5)


def test_held_requests_wait_for_a_replica_that_starts():
    trace = poisson_trace(rate=10.0, duration=300.0, prompt=2000, output=200)
    policy = Watcher((1, 1, 3))
    config = SimConfig(
        max_replicas=3, start_replicas=1, lifecycle=LifecycleConfig(pull_s=30.0, init_s=10.0),
        gateway=GatewaySim(flow_control=True),
    )  # fmt: skip
    out = simulate(trace, policy, profile=toy_profile(), config=config)
    assert np.isfinite(out.reqs.column("finished")).all()


def test_an_unobserved_gateway_holds_requests_but_shows_policies_nothing():
    fc = GatewaySim(flow_control=True, queue_depth_threshold=2, observed=False)
    out, seen = run(fc, rate=40.0, duration=300.0)
    assert len(out.fleet.backlog) > 100
    assert all(s.gateway_request_rate is None and s.gateway_backlog is None for s in seen)
    assert fc.describe() == "flow-control-unobserved"
