"""The figures of one run (DESIGN.md, "Figures per run") and their mean over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from autoscaler.core.slo import SloSpec
from autoscaler.simulation.engine import RunOutput

FIGURES = (
    "slo_attainment",
    "gpu_hours",
    "oracle_gpu_hours",
    "work_bound_gpu_hours",
    "cold_starts",
    "warm_starts",
    "requests",
    "ttft_p50_s",
    "ttft_p90_s",
    "ttft_p99_s",
    "tpot_p90_s",
    "max_replicas",
    "replica_changes",
)


def _pct(values: npt.NDArray[np.float64], q: float) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.percentile(values, q)) if values.size else None


def requests_met(out: RunOutput, slo: SloSpec) -> npt.NDArray[np.bool_]:
    """Per request of the run, whether it met the SLO (rejected, dropped and unfinished
    requests did not: their times are NaN)."""
    reqs = out.reqs
    ttft = reqs.column("first_token") - reqs.arrival_arr
    e2e = reqs.column("finished") - reqs.arrival_arr
    return slo.met(reqs.prompt_arr, reqs.output_arr, ttft, e2e)


def run_figures(
    out: RunOutput, slo: SloSpec, *, oracle_gpu_hours: float, work_bound_gpu_hours: float
) -> dict[str, float | int | None]:
    """Score one run from its warm-up's end (``out.warmup_s``; 0 scores everything): the
    requests arriving from then on, the GPU time from then on. Rejected, dropped and unfinished
    requests count as SLO misses. ``oracle_gpu_hours`` and ``work_bound_gpu_hours`` must cover
    the same span."""
    reqs = out.reqs
    scored = reqs.arrival_arr >= out.warmup_s
    ttft = (reqs.column("first_token") - reqs.arrival_arr)[scored]
    e2e = (reqs.column("finished") - reqs.arrival_arr)[scored]
    met = requests_met(out, slo)[scored]
    outputs = reqs.output_arr[scored]
    multi = outputs > 1
    tpot = (e2e[multi] - ttft[multi]) / (outputs[multi] - 1)
    n = int(scored.sum())
    return {
        "slo_attainment": float(met.mean()) if n else 1.0,
        "gpu_hours": out.fleet.gpu_seconds(out.duration_s, start=out.warmup_s) / 3600.0,
        "oracle_gpu_hours": oracle_gpu_hours,
        "work_bound_gpu_hours": work_bound_gpu_hours,
        "cold_starts": out.fleet.cold_starts,
        "warm_starts": out.fleet.warm_starts,
        "requests": n,
        "ttft_p50_s": _pct(ttft, 50),
        "ttft_p90_s": _pct(ttft, 90),
        "ttft_p99_s": _pct(ttft, 99),
        "tpot_p90_s": _pct(tpot, 90),
        "max_replicas": out.max_replicas,
        "replica_changes": out.replica_changes,
    }


def mean_over_seeds(
    runs: Sequence[dict[str, float | int | None]],
) -> dict[str, object]:
    """Mean of each figure over seeds, plus ``spread`` (max - min) of each figure."""
    merged: dict[str, object] = {}
    spread: dict[str, float | None] = {}
    for key in FIGURES:
        values = [r[key] for r in runs if r.get(key) is not None]
        nums = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not nums:
            merged[key] = None
            spread[key] = None
            continue
        mean = sum(nums) / len(nums)
        merged[key] = round(mean, 6)
        spread[key] = round(max(nums) - min(nums), 6)
    merged["seeds"] = len(runs)
    merged["spread"] = spread
    return merged
