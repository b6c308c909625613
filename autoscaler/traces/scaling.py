"""``--rate-scale K``: make a trace K times as busy while keeping its shape and its duration.

DESIGN.md fixes the method: overlay K copies of the trace, each shifted by a seeded jitter of a
few seconds, and reach a fractional K by seeded thinning of the last copy. Copies rather than
time compression because compression would shorten the run and speed up the diurnal shape
(changing what a forecaster sees); copies rather than resampling because they keep every
request's real (prompt, output) pair and the trace's minute-by-minute profile.

Choices within that method:

* copy 0 is not shifted, so K = 1 returns the trace itself; copies 1, 2, ... are shifted by
  ``uniform(0, jitter_s)`` each (5 s by default), enough to decorrelate sub-second bursts
  between copies, too little to blur the minute-scale shape;
* a shifted arrival past the end wraps around to the start (modulo the duration), so the
  duration and the mean rate are kept exactly and the last seconds are not left thinner;
* the fractional part keeps each request of the last copy with probability ``frac(K)``; for
  K < 1 that copy is copy 0, so the result is a plain thinning (its time axis is kept even if the
  first request was dropped).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from autoscaler.errors import InputError
from autoscaler.traces.records import Trace

DEFAULT_JITTER_S = 5.0


def scale_rate(
    trace: Trace, k: float, seed: int = 0, *, jitter_s: float = DEFAULT_JITTER_S
) -> Trace:
    """Return ``trace`` with its request rate multiplied by ``k`` (> 0), same duration.

    The result has about ``k x trace.requests`` requests (exactly ``floor(k) x n`` plus a
    binomial share of the last copy), is sorted by arrival, has ``rate_scale`` multiplied by
    ``k`` and is the same for the same seed. Raises :class:`InputError` for ``k <= 0`` or a
    non-finite ``k``.
    """
    if not (math.isfinite(k) and k > 0):
        raise InputError(f"--rate-scale must be > 0, got {k}")
    if not (math.isfinite(jitter_s) and jitter_s >= 0):
        raise InputError(f"rate-scale jitter must be >= 0 seconds, got {jitter_s}")
    n = trace.requests
    whole = math.floor(k)
    fraction = k - whole
    copies = whole + (1 if fraction > 1e-12 else 0)
    rng = np.random.default_rng(seed)
    shifts = np.concatenate([[0.0], rng.uniform(0.0, jitter_s, max(copies - 1, 0))])

    arrival = np.tile(trace.arrival_s, copies) + np.repeat(shifts, n)
    duration = trace.duration_s
    if duration > 0:
        late = arrival > duration
        arrival[late] = np.mod(arrival[late], duration)
    else:  # a single instant: jitter would move requests out of a zero-length trace
        arrival = np.tile(trace.arrival_s, copies)
    keep = np.ones(arrival.size, dtype=np.bool_)
    if copies > whole:  # thin the last copy to the fractional part
        keep[(copies - 1) * n :] = rng.random(n) < fraction

    arrival = arrival[keep]
    order = np.argsort(arrival, kind="stable")
    return replace(
        trace,
        arrival_s=arrival[order],
        prompt_tokens=np.tile(trace.prompt_tokens, copies)[keep][order],
        output_tokens=np.tile(trace.output_tokens, copies)[keep][order],
        rate_scale=trace.rate_scale * k,
    )
