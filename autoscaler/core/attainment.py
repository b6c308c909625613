"""Observed SLO attainment, read from latency histograms' buckets. Pure: no I/O, no clock.

The SLO is per request (:class:`~autoscaler.core.slo.SloSpec`: TTFT within a budget that grows with
the prompt, and time per output token within ``tpot_s``) at an attainment target such as 99%. A
p90 cannot see a 1-3% tail, and that tail is exactly what the target is about, so the capacity
learner watches the share of requests within the budgets itself. Engines export histograms, not
requests; the share below a budget is read off the cumulative bucket counts the way Prometheus'
``histogram_quantile`` reads a quantile: linear interpolation inside the bucket that holds the
budget (a budget on a bucket bound is exact; beyond the last finite bound, the ``+Inf`` bucket
counts as missed).

The TTFT budget is per request (it grows with the prompt) while the TTFT and prompt-size
histograms are two marginals. The share is computed as if the two were *comonotonic* (the
longest prompts have the longest TTFTs, which prefill makes nearly true below saturation): the
quantile functions of both histograms are piecewise linear in the rank, so the share of ranks
where TTFT exceeds the budget of the prompt at the same rank is computed exactly, segment by
segment (no sampling grid: a few dozen breakpoints). Holding every request to the budget of the
window's mean prompt instead, the obvious alternative, sees misses that are not there wherever
prompts vary: +3.6 points on long heavy-tailed prompts, +13.6 on long-context ramps, +21 on the
Mooncake trace. Comonotonic pairing misses some misses instead (a short prompt stuck behind a
long prefill chunk): -0.0 to -0.8 points (``benchmarks/attainment_error.py``, docs/policy.md).
The TTFT and TPOT misses add up (``miss = ttft_miss + tpot_miss``, at most 1), which counts a
request that misses both twice and so errs towards more replicas; in the simulator the exact
shares add up within 0.01 point.

TPOT must be the per-request histogram (vLLM V1's ``vllm:request_time_per_output_token_seconds``,
one observation per request, as the SLO defines it), not the per-token inter-token latency,
whose share below the budget weights a request by its length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autoscaler.core.signals import SignalSnapshot
from autoscaler.core.slo import SloSpec

Buckets = Sequence[tuple[float, float]]
"""Cumulative histogram ``(le, value)`` pairs, ascending ``le``, ``+Inf`` last (rates or counts:
only their ratios matter)."""


def share_within(buckets: Buckets, limit: float) -> float | None:
    """Share of observations at or below ``limit``, interpolated inside its bucket; None when the
    histogram is empty or malformed (no ``+Inf`` bucket, or decreasing counts)."""
    if not buckets or not math.isinf(buckets[-1][0]):
        return None
    total = buckets[-1][1]
    if not total > 0 or not math.isfinite(total):
        return None
    lower, below = 0.0, 0.0
    for le, cum in buckets:
        if cum < below - 1e-9 * total:
            return None
        if limit < le:
            if math.isinf(le):
                return min(1.0, below / total)  # past the last finite bound: counted as missed
            inside = (limit - lower) / (le - lower) if le > lower else 1.0
            return min(1.0, max(0.0, (below + (cum - below) * inside) / total))
        lower, below = le, cum
    return min(1.0, below / total)


@dataclass(frozen=True, slots=True)
class Attainment:
    """The estimated share of a window's requests that missed the SLO, and how many it covers."""

    miss: float
    """Estimated share of requests outside the TTFT or TPOT budget, 0..1."""
    requests: float
    """Requests the estimate covers (the TTFT histogram's count over the window)."""
    ttft_miss: float
    tpot_miss: float


def _segments(buckets: Buckets) -> tuple[np.ndarray, ...]:
    """The quantile function ``histogram_quantile`` computes, as linear pieces: for each bucket
    holding observations, ranks ``r0..r1`` (cumulative shares) map linearly onto its bounds
    (from the previous bound, 0 for the first; a rank in ``+Inf`` reads the highest finite
    bound). Empty buckets hold no rank, so they are no piece: the function jumps over them."""
    les = np.array([le for le, _ in buckets], dtype=float)
    cum = np.array([c for _, c in buckets], dtype=float)
    top = float(les[-2]) if les.size > 1 else 0.0
    hi = np.where(np.isinf(les), top, les)
    lo = np.concatenate(([0.0], hi[:-1]))
    r1 = cum / cum[-1]
    r0 = np.concatenate(([0.0], r1[:-1]))
    keep = r1 - r0 > 1e-12  # a bucket holding less than 1e-12 of the requests is noise
    return r0[keep], r1[keep], lo[keep], hi[keep]


def _values(pieces: tuple[np.ndarray, ...], a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """Values at ``a`` and ``b`` of the piece that covers each interval ``(a, b)``."""
    r0, r1, v0, v1 = pieces
    i = np.minimum(np.searchsorted(r1, (a + b) / 2.0, side="left"), r1.size - 1)
    slope = (v1[i] - v0[i]) / (r1[i] - r0[i])
    return v0[i] + slope * (a - r0[i]), v0[i] + slope * (b - r0[i])


def ttft_miss_share(ttft: Buckets, prompts: Buckets, slo: SloSpec) -> float | None:
    """Share of requests whose TTFT exceeds *their own* budget, pairing TTFT and prompt size by
    rank (see the module docstring); None when either histogram is empty or malformed."""
    if share_within(ttft, 0.0) is None or share_within(prompts, 0.0) is None:
        return None
    pt, pp = _segments(ttft), _segments(prompts)
    u = np.union1d(np.concatenate(pt[:2]), np.concatenate(pp[:2]))
    a, b = u[:-1], u[1:]
    wide = b > a
    a, b = a[wide], b[wide]
    ta, tb = _values(pt, a, b)
    pa, pb = _values(pp, a, b)
    per_1k = slo.ttft_per_1k_s / 1000.0
    d0 = ta - (slo.ttft_s + per_1k * pa)
    d1 = tb - (slo.ttft_s + per_1k * pb)
    crossing = np.abs(np.where(d0 > 0, d0, d1)) / np.maximum(np.abs(d0 - d1), 1e-300)
    part = np.where((d0 > 0) & (d1 > 0), 1.0, np.where((d0 <= 0) & (d1 <= 0), 0.0, crossing))
    return float(min(1.0, max(0.0, float(((b - a) * part).sum()))))


def observed_attainment(snap: SignalSnapshot, slo: SloSpec, window_s: float) -> Attainment | None:
    """The window's estimated misses from the snapshot's TTFT, prompt-size and per-request TPOT
    buckets.

    None when any of them is missing or empty: a share of requests from one of the two budgets
    alone would call a fleet that misses the other one healthy.
    """
    if not (snap.ttft_buckets and snap.tpot_buckets and snap.prompt_buckets):
        return None
    ttft_miss = ttft_miss_share(snap.ttft_buckets, snap.prompt_buckets, slo)
    tpot_ok = share_within(snap.tpot_buckets, slo.tpot_s)
    if ttft_miss is None or tpot_ok is None:
        return None
    tpot_miss = 1.0 - tpot_ok
    requests = snap.ttft_buckets[-1][1] * window_s
    return Attainment(min(1.0, ttft_miss + tpot_miss), requests, ttft_miss, tpot_miss)
