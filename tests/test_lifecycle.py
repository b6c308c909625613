"""The pod lifecycle both simulators share (``autoscaler/simulation/lifecycle.py``).

Issue 18 merged the fluid simulator's own copy of the lifecycle into one module. The pinned
runs below were recorded at 2b402d9, before the merge, with each simulator's own lifecycle; the
merged one must reproduce them exactly: every tick's replica counts (a digest of the timeline),
the cold and warm starts, the GPU time and the prefetch pulls. They cover what the lifecycle
decides: node provisioning, pulls that join a running prefetch, other tenants evicting idle
images, a node pool too small for the cap (pods pending), scale-down ranks and drains.
(The wider comparison, 24 request-level and 24 fluid runs on the ServeGen ``m-mid`` day and the
Azure trace as well, is in the merge's report; all 48 were identical.)
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from autoscaler.core.slo import SloSpec
from autoscaler.perf.profiles import get_profile
from autoscaler.policies.base import PolicyContext
from autoscaler.policies.registry import make_policy
from autoscaler.simulation.engine import SimConfig, TickRecord, simulate
from autoscaler.simulation.fluid import simulate_fluid
from autoscaler.simulation.fluid_model import build_replica_model, length_sample
from autoscaler.simulation.lifecycle import (
    PENDING,
    READY,
    LifecycleConfig,
    Pod,
    PodLifecycle,
    deletion_rank,
)
from autoscaler.simulation.oracle import (
    oracle_plan,
    replica_capacity,
    seed_capacity,
    work_weights,
)
from autoscaler.simulation.prefetch import PrefetchSim
from autoscaler.traces.families import generate, get_family
from autoscaler.traces.records import Trace
from autoscaler.traces.synthetic import AZURE_CONV_LENGTHS

CHURN = LifecycleConfig(provision_s=45.0, foreign_image_interval_s=120.0, image_slots=2)
PROFILE, SLO = get_profile(), SloSpec()
WEIGHTS = work_weights(PROFILE, SLO)


def _context(peak: int) -> PolicyContext:
    return PolicyContext(
        slo=SLO,
        max_replicas=2 * peak,
        replica_token_capacity=seed_capacity(PROFILE, SLO),
        prefill_weight=WEIGHTS[0],
        decode_weight=WEIGHTS[1],
        gpus_per_replica=PROFILE.tp,
        peak_replicas=peak,
    )


def _digest(timeline: list[TickRecord]) -> str:
    rows = [[r.t, r.spec, r.ready, r.starting, r.pending, r.winner] for r in timeline]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


# (policy, prefetch, nodes) -> (cold, warm, GPU-seconds, changes, max, timeline digest)
REQUEST_LEVEL = {
    ("forecast", False, 13): (21, 2, 103773.05518165989, 35, 24, "de61e8056ae9ea2b"),
    ("hpa-queue", True, None): (80, 8, 404998.6438964327, 29, 50, "692a07efa3f97db4"),
}
FLUID = {
    ("forecast", True, None): (7, 21, 130784.48352759928, 40, 14, "dda0b0b4fc17326e", 13),
    ("hpa-queue", False, 6): (10, 10, 196234.9719093613, 23, 22, "be89bb425ec7d77e", None),
}


@pytest.mark.parametrize(("policy", "prefetch", "nodes"), list(REQUEST_LEVEL))
def test_the_request_level_fleet_runs_as_before_the_merge(policy, prefetch, nodes):
    trace = generate(get_family("flash-x10-chat"), seed=0)
    capacity = replica_capacity(trace, PROFILE, SLO, WEIGHTS)
    peak = max(oracle_plan(trace, capacity, WEIGHTS, PROFILE.tp).replicas_per_minute)
    config = SimConfig(max_replicas=2 * peak, lifecycle=CHURN, work_weights=WEIGHTS,
                       prefetch=PrefetchSim() if prefetch else None, num_nodes=nodes)  # fmt: skip
    out = simulate(trace, make_policy(policy, _context(peak)), profile=PROFILE, config=config)
    fleet = out.fleet
    got = (fleet.cold_starts, fleet.warm_starts, fleet.gpu_seconds(trace.duration_s),
           out.replica_changes, out.max_replicas, _digest(out.timeline))  # fmt: skip
    assert got == REQUEST_LEVEL[(policy, prefetch, nodes)]


@pytest.mark.parametrize(("policy", "prefetch", "nodes"), list(FLUID))
def test_the_fluid_fleet_runs_as_before_the_merge(policy, prefetch, nodes):
    family = generate(get_family("onoff-code"), seed=0)
    minutes = int(family.duration_s // 60)
    rates = np.bincount((family.arrival_s // 60).astype(int), minlength=minutes) / 60.0
    prompts, outputs = length_sample(AZURE_CONV_LENGTHS)
    mix = Trace(path="mix", format="synthetic", arrival_s=np.arange(prompts.size, dtype=float),
                prompt_tokens=prompts, output_tokens=outputs,
                duration_s=float(prompts.size))  # fmt: skip
    capacity = replica_capacity(mix, PROFILE, SLO, WEIGHTS)
    mean_work = float(np.mean(prompts * WEIGHTS[0] + outputs * WEIGHTS[1]))
    peak = int(np.max(np.maximum(1, np.ceil(rates * mean_work / capacity))))
    config = SimConfig(max_replicas=max(2 * peak, peak + 4), lifecycle=CHURN,
                       work_weights=WEIGHTS, prefetch=PrefetchSim() if prefetch else None,
                       num_nodes=nodes)  # fmt: skip
    out = simulate_fluid(rates, 60.0, make_policy(policy, _context(peak)), profile=PROFILE,
                         config=config, slo=SLO,
                         model=build_replica_model(PROFILE, SLO, prompts, outputs))  # fmt: skip
    pulls = None if out.prefetch is None else out.prefetch.pulls_started
    got = (out.cold_starts, out.warm_starts, out.gpu_seconds, out.replica_changes,
           out.max_replicas, _digest(out.timeline), pulls)  # fmt: skip
    assert got == FLUID[(policy, prefetch, nodes)]


def test_a_pending_pod_counts_its_wait_in_its_time_to_ready():
    """With no start-up time a pod that waited for a node is ready when it lands: its time to
    ready is that wait (the fluid copy used to count 0 here; the request-level fleet, the wait)."""
    pods = PodLifecycle(LifecycleConfig(pull_s=0.0, init_s=0.0, node_gpus=4), 1, 4)
    first, second = Pod(0, 0.0), Pod(1, 5.0)
    assert pods.schedule(first, 0.0) and first.phase == READY
    assert not pods.schedule(second, 5.0) and second.phase == PENDING
    pods.release(0, 30.0)
    assert pods.schedule_waiting([second], 30.0) == [second]
    assert list(pods.time_to_ready) == [0.0, 25.0]


def test_scale_down_ranks_unscheduled_then_newest_unready_then_newest_ready():
    pending, pulling = Pod(3, 10.0, PENDING), Pod(2, 20.0, "pulling")
    old = Pod(0, 0.0, READY, ready_at=5.0)
    new = Pod(1, 0.0, READY, ready_at=9.0)
    assert sorted([old, new, pulling, pending], key=deletion_rank) == [pending, pulling, new, old]


def test_without_image_slots_a_node_never_keeps_the_image():
    pods = PodLifecycle(LifecycleConfig(pull_s=10.0, init_s=0.0, image_slots=0), 1, 4)
    pod = Pod(0, 0.0)
    assert pods.schedule(pod, 0.0) and pod.phase == "pulling"
    assert pods.fire(pod) and not pods.warm[0]
