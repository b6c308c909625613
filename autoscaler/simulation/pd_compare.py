"""Aggregated vs disaggregated for one workload's history: GPU-hours at the SLO for each, and
the prefill:decode ratio to run at.

Both sides are clairvoyant yardsticks over the same trace, so the comparison is about the
fleet's shape, not about any policy: the aggregated fleet oracle
(:mod:`~autoscaler.simulation.fleet_oracle`) against the two-pool oracle
(:mod:`~autoscaler.simulation.pd_oracle`), each the cheapest per-minute plan that meets the SLO
with zero start time. The recommended ratio range is the 10th to 90th percentile of the two-pool
plan's prefill:decode replica ratio over the trace's minutes: the ratio a role-ratio scaler
(AIBrix StormService, Kthena) would have to hold, and how much it moves.

:func:`comparison_markdown` is the section ``report`` can print for a workload's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoscaler.core.slo import SloSpec
from autoscaler.perf.model import PerfProfile
from autoscaler.perf.shapes import model_shape
from autoscaler.simulation.fleet_oracle import fleet_oracle
from autoscaler.simulation.oracle import replica_capacity, work_weights
from autoscaler.simulation.pd_oracle import PdOracle, pd_oracle
from autoscaler.simulation.pd_replicas import DEFAULT_LINK_GBPS
from autoscaler.traces.records import Trace


@dataclass(frozen=True, slots=True)
class PdComparison:
    aggregated_gpu_hours: float
    disaggregated_gpu_hours: float
    prefill_gpu_hours: float
    decode_gpu_hours: float
    ratio_low: float
    """10th percentile over minutes of prefill replicas / decode replicas (two-pool plan)."""
    ratio_high: float
    """90th percentile of the same."""
    aggregated_met: bool
    disaggregated_met: bool
    prefill_peak: int = 0
    """Most prefill replicas the two-pool plan runs in any minute."""
    decode_peak: int = 0
    """Most decode replicas the same plan runs."""

    @property
    def saving(self) -> float:
        """Share of the aggregated GPU-hours the disaggregated fleet saves (negative: costs)."""
        if self.aggregated_gpu_hours <= 0:
            return 0.0
        return 1.0 - self.disaggregated_gpu_hours / self.aggregated_gpu_hours


def ratio_range(oracle: PdOracle, low: float = 10.0, high: float = 90.0) -> tuple[float, float]:
    """Percentiles of the prefill:decode replica ratio over the plan's minutes."""
    p = np.asarray(oracle.plans["prefill"].replicas_per_minute, dtype=np.float64)
    d = np.asarray(oracle.plans["decode"].replicas_per_minute, dtype=np.float64)
    ratio = p / np.maximum(d, 1.0)
    return float(np.percentile(ratio, low)), float(np.percentile(ratio, high))


def compare(
    trace: Trace,
    profile: PerfProfile,
    slo: SloSpec,
    *,
    link_gbps: float = DEFAULT_LINK_GBPS,
    kv_bytes_per_token: int | None = None,
    oracle_cache: Path | None = None,
) -> PdComparison:
    """Both yardsticks over ``trace`` (the workload's history, request by request); the KV
    bytes per token default to the profile's model shape."""
    if kv_bytes_per_token is None:
        kv_bytes_per_token = model_shape(profile.model).kv_bytes_per_token
    weights = work_weights(profile, slo)
    c_star = replica_capacity(trace, profile, slo, weights, seed=0)
    agg = fleet_oracle(trace, profile, slo, weights, replica_capacity=c_star,
                       cache_dir=oracle_cache)  # fmt: skip
    pd = pd_oracle(trace, profile, slo, weights,
                   kv_bytes_per_token=kv_bytes_per_token, link_gbps=link_gbps)  # fmt: skip
    low, high = ratio_range(pd)
    return PdComparison(
        aggregated_gpu_hours=agg.plan.gpu_hours,
        disaggregated_gpu_hours=pd.gpu_hours,
        prefill_gpu_hours=pd.plans["prefill"].gpu_hours,
        decode_gpu_hours=pd.plans["decode"].gpu_hours,
        ratio_low=low,
        ratio_high=high,
        aggregated_met=agg.target_met,
        disaggregated_met=pd.target_met,
        prefill_peak=max(pd.plans["prefill"].replicas_per_minute, default=0),
        decode_peak=max(pd.plans["decode"].replicas_per_minute, default=0),
    )


def comparison_markdown(c: PdComparison) -> str:
    """The report's "Aggregated vs disaggregated" section."""
    verdict = (
        f"disaggregation saves {c.saving:.0%} of the GPU-hours"
        if c.saving > 0
        else f"disaggregation costs {-c.saving:.0%} more GPU-hours"
    )
    lines = [
        "## Aggregated vs disaggregated",
        "",
        "The cheapest per-minute plan meeting the SLO for this history, each fleet shape "
        "(clairvoyant, zero start time):",
        "",
        "| fleet | GPU-hours at the SLO | target met |",
        "| --- | --- | --- |",
        f"| aggregated | {c.aggregated_gpu_hours:.1f} | {'yes' if c.aggregated_met else 'no'} |",
        f"| disaggregated (prefill {c.prefill_gpu_hours:.1f} + decode {c.decode_gpu_hours:.1f})"
        f" | {c.disaggregated_gpu_hours:.1f} | {'yes' if c.disaggregated_met else 'no'} |",
        "",
        f"{verdict}; recommended prefill:decode ratio {c.ratio_low:.1f}-{c.ratio_high:.1f} "
        "(10th-90th percentile over the history's minutes).",
    ]
    return "\n".join(lines)
