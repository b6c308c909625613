"""The signal snapshot: everything a policy may know about one workload at one tick.

The live service builds it from PromQL results and the Kubernetes API; the simulator builds it
from emulated /metrics scrapes (15 s samples, ``rate()`` over 1 m, ``histogram_quantile`` over the
engine's buckets) and replica states as the API would show them. Policies only ever receive this
type, so they cannot tell simulation from production.

A field is ``None`` when the engine does not export the signal or the data is missing; policies
must say which fallback they used.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ReplicaCounts:
    """Replica states as the Kubernetes API shows them (pods of the workload's selector)."""

    spec: int
    """Desired replicas on the scale target (Deployment ``spec.replicas``)."""
    ready: int
    """Running and Ready (serving)."""
    starting: int
    """Scheduled on a node, not Ready yet (image pull, engine init)."""
    pending: int
    """Not scheduled yet (waiting for a node or a free GPU)."""
    terminating: int
    """Deleted, still draining in-flight requests."""
    oldest_unready_age_s: float = 0.0
    """Age of the oldest pending or starting replica; drives the pending timeout."""
    starting_ages_s: tuple[float, ...] = ()
    """Ages of pending and starting replicas, oldest first (so a policy can time them out)."""


@dataclass(frozen=True, slots=True)
class SignalSnapshot:
    """One workload at one tick. Rates are fleet-wide, per second, over the rate window."""

    workload: str
    timestamp: float
    replicas: ReplicaCounts
    data_age_s: float = 0.0
    """Age of the newest metric sample; stale data must never cause a scale-down."""
    stale: bool = False
    """True when the collector judged the data too old or missing: fail static."""

    # demand
    request_rate: float | None = None
    prompt_tokens_rate: float | None = None
    generation_tokens_rate: float | None = None
    mean_prompt_tokens: float | None = None
    p90_prompt_tokens: float | None = None
    mean_output_tokens: float | None = None
    waiting_growth_rate: float | None = None
    """d(waiting requests)/dt over the rate window: completions saturate under overload, so
    demand = completions + queue growth."""

    # latency (seconds)
    ttft_p90_s: float | None = None
    tpot_p90_s: float | None = None
    e2e_p95_s: float | None = None
    queue_time_p90_s: float | None = None
    ttft_buckets: tuple[tuple[float, float], ...] = field(default=())
    """TTFT histogram over the rate window: cumulative per-second rates per upper bound ``le``,
    ascending, ``+Inf`` last (as ``sum by (le) (rate(..._bucket[1m]))`` gives); empty when not
    exported. With ``tpot_buckets`` it gives the observed SLO attainment
    (:mod:`autoscaler.core.attainment`)."""
    tpot_buckets: tuple[tuple[float, float], ...] = field(default=())
    """Per-request time-per-output-token histogram, as ``ttft_buckets`` (vLLM V1's
    ``vllm:request_time_per_output_token_seconds``; not the per-token inter-token latency)."""
    prompt_buckets: tuple[tuple[float, float], ...] = field(default=())
    """Prompt-size (tokens) histogram, as ``ttft_buckets``: pairs each TTFT with its budget."""
    queue_time_mean_s: float | None = None
    """Mean queue time per request, where the engine has no histogram but a cumulative duration
    counter (Triton); the latency guard reads it when there is no p90."""
    e2e_mean_s: float | None = None
    """Mean end-to-end latency per request, from the same kind of counter (Triton)."""

    # saturation
    waiting: float | None = None
    """Waiting (queued) requests summed over replicas."""
    running: float | None = None
    """Running (batched) requests summed over replicas."""
    kv_usage: float | None = None
    """Mean KV-cache usage over ready replicas, 0..1."""
    kv_usage_max: float | None = None
    preemption_rate: float | None = None
    gpu_memory_usage: float | None = None
    """GPU framebuffer in use, 0..1, mean over ready replicas of each replica's fullest GPU
    (dcgm-exporter ``used / (used + free)``, joined to the replica by its ``namespace`` and
    ``pod`` labels). Flat where the engine preallocates its KV pool (vLLM, SGLang); it moves
    with load where the engine does not."""
    gpu_memory_usage_max: float | None = None
    """The fullest replica's ``gpu_memory_usage``: what the memory-pressure guard reads."""

    # gateway (the inference gateway's endpoint picker, :mod:`autoscaler.engines.gateway`);
    # all None where the workload has no gateway configured
    gateway_request_rate: float | None = None
    """Requests/s the gateway passed to the fleet: its request counter counts a request once it
    is admitted (out of flow control) and scheduled, not when it is served."""
    gateway_backlog: float | None = None
    """Requests held in the gateway's flow-control queue, which no model server's queue shows."""
    gateway_backlog_growth_rate: float | None = None
    """d(gateway backlog)/dt over the rate window."""
    gateway_mean_prompt_tokens: float | None = None
    """Mean input tokens per request from the gateway's token histogram (``_sum / _count``)."""
    gateway_mean_output_tokens: float | None = None

    # state
    time_to_ready_s: float | None = None
    """Observed time from creation to Ready of recent replicas (the lead time)."""
    per_replica_waiting: tuple[float, ...] = field(default=())
    """Waiting requests of each ready replica (as ``sum by (pod)`` would give)."""
    per_replica_running: tuple[float, ...] = field(default=())
    per_replica_kv_usage: tuple[float, ...] = field(default=())
    per_replica_gpu_memory_usage: tuple[float, ...] = field(default=())
    """Each replica's fullest GPU, 0..1, by pod name (replicas without a DCGM row are absent)."""
    rejected: tuple[str, ...] = field(default=())
    """Samples that were impossible (negative, infinite, a share above 1) and so left out, as
    ``field=value: problem``; a rejected core demand signal makes the snapshot stale."""

    def demand_requests_per_s(self) -> float | None:
        """Completions plus queue growth, the demand estimate DESIGN.md asks for."""
        if self.request_rate is None:
            return None
        return max(0.0, self.request_rate + (self.waiting_growth_rate or 0.0))

    def arrival_requests_per_s(self) -> float | None:
        """Requests/s arriving at the gateway: those it let through plus its backlog's growth.
        None where no gateway is configured (or its counter is missing this tick)."""
        if self.gateway_request_rate is None:
            return None
        return max(0.0, self.gateway_request_rate + (self.gateway_backlog_growth_rate or 0.0))


def workload_key(namespace: str, name: str) -> str:
    """``namespace/name``: how a snapshot (:attr:`SignalSnapshot.workload`), the store and the
    servers name a workload; one definition for the live loop and the offline report alike."""
    return f"{namespace}/{name}"
