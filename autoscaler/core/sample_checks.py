"""Which PromQL sample values are impossible for a signal, and why.

A sample that cannot be true — a negative request rate (a counter reset that ``rate()`` did not
absorb, a buggy exporter), ``±Inf`` (a division by a zero rate), a KV-cache usage above 1 —
is not data: taken at face value a negative rate drove both workloads of a live test to one
replica, and ``+Inf`` first scaled one up, then poisoned the learned capacity for four ticks.
:func:`sample_problem` names what is wrong; the collector then treats the signal as missing
(fail static when it is a core demand signal) and reports the reason in the snapshot's
``rejected`` list (``/v1``) and in ``llm_autoscaler_samples_rejected_total``. ``NaN`` is not a
problem here: Prometheus returns it for an idle window (0/0), which is simply "no value".

Pure functions, no I/O; the hypothesis tests feed them every kind of float.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final, Protocol

__all__ = ["FRACTION_FIELDS", "SIGNED_FIELDS", "SampleLike", "sample_problem"]


class SampleLike(Protocol):
    """One PromQL result sample as the readers of results see it (the Prometheus client's
    ``Sample`` has this shape): named here so that neither the engine layer nor the row decoder
    has to import the client."""

    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def timestamp(self) -> float: ...
    @property
    def value(self) -> float: ...


SIGNED_FIELDS: Final[frozenset[str]] = frozenset(
    {"waiting_growth_rate", "gateway_backlog_growth_rate"}
)
"""Signals that may be negative: ``deriv`` of a queue falls when it drains."""

FRACTION_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "kv_usage",
        "kv_usage_max",
        "per_replica_kv_usage",
        "gpu_memory_usage",
        "gpu_memory_usage_max",
        "per_replica_gpu_memory_usage",
    }
)
"""Signals that are a share of a whole: 0..1 (vLLM, SGLang and TRT-LLM export the KV cache so;
GPU memory is DCGM's used / (used + free))."""

_SLACK: Final = 1e-9
"""Float noise allowed around the bounds (a sum of per-pod shares may round past 1)."""


def sample_problem(field: str, value: float) -> str | None:
    """Why ``value`` cannot be a sample of ``field``; ``None`` when it can (or is NaN)."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "infinite"
    if value < -_SLACK and field not in SIGNED_FIELDS:
        return "negative"
    if field in FRACTION_FIELDS and value > 1.0 + _SLACK:
        return "above 1"
    return None
