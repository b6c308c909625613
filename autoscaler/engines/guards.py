"""Which of the policy's guards each engine's metrics make live: the one table.

The ``forecast`` policy adds candidates to its forecast (``autoscaler.policies.forecast``) that
each read certain snapshot fields; an engine that does not export a field leaves the candidate
idle. This module derives, from an :class:`~autoscaler.engines.base.EngineProfile` alone, what
each guard reads on that engine:

* **latency**: the worst of TTFT p90 and queue time p90 over their budgets (queue time's mean
  per request where the engine has no histogram: Triton);
* **saturation**: KV-cache usage, the queue per replica, and - where GPU memory is not one
  preallocated KV pool whose use the engine exports (``memory_in_kv_pool``) - the fullest
  replica's GPU memory from dcgm-exporter (the memory-pressure guard);
* **demand**: the token counters, else the request rate times the seed's mean sizes;
* **capacity**: the latency ratios the capacity learner is taught with (TTFT, queue time and
  TPOT p90); without any it keeps the profile's seed.

``docs/engines.md`` is generated from :func:`markdown_table` (a test keeps it in sync) and ``/v1``
shows each workload's row (:func:`guards_of`), so the docs and the API cannot disagree with the
code. Pure data, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from autoscaler.engines.base import EngineProfile, Signal
from autoscaler.engines.promql import MEAN_FIELDS

__all__ = ["DCGM_FIELD", "Guard", "guards_of", "markdown_table", "memory_guard"]


class Guard(StrEnum):
    """A candidate of the policy (or its capacity learner) that needs certain signals."""

    LATENCY = "latency"
    SATURATION = "saturation"
    DEMAND = "demand"
    CAPACITY = "capacity"


DCGM_FIELD = "gpu_memory_usage_max"
"""What the memory-pressure guard reads: the fullest replica's GPU memory (dcgm-exporter)."""

_LATENCY: tuple[tuple[Signal, str], ...] = (
    (Signal.TTFT, "ttft_p90_s"),
    (Signal.QUEUE_TIME, "queue_time_p90_s"),
)
_LEARNING: tuple[tuple[Signal, str], ...] = (*_LATENCY, (Signal.TPOT, "tpot_p90_s"))
_TOKENS: tuple[tuple[Signal, str], ...] = (
    (Signal.PROMPT_TOKENS_RATE, "prompt_tokens_rate"),
    (Signal.GENERATION_TOKENS_RATE, "generation_tokens_rate"),
)
_REQUESTS_TIMES_SEED = "request_rate x seed mean sizes"


def memory_guard(profile: EngineProfile) -> bool:
    """True when the memory-pressure guard is live: GPU memory is not all one exported KV pool."""
    return not profile.memory_in_kv_pool


def _exported(profile: EngineProfile, pairs: Iterable[tuple[Signal, str]]) -> tuple[str, ...]:
    """The fields of the exported signals; a latency read as a mean per request (no histogram,
    :attr:`~autoscaler.engines.base.Series.mean_of`) names its mean field."""
    out = []
    for signal, name in pairs:
        if signal in profile.missing:
            continue
        if any(s.mean_of for s in profile.series(signal)) and signal in MEAN_FIELDS:
            name = MEAN_FIELDS[signal]
        out.append(name)
    return tuple(out)


def guards_of(profile: EngineProfile) -> dict[Guard, tuple[str, ...]]:
    """What each guard reads on ``profile``'s engine (snapshot fields); empty: not live."""
    saturation: list[str] = []
    if Signal.KV_USAGE not in profile.missing:
        saturation.append("kv_usage")
    if Signal.WAITING not in profile.missing:
        saturation.append("waiting")
    if memory_guard(profile):
        saturation.append(DCGM_FIELD)
    demand = _exported(profile, _TOKENS)
    if len(demand) < len(_TOKENS) and Signal.REQUEST_RATE not in profile.missing:
        demand = (*demand, _REQUESTS_TIMES_SEED)
    return {
        Guard.LATENCY: _exported(profile, _LATENCY),
        Guard.SATURATION: tuple(saturation),
        Guard.DEMAND: demand,
        Guard.CAPACITY: _exported(profile, _LEARNING),
    }


def markdown_table(profiles: Iterable[EngineProfile]) -> str:
    """One row per engine, one column per guard: what it reads, or "-" where it is idle."""
    head = "| engine | " + " | ".join(g.value for g in Guard) + " |"
    rule = "| --- |" + " --- |" * len(Guard)
    rows = [head, rule]
    for p in profiles:
        guards = guards_of(p)
        cells = [", ".join(f if " " in f else f"`{f}`" for f in guards[g]) or "-" for g in Guard]
        rows.append(f"| `{p.name}` | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
