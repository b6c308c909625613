"""The inference gateway in front of a simulated fleet: arrival counters and flow control.

With a :class:`GatewaySim` in the run's config the simulated fleet sits behind an endpoint picker
(EPP) as the Gateway API Inference Extension runs one (:mod:`autoscaler.engines.gateway` lists the
metrics and where they were checked): its request counter counts every request it lets through to
a replica, and its token histograms size the completed ones, so a policy can read demand where it
arrives. With ``flow_control`` on, a request that arrives while the pool is saturated waits in the
gateway's queue instead of a replica's, and is let through (oldest first) as soon as a replica has
room: the EPP's flow-control layer with its default ``utilization-detector``, which calls the pool
saturated when no ready replica has fewer than ``queue_depth_threshold`` waiting requests and a
KV cache below ``kv_cache_threshold`` (defaults 5 and 0.8, the extension's flow-control guide).
Those requests wait where no engine queue shows them: engine-side signals then see a fleet that
looks busy but calm, which is why the gateway's backlog gauge matters.

The detector here reads each replica's state at the instant of the decision (the EPP's own view
lags by its metrics refresh, tens of milliseconds); the KV share is the replica's context at its
last event, which a decode stretch in progress has grown since.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.simulation.fleet import Fleet
from autoscaler.simulation.replica import Replica

__all__ = ["GatewaySim"]


@dataclass(frozen=True, slots=True)
class GatewaySim:
    """The gateway of a run; ``flow_control`` off: it only counts (requests pass at once)."""

    flow_control: bool = False
    queue_depth_threshold: int = 5
    kv_cache_threshold: float = 0.8
    observed: bool = True
    """Whether policies see the EPP's metrics; False: a gateway nobody scrapes (with flow
    control: requests wait where no signal a policy reads shows them)."""

    def __post_init__(self) -> None:
        if self.queue_depth_threshold < 1:
            raise ValueError(f"queue depth threshold must be >= 1: {self.queue_depth_threshold}")
        if not 0.0 < self.kv_cache_threshold <= 1.0:
            raise ValueError(f"KV cache threshold must be in (0, 1]: {self.kv_cache_threshold}")

    def pick(self, fleet: Fleet) -> Replica | None:
        """Where flow control lets the next request through: the least-loaded ready replica
        with room (the EPP's scorers prefer short queues), or None while the pool is
        saturated (the request waits at the gateway)."""
        best: Replica | None = None
        load = fleet.load
        for slot in fleet.routable:
            server = fleet.records[slot].server
            if server is None:
                continue
            if (
                server.num_waiting < self.queue_depth_threshold
                and server.ctx < self.kv_cache_threshold * server.kv_capacity
                and (best is None or load[slot] < load[best.slot])
            ):
                best = server
        return best

    def describe(self) -> str:
        """``arrivals``, ``flow-control`` or ``flow-control-unobserved`` (how ``simulate --json``
        and the benchmarks name it)."""
        name = "flow-control" if self.flow_control else "arrivals"
        return name if self.observed else f"{name}-unobserved"
