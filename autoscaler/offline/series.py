"""Demand series from traces: what the forecasters are trained and judged on.

A forecaster in the live loop sees demand as Prometheus shows it: a rate per scrape interval. The
offline evaluation (``forecast-eval``, the benchmarks, the notebooks) must see the same thing, so
this module turns a request trace into one number per interval, *per second*:

* ``requests``: arrivals per second;
* ``prompt_tokens`` / ``decode_tokens``: prompt and output tokens per second, counted at the
  request's arrival (the moment the demand is placed, which is what the policy must anticipate);
* ``token_work``: prompt tokens plus decode tokens weighted by what they cost a replica
  (:func:`autoscaler.simulation.oracle.work_weights`), the unit the ``forecast`` policy scales on.
  Output lengths are floored at one token, as the oracle does, because every request decodes at
  least its first token.

ServeGen rate files hold rates, not requests, and the 14-day language models would expand to
10^8+ requests, so they are read as what they are: one workload per model, the window rate
(req/s) every 600 s, collection gaps kept as NaN (:func:`autoscaler.traces.servegen.
read_rate_windows` decides what a gap is). Forecasters must cope with NaN; evaluation skips it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from autoscaler.errors import InputError, UnknownNameError
from autoscaler.traces import servegen
from autoscaler.traces._parsing import PathLike
from autoscaler.traces.records import Trace

FloatArray = npt.NDArray[np.float64]

SERIES_KINDS: tuple[str, ...] = ("requests", "prompt_tokens", "decode_tokens", "token_work")
"""The values ``--series`` accepts."""
DEFAULT_REQUEST_INTERVAL_S = 15.0
"""One Prometheus scrape: the resolution the live loop forecasts at."""
SERVEGEN_INTERVAL_S = servegen.WINDOW_S
"""ServeGen's native window; a coarser interval must be a whole multiple of it."""


@dataclass(frozen=True)
class DemandSeries:
    """Demand per second, one array per workload, on a common grid of ``interval_s`` seconds.

    ``workloads`` maps a workload name (``"trace"`` for a request trace, the model name for a
    ServeGen file) to its series; index ``i`` covers ``[i * interval_s, (i + 1) * interval_s)``
    from the trace's start. NaN marks a missing interval.
    """

    path: str
    format: str
    kind: str
    interval_s: float
    workloads: dict[str, FloatArray]


def token_work_weights() -> tuple[float, float]:
    """(prefill, decode) weights of the default replica profile and SLO, as the policy uses."""
    from autoscaler.core.slo import SloSpec
    from autoscaler.perf.profiles import get_profile
    from autoscaler.simulation.oracle import work_weights

    return work_weights(get_profile(), SloSpec())


def trace_series(
    trace: Trace,
    *,
    interval_s: float = DEFAULT_REQUEST_INTERVAL_S,
    kind: str = "requests",
    weights: tuple[float, float] | None = None,
) -> FloatArray:
    """The trace's demand per second in consecutive intervals of ``interval_s`` seconds.

    Only whole intervals are kept: a trace's duration ends at its last arrival, so a trailing
    partial interval would always read low (or high, by one request in a sliver of time) and
    look like a drop the forecasters were wrong not to foresee. ``weights`` overrides the
    (prefill, decode) weights of ``token_work``.

    Raises :class:`UnknownNameError` for an unknown ``kind`` and :class:`InputError` when the
    interval is not positive or the trace is shorter than one interval.
    """
    if kind not in SERIES_KINDS:
        raise UnknownNameError("series", kind, SERIES_KINDS)
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise InputError(f"the interval must be a positive number of seconds, got {interval_s}")
    n = int(math.floor(trace.duration_s / interval_s + 1e-9))
    if n < 1:
        raise InputError(
            f"{trace.path}: the trace lasts {trace.duration_s:.1f} s, shorter than one "
            f"{interval_s:g} s interval"
        )
    prompts = trace.prompt_tokens.astype(np.float64)
    outputs = np.maximum(trace.output_tokens, 1).astype(np.float64)
    if kind == "requests":
        amount = np.ones(trace.requests)
    elif kind == "prompt_tokens":
        amount = prompts
    elif kind == "decode_tokens":
        amount = outputs
    else:
        wp, wd = weights if weights is not None else token_work_weights()
        amount = prompts * wp + outputs * wd
    idx = np.floor(trace.arrival_s / interval_s).astype(np.int64)
    keep = idx < n
    totals = np.bincount(idx[keep], weights=amount[keep], minlength=n)
    return np.asarray(totals / interval_s, dtype=np.float64)


def servegen_series(
    path: PathLike, *, model: str | None = None, interval_s: float = SERVEGEN_INTERVAL_S
) -> dict[str, FloatArray]:
    """Each ServeGen model's request rate (req/s) per interval, gaps as NaN.

    ``interval_s`` must be a whole multiple of 600 s; coarser intervals average the windows that
    are present (NaN only when all are missing), since a gap says nothing about the rate.
    ``model`` picks one model; by default every model in the file is a workload.
    """
    factor = interval_s / SERVEGEN_INTERVAL_S
    k = round(factor)
    if k < 1 or abs(factor - k) > 1e-9:
        raise InputError(
            f"a ServeGen series has {SERVEGEN_INTERVAL_S:.0f} s windows; the interval must be a "
            f"whole multiple of that, got {interval_s:g} s"
        )
    models = [model] if model is not None else servegen.list_models(path)
    if not models:
        raise InputError(f"{os.fspath(path)}: the ServeGen file has no rate windows")
    out: dict[str, FloatArray] = {}
    for name in models:
        rate = servegen.read_rate_windows(path, name).rate_rps
        if k > 1:
            n = rate.size // k
            blocks = rate[: n * k].reshape(n, k)
            present = np.isfinite(blocks)
            counts = present.sum(axis=1)
            sums = np.where(present, blocks, 0.0).sum(axis=1)
            rate = np.full(n, np.nan)
            np.divide(sums, counts, out=rate, where=counts > 0)
        out[name] = np.asarray(rate, dtype=np.float64)
    return out


def load_series(
    path: PathLike,
    fmt: str = "auto",
    *,
    interval_s: float | None = None,
    kind: str = "requests",
    servegen_model: str | None = None,
) -> DemandSeries:
    """Read any trace format into a :class:`DemandSeries`.

    ``interval_s`` defaults to 15 s for request traces (one scrape) and 600 s for ServeGen (its
    window). A ServeGen file only has request rates, so ``kind`` must be ``requests`` there.
    Raises :class:`InputError` (or a subclass) for a bad path, format, kind or interval.
    """
    from autoscaler.traces.readers import FORMATS, detect_format, read_trace

    if kind not in SERIES_KINDS:
        raise UnknownNameError("series", kind, SERIES_KINDS)
    if fmt not in FORMATS:
        raise UnknownNameError("format", fmt, FORMATS)
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise InputError(f"{name}: no such file")
    resolved = detect_format(path) if fmt == "auto" else fmt
    if resolved == servegen.FORMAT:
        if kind != "requests":
            raise InputError(
                f"{name}: a ServeGen file holds request rates only; --series {kind} needs "
                "token counts (use --series requests)"
            )
        step = SERVEGEN_INTERVAL_S if interval_s is None else interval_s
        workloads = servegen_series(path, model=servegen_model, interval_s=step)
        return DemandSeries(name, resolved, kind, step, workloads)
    step = DEFAULT_REQUEST_INTERVAL_S if interval_s is None else interval_s
    trace = read_trace(path, resolved)
    return DemandSeries(
        name, resolved, kind, step, {"trace": trace_series(trace, interval_s=step, kind=kind)}
    )
