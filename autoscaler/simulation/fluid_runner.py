"""Runs policies over a rate-only trace (ServeGen windows) in fluid mode: the ``simulate`` contract
for multi-day traces whose request count rules out the request-level simulator.

The yardsticks follow DESIGN.md as closely as a rate trace allows: token lengths come from the
fitted length mixture (``autoscaler.traces.synthetic``), C* is found by the same bisection on
Poisson arrivals with that mix, the oracle runs ``ceil(minute's token work / C*)`` replicas each
minute with zero start time (the rate is constant inside a window, so every minute of a window
has the same plan), and the work bound is the per-request bound of the mix times the expected
request count. The fluid model is deterministic, so one run per policy stands for every seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from autoscaler.perf.model import PerfProfile
from autoscaler.policies.base import Policy
from autoscaler.policies.registry import make_policy
from autoscaler.simulation.engine import SimConfig
from autoscaler.simulation.fluid import (
    build_replica_model,
    fill_gaps,
    fluid_figures,
    length_sample,
    simulate_fluid,
)
from autoscaler.simulation.oracle import (
    INSTANT,
    PlanPolicy,
    replica_capacity,
    work_bound_gpu_hours,
    work_weights,
)
from autoscaler.simulation.results import mean_over_seeds
from autoscaler.simulation.runner import (
    ORACLE,
    REFERENCES,
    RunRequest,
    describe_request,
    policy_context,
)
from autoscaler.slo import SloSpec
from autoscaler.traces.records import Trace
from autoscaler.traces.servegen import RateWindows
from autoscaler.traces.synthetic import AZURE_CONV_LENGTHS

Progress = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class FluidSetup:
    """What every fluid run of a rate-window trace starts from (the runner and the benchmarks)."""

    rates: npt.NDArray[np.float64]
    """Requests/s per window, gaps filled, rate-scaled."""
    prompts: npt.NDArray[np.int64]
    outputs: npt.NDArray[np.int64]
    mix: Trace
    """The length sample as a trace, for C* and the work bound."""
    weights: tuple[float, float]
    capacity: float
    """C*: token work/s one replica sustains at the SLO with this length mix."""
    per_window: npt.NDArray[np.int64]
    """The oracle's replicas per window: ceil(window work / C*), at least 1."""


def fluid_setup(
    windows: RateWindows, profile: PerfProfile, slo: SloSpec, rate_scale: float = 1.0
) -> FluidSetup:
    """Rates, token lengths (the Azure-fitted mixture), C* and the oracle's per-window plan."""
    rates = fill_gaps(windows.rate_rps) * rate_scale
    prompts, outputs = length_sample(AZURE_CONV_LENGTHS)
    weights = work_weights(profile, slo)
    mix = Trace(
        path="length-mixture",
        format="synthetic",
        arrival_s=np.arange(prompts.size, dtype=np.float64),
        prompt_tokens=prompts,
        output_tokens=outputs,
        duration_s=float(prompts.size),
    )
    capacity = replica_capacity(mix, profile, slo, weights)
    mean_work = float(np.mean(prompts * weights[0] + np.maximum(outputs, 1) * weights[1]))
    per_window = np.maximum(1, np.ceil(rates * mean_work / capacity)).astype(np.int64)
    return FluidSetup(rates, prompts, outputs, mix, weights, capacity, per_window)


def run_fluid(
    windows: RateWindows, req: RunRequest, progress: Progress | None = None
) -> dict[str, object]:
    """Every policy of ``req`` (and the oracle) on ``windows`` in fluid mode."""
    profile, slo = req.profile, req.slo
    setup = fluid_setup(windows, profile, slo, req.rate_scale)
    rates, weights, capacity, per_window = (
        setup.rates,
        setup.weights,
        setup.capacity,
        setup.per_window,
    )
    prompts, outputs, mix = setup.prompts, setup.outputs, setup.mix
    window_s = windows.window_s
    minutes_per_window = max(1, int(round(window_s / 60.0)))
    plan = tuple(int(r) for r in np.repeat(per_window, minutes_per_window))
    oracle_hours = float(np.sum(per_window)) * window_s * profile.tp / 3600.0
    expected = float(np.sum(rates) * window_s)
    bound = work_bound_gpu_hours(mix, profile, slo) * expected / max(1, prompts.size)
    peak = int(per_window.max())
    cap = req.max_replicas or max(2 * peak, peak + 4)
    ctx = policy_context(req, weights, peak=peak, cap=cap)
    model = build_replica_model(profile, slo, prompts, outputs)
    policies: dict[str, object] = {}
    for name in [*REFERENCES, *req.policies]:
        if progress is not None:
            progress(name, 0.0)
        policy: Policy = PlanPolicy(name, plan) if name in REFERENCES else make_policy(name, ctx)
        config = SimConfig(
            max_replicas=cap,
            start_replicas=plan[0],
            tick_s=req.tick_s,
            lifecycle=INSTANT if name == ORACLE else req.lifecycle,
            work_weights=weights,
            prefetch=None if name in REFERENCES else req.prefetch,
        )
        out = simulate_fluid(
            rates, window_s, policy, profile=profile, config=config, slo=slo, model=model
        )
        figs = fluid_figures(out, oracle_gpu_hours=oracle_hours, work_bound_gpu_hours=bound)
        policies[name] = mean_over_seeds([figs])
        if progress is not None:
            progress(name, 1.0)
    return {
        "trace": {
            "path": windows.path,
            "format": "servegen",
            "model": windows.model,
            "mode": "fluid",
            "requests": int(round(expected)),
            "duration_s": float(rates.size * window_s),
            "rate_scale": req.rate_scale,
            "missing_windows": int(np.sum(~np.isfinite(windows.rate_rps))),
        },
        **describe_request(req),
        "seeds": 1,
        "capacity_per_replica": round(capacity, 3),
        "oracle_peak_replicas": peak,
        "policies": policies,
    }
