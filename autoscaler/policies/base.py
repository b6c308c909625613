"""The policy contract and the context every policy is built with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

from autoscaler.core.recommendation import Recommendation
from autoscaler.core.replica_states import DEFAULT_LEAD_TIME_S, DEFAULT_PENDING_TIMEOUT_S
from autoscaler.core.signals import SignalSnapshot
from autoscaler.core.slo import SloSpec
from autoscaler.hpa.spec import HpaSpec
from autoscaler.perf.model import PerfProfile

Actuation = Literal["hpa", "native"]

GPU_MEMORY_PRESSURE: Final = 0.95
"""GPU memory share (a replica's fullest GPU) at which the memory-pressure guard counts the replica
as pressed: above vLLM's default preallocation (0.9), so a preallocated pool alone does not trip
it, and below the last few percent where CUDA allocations start to fail."""


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """What a run gives every policy alike: the SLO, the replica bounds and the tick.

    ``replica_token_capacity`` is the engine profile's seed for one replica's token-work capacity
    at the SLO (tokens/s of weighted work); policies that learn capacity start from it and must
    stay good when it is off by +-30%. ``prefill_weight`` and ``decode_weight`` convert token
    counts into that work unit. ``gpus_per_replica`` is the tensor-parallel degree.
    """

    slo: SloSpec
    max_replicas: int
    min_replicas: int = 1
    tick_s: float = 15.0
    replica_token_capacity: float = 10_000.0
    prefill_weight: float = 1.0
    decode_weight: float = 1.0
    gpus_per_replica: int = 4
    default_lead_time_s: float = DEFAULT_LEAD_TIME_S
    seed_mean_prompt_tokens: float = 1154.0
    """Mean prompt size assumed where an engine exports no token counters (fallbacks): the
    mean of the length mixture fitted to ``azure2023_conv.csv`` (autoscaler.traces.synthetic)."""
    seed_mean_output_tokens: float = 212.0
    """Mean output size for the same fallbacks, same source."""
    pending_timeout_s: float = DEFAULT_PENDING_TIMEOUT_S
    """How long a replica may be pending or starting before it stops counting as capacity on the
    way (``service.pending_timeout_s`` live, the same default in the simulator)."""
    gpu_memory_guard: bool = False
    """Whether the memory-pressure guard is live: the engine's GPU memory is not one KV pool
    whose use it exports (``autoscaler.engines.guards.memory_guard``; off in the simulator,
    whose replicas are vLLM's)."""
    gpu_memory_pressure: float = GPU_MEMORY_PRESSURE
    """GPU memory share at which the memory-pressure guard counts a replica as pressed."""
    profile: PerfProfile | None = None
    """The replica's performance profile, for policies that size capacity to the live request mix
    (``forecast``: :func:`autoscaler.perf.capacity.mix_capacity`); None keeps the seed as is."""
    peak_replicas: int | None = None
    """Only for ``static-peak``: the replica count covering the trace's peak (from the oracle)."""


class Policy(Protocol):
    """A scaling policy. ``recommend`` is called once per tick with that tick's snapshot."""

    name: str
    actuation: Actuation

    def hpa_spec(self) -> HpaSpec | None:
        """The HPA metrics and behaviour for ``actuation == "hpa"``; None for native policies."""
        ...

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        """Desired replicas (native) or published metrics (hpa), with reasons; pure, no I/O."""
        ...
