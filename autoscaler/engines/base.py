"""The declarative shape of an engine profile.

A profile names, for each signal of DESIGN.md "Signals", the Prometheus series that carry it
(:class:`Series`, preferred first; alternatives are joined with PromQL ``or`` so that one profile
covers several generations of names), the histogram's default buckets, the label that names the
model, and the signals the engine does not export (``missing``) with the documented fallback a
policy uses instead (:class:`Fallback`). Profiles hold data only; PromQL is built in
:mod:`autoscaler.engines.promql`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum


class Signal(StrEnum):
    """One signal of DESIGN.md "Signals" that a profile can map to series."""

    # counters (rate per second)
    REQUEST_RATE = "request_rate"
    PROMPT_TOKENS_RATE = "prompt_tokens_rate"
    GENERATION_TOKENS_RATE = "generation_tokens_rate"
    PREEMPTIONS = "preemptions"
    # histograms
    TTFT = "ttft"
    TPOT = "tpot"
    E2E = "e2e"
    QUEUE_TIME = "queue_time"
    PROMPT_TOKENS = "prompt_tokens"
    REQUEST_TPOT = "request_tpot"
    """Time per output token, one observation per request (the SLO's own definition)."""
    # gauges
    WAITING = "waiting"
    RUNNING = "running"
    KV_USAGE = "kv_usage"
    GPU_MEMORY_USED = "gpu_memory_used"
    GPU_MEMORY_FREE = "gpu_memory_free"


class Kind(Enum):
    """How a signal's series are read: ``rate()`` of a counter, a histogram, or a gauge."""

    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


SIGNAL_KIND: dict[Signal, Kind] = {
    Signal.REQUEST_RATE: Kind.COUNTER,
    Signal.PROMPT_TOKENS_RATE: Kind.COUNTER,
    Signal.GENERATION_TOKENS_RATE: Kind.COUNTER,
    Signal.PREEMPTIONS: Kind.COUNTER,
    Signal.TTFT: Kind.HISTOGRAM,
    Signal.TPOT: Kind.HISTOGRAM,
    Signal.E2E: Kind.HISTOGRAM,
    Signal.QUEUE_TIME: Kind.HISTOGRAM,
    Signal.PROMPT_TOKENS: Kind.HISTOGRAM,
    Signal.REQUEST_TPOT: Kind.HISTOGRAM,
    Signal.WAITING: Kind.GAUGE,
    Signal.RUNNING: Kind.GAUGE,
    Signal.KV_USAGE: Kind.GAUGE,
    Signal.GPU_MEMORY_USED: Kind.GAUGE,
    Signal.GPU_MEMORY_FREE: Kind.GAUGE,
}
"""The kind of every signal (fixed: a profile only chooses names)."""


@dataclass(frozen=True, slots=True)
class Series:
    """One Prometheus series family as exposed on /metrics.

    For a counter this is the exposed sample name (``vllm:request_success_total``; TGI and Triton
    counters have no ``_total``; a histogram's ``..._count`` or ``..._sum`` also counts). For a
    histogram it is the family name without ``_bucket``, and ``buckets`` are the engine's default
    upper bounds (``+Inf`` implied; empty when they depend on the engine's configuration).
    """

    name: str
    matchers: tuple[tuple[str, str], ...] = ()
    """Equality matchers selecting the series, e.g. ``(("request_type", "waiting"),)``."""
    buckets: tuple[float, ...] = ()
    divide_by: str = ""
    """A gauge read as a share: this series over ``divide_by`` (same labels, same matchers),
    e.g. TGI's tokens reserved by the batch over its token pool."""
    mean_of: str = ""
    """For a latency signal without a histogram: this series is a counter summing the duration
    over requests, read as its mean per request (its rate over the rate of the counter
    ``mean_of``), times ``scale``. Triton's ``nv_inference_queue_duration_us`` over
    ``nv_inference_request_success``: no tail quantile, the mean."""
    scale: float = 1.0
    """Multiplies a ``mean_of`` mean into seconds (1e-6 for Triton's microseconds)."""


@dataclass(frozen=True, slots=True)
class Fallback:
    """What a policy uses when a profile does not export ``signal``.

    ``uses`` names the other signals (or outside sources: ``capacity_model``, ``dcgm``, ``engine``)
    the estimate is built from; ``description`` is the documented rule.
    """

    signal: Signal
    uses: tuple[Signal | str, ...]
    description: str


CAPACITY_MODEL = "capacity_model"
"""Outside source: the learned per-replica capacity model (perf profile seeded)."""
DCGM = "dcgm"
"""Outside source: the ``dcgm`` profile scraped from dcgm-exporter on the workload's nodes."""
ENGINE = "engine"
"""Outside source: the workload's engine profile (for the ``dcgm`` profile)."""
NONE = "none"
"""No replacement: the description says what the policy does without the signal."""


DEFAULT_FALLBACKS: dict[Signal, Fallback] = {
    f.signal: f
    for f in (
        Fallback(
            Signal.TTFT,
            (Signal.QUEUE_TIME,),
            "The latency guard and the capacity learner read queue time (part of TTFT: its p90, "
            "else its mean per request) against the TTFT budget, with no prefill time added: "
            "the guard acts once the queue alone fills the budget.",
        ),
        Fallback(
            Signal.TPOT,
            (CAPACITY_MODEL,),
            "TPOT is no guard anywhere (it is observed at completion, after the load that "
            "shaped it); the capacity learner learns from TTFT and queue time alone.",
        ),
        Fallback(
            Signal.E2E,
            (NONE,),
            "Not read by the policy; /v1 shows it where the engine exports it.",
        ),
        Fallback(
            Signal.QUEUE_TIME,
            (Signal.TTFT,),
            "The latency guard and the capacity learner read TTFT p90 alone (queue time is part "
            "of it).",
        ),
        Fallback(
            Signal.PROMPT_TOKENS,
            (Signal.PROMPT_TOKENS_RATE, Signal.REQUEST_RATE, CAPACITY_MODEL),
            "Mean prompt size = prompt tokens rate / request rate (a measurement), else the "
            "seed's mean; no p90, so the TTFT budget has no per-prompt allowance.",
        ),
        Fallback(
            Signal.REQUEST_TPOT,
            (CAPACITY_MODEL,),
            "No per-request TPOT histogram, so the SLO attainment is not observed: the capacity "
            "learner fits the p90 latency ratios the engine has (TTFT, queue time, TPOT, or "
            "their own fallbacks) instead.",
        ),
        Fallback(
            Signal.PROMPT_TOKENS_RATE,
            (Signal.REQUEST_RATE, CAPACITY_MODEL),
            "Request rate x the seed's mean prompt tokens (demand counted in requests only).",
        ),
        Fallback(
            Signal.GENERATION_TOKENS_RATE,
            (Signal.REQUEST_RATE, CAPACITY_MODEL),
            "Request rate x the seed's mean output tokens (demand counted in requests only).",
        ),
        Fallback(
            Signal.PREEMPTIONS,
            (Signal.WAITING, Signal.RUNNING),
            "Treated as unknown (not zero) and not read by the policy: the queue and the KV "
            "signal (or its own fallback) carry the memory pressure.",
        ),
        Fallback(
            Signal.KV_USAGE,
            (DCGM, Signal.WAITING),
            "The saturation guard's queue (> 32 waiting per replica) and, where GPU memory is not "
            "one exported KV pool, the memory-pressure guard on DCGM framebuffer used / "
            "(used + free) with a building queue (autoscaler.engines.guards).",
        ),
        Fallback(
            Signal.WAITING,
            (NONE,),
            "No replacement: demand is completions alone (no queue growth, so it under-counts "
            "under overload) and the queue guard and backlog see nothing; KV usage and the "
            "latency guard remain.",
        ),
        Fallback(
            Signal.RUNNING,
            (NONE,),
            "No replacement: the running batch's growth counts as zero in demand.",
        ),
        Fallback(
            Signal.REQUEST_RATE,
            (Signal.GENERATION_TOKENS_RATE, CAPACITY_MODEL),
            "Generation tokens rate / the seed's mean output tokens.",
        ),
        Fallback(
            Signal.GPU_MEMORY_USED,
            (DCGM,),
            "Read from the dcgm profile (dcgm-exporter), joined to the engine's replicas by pod.",
        ),
        Fallback(
            Signal.GPU_MEMORY_FREE,
            (DCGM,),
            "Read from the dcgm profile (dcgm-exporter), joined to the engine's replicas by pod.",
        ),
    )
}
"""The policy's fallback for each signal when a profile does not override it."""


@dataclass(frozen=True, slots=True)
class EngineProfile:
    """Where one engine's /metrics carry each signal. Declarative: data only.

    Each signal field is a tuple of :class:`Series`, preferred first; an empty tuple means the
    engine does not export the signal, and the signal must then be listed in ``missing``
    (checked in ``__post_init__``), with its fallback in ``fallbacks`` or
    :data:`DEFAULT_FALLBACKS`.
    """

    name: str
    description: str
    reference: str
    """Where the names were verified (section of ``../shared/engines/METRICS.md``)."""
    model_labels: tuple[str, ...]
    """Labels naming the served model, preferred first (empty when the engine has none)."""
    missing: frozenset[Signal]
    # counters
    request_rate: tuple[Series, ...] = ()
    prompt_tokens_rate: tuple[Series, ...] = ()
    generation_tokens_rate: tuple[Series, ...] = ()
    preemptions: tuple[Series, ...] = ()
    # histograms
    ttft: tuple[Series, ...] = ()
    tpot: tuple[Series, ...] = ()
    e2e: tuple[Series, ...] = ()
    queue_time: tuple[Series, ...] = ()
    prompt_tokens: tuple[Series, ...] = ()
    request_tpot: tuple[Series, ...] = ()
    # gauges
    waiting: tuple[Series, ...] = ()
    running: tuple[Series, ...] = ()
    kv_usage: tuple[Series, ...] = ()
    gpu_memory_used: tuple[Series, ...] = ()
    gpu_memory_free: tuple[Series, ...] = ()
    fallbacks: tuple[Fallback, ...] = field(default=())
    """Profile-specific fallbacks; they override :data:`DEFAULT_FALLBACKS` for their signal."""
    memory_in_kv_pool: bool = False
    """True when the engine takes (nearly) all of its GPUs' memory as one KV pool at start and
    exports that pool's use (vLLM's ``gpu_memory_utilization``, SGLang's
    ``mem_fraction_static``): GPU framebuffer use is then flat and says nothing the KV gauge
    does not. False elsewhere, and the memory-pressure guard reads GPU memory from DCGM
    (:mod:`autoscaler.engines.guards`)."""

    def __post_init__(self) -> None:
        for signal in Signal:
            exported = bool(self.series(signal))
            if exported == (signal in self.missing):
                state = "declares series for" if exported else "has no series for"
                raise ValueError(
                    f"engine profile {self.name!r} {state} {signal.value!r} but "
                    f"{'lists' if exported else 'does not list'} it in missing"
                )

    def series(self, signal: Signal) -> tuple[Series, ...]:
        """The series of ``signal``, preferred first (empty when missing)."""
        value: tuple[Series, ...] = getattr(self, signal.value)
        return value

    def exported(self) -> tuple[Signal, ...]:
        """The signals this engine exports, in :class:`Signal` order."""
        return tuple(s for s in Signal if s not in self.missing)

    def fallback(self, signal: Signal) -> Fallback:
        """The documented fallback for a missing ``signal``."""
        for f in self.fallbacks:
            if f.signal == signal:
                return f
        return DEFAULT_FALLBACKS[signal]

    def metric_names(self) -> frozenset[str]:
        """Every series name the profile reads (histograms without ``_bucket``)."""
        names = {s.name for signal in Signal for s in self.series(signal)}
        names |= {s.divide_by for signal in Signal for s in self.series(signal) if s.divide_by}
        return frozenset(names)


ENGINE_SIGNALS: frozenset[Signal] = frozenset(Signal) - {
    Signal.GPU_MEMORY_USED,
    Signal.GPU_MEMORY_FREE,
}
"""Signals an inference engine exports itself (GPU memory comes from DCGM)."""


def one_two_five(limit: float) -> tuple[float, ...]:
    """vLLM's ``build_1_2_5_buckets``: 1, 2, 5, 10, 20, 50, ... up to ``limit``."""
    out: list[float] = []
    scale = 1.0
    while True:
        for m in (1.0, 2.0, 5.0):
            v = m * scale
            if v > limit:
                return tuple(out)
            out.append(v)
        scale *= 10.0
