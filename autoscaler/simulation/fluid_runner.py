"""Runs policies over a rate-only trace (ServeGen windows) in fluid mode: the ``simulate`` contract
for multi-day traces whose request count rules out the request-level simulator.

The yardsticks follow DESIGN.md as closely as a rate trace allows: token lengths come from the
fitted length mixture (``autoscaler.traces.synthetic``), or, for a history that carries its own
prompt and generation token rates (a Prometheus history), from that mix rescaled to the
history's mean prompt and output lengths, each window's rate counted in requests of the
history's mean token work so that every window keeps its own work (:func:`history_lengths`).
C* is found by the same bisection on Poisson arrivals with that mix, the oracle runs
``ceil(minute's token work / C*)`` replicas each minute with zero start time (the rate is
constant inside a window, so every minute of a window has the same plan), and the work bound is
the per-request bound of the mix times the expected request count. The fluid model is
deterministic, so one run per policy stands for every seed. The snapshot of a history with
its own lengths shows each window's request mix (``simulate_fluid``'s ``window_lengths``).
Baselines on which fluid mode disagrees with the request-level simulator are not run:
:func:`not_reported` says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from autoscaler.core.slo import SloSpec
from autoscaler.perf.model import PerfProfile
from autoscaler.policies.base import Policy
from autoscaler.policies.registry import make_policy, parse_policy_name
from autoscaler.simulation.engine import SimConfig
from autoscaler.simulation.fluid import fill_gaps, fluid_figures, simulate_fluid
from autoscaler.simulation.fluid_model import build_replica_model, length_sample
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
from autoscaler.traces.records import Trace
from autoscaler.traces.servegen import RateWindows
from autoscaler.traces.synthetic import AZURE_CONV_LENGTHS

Progress = Callable[[str, float], None]

NOT_REPORTED: Mapping[str, str] = MappingProxyType(
    {
        "apa": "fluid mode disagrees with the request-level simulator on apa: deep overloads "
        "(APA's default leaves the fleet at ~40% attainment) are reproduced only roughly, "
        "+5.3 SLO points on Azure x20 (tests/test_fluid_agreement.py; band: 2 points, 5% GPU-h)",
        "hpa-queue": "fluid mode disagrees with the request-level simulator on hpa-queue: the "
        "waiting queue of a replica saturating its KV cache forms 2-4 minutes later in the fluid "
        "model, so the HPA scales up later, -5.8% GPU-h on Azure x20 "
        "(tests/test_fluid_agreement.py; band: 2 points, 5% GPU-h)",
    }
)
"""Baselines whose fluid figures are not reported, with the measured reason: the run lists them
under ``not_reported`` instead of ``policies`` (every setting of the baseline)."""

NOT_REPORTED_WITHOUT_LENGTHS: Mapping[str, str] = MappingProxyType(
    {
        "dynamo": "fluid mode disagrees with the request-level simulator on dynamo when the "
        "trace has no per-window lengths: its planner sizes on each interval's mean input and "
        "output lengths, which a rate-only trace does not carry (fluid: the mix's constant "
        "means), +2.2 SLO points on Azure x20; with the history's own lengths it agrees (+1.4 "
        "points, -1.9% GPU-h; tests/test_fluid_agreement.py; band: 2 points, 5% GPU-h)",
    }
)
"""Baselines not reported when the rates come without per-window mean lengths (ServeGen)."""


def not_reported(policy: str, has_lengths: bool) -> str | None:
    """Why fluid mode does not report ``policy`` (``NAME`` or ``NAME@SETTING``), or None."""
    name, _ = parse_policy_name(policy)
    if name in NOT_REPORTED:
        return NOT_REPORTED[name]
    return None if has_lengths else NOT_REPORTED_WITHOUT_LENGTHS.get(name)


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


Lengths = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
"""Mean prompt and output tokens per request, one value per window (NaN: unknown)."""


def history_lengths(
    prompts: npt.NDArray[np.int64],
    outputs: npt.NDArray[np.int64],
    rates: npt.NDArray[np.float64],
    lengths: Lengths,
    weights: tuple[float, float],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The length sample and rates for a history with its own per-window mean lengths.

    The sample's prompts and outputs are scaled so that their means are the history's
    request-weighted means (the mix's shape is kept: a rate history has no distribution, only
    means); each window's rate becomes a rate of requests of that mean token work, so the window
    keeps its own work (a window of long prompts counts as more requests of the mean). Windows
    with an unknown length take the history's mean.
    """
    mean_p, mean_o = (np.asarray(x, dtype=np.float64) for x in lengths)
    if mean_p.shape != rates.shape or mean_o.shape != rates.shape:
        raise ValueError("lengths: one mean prompt and output length per window")
    known = np.isfinite(mean_p) & np.isfinite(mean_o) & (rates > 0)
    if not known.any():
        return prompts, outputs, rates
    w = rates[known]
    hist_p = float(np.sum(w * mean_p[known]) / np.sum(w))
    hist_o = float(np.sum(w * mean_o[known]) / np.sum(w))
    scaled_p = np.maximum(1, np.rint(prompts * (hist_p / max(float(prompts.mean()), 1e-9))))
    scaled_o = np.maximum(1, np.rint(outputs * (hist_o / max(float(outputs.mean()), 1e-9))))
    mean_work = float(np.mean(scaled_p * weights[0] + scaled_o * weights[1]))
    window_p = np.where(known, mean_p, hist_p)
    window_o = np.where(known, np.maximum(mean_o, 1.0), max(hist_o, 1.0))
    work = window_p * weights[0] + window_o * weights[1]
    return (
        scaled_p.astype(np.int64),
        scaled_o.astype(np.int64),
        np.asarray(rates * work / mean_work, dtype=np.float64),
    )


def fluid_setup(
    windows: RateWindows,
    profile: PerfProfile,
    slo: SloSpec,
    rate_scale: float = 1.0,
    lengths: Lengths | None = None,
) -> FluidSetup:
    """Rates, token lengths (the Azure-fitted mixture, rescaled to ``lengths`` when the history
    has them, see :func:`history_lengths`), C* and the oracle's per-window plan."""
    rates = fill_gaps(windows.rate_rps) * rate_scale
    prompts, outputs = length_sample(AZURE_CONV_LENGTHS)
    weights = work_weights(profile, slo)
    if lengths is not None:
        prompts, outputs, rates = history_lengths(prompts, outputs, rates, lengths, weights)
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
    windows: RateWindows,
    req: RunRequest,
    progress: Progress | None = None,
    lengths: Lengths | None = None,
) -> dict[str, object]:
    """Every policy of ``req`` (and the oracle) on ``windows`` in fluid mode; ``lengths`` are the
    history's own per-window mean prompt and output lengths, when it has them."""
    profile, slo = req.profile, req.slo
    setup = fluid_setup(windows, profile, slo, req.rate_scale, lengths)
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
    skipped: dict[str, str] = {}
    for name in [*REFERENCES, *req.policies]:
        if progress is not None:
            progress(name, 0.0)
        reason = None if name in REFERENCES else not_reported(name, lengths is not None)
        if reason is not None:
            skipped[name] = reason
            if progress is not None:
                progress(name, 1.0)
            continue
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
            rates,
            window_s,
            policy,
            profile=profile,
            config=config,
            slo=slo,
            model=model,
            window_lengths=lengths,
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
            "lengths": "azure-mix" if lengths is None else "history",
            "mean_prompt_tokens": round(float(prompts.mean()), 1),
            "mean_output_tokens": round(float(outputs.mean()), 1),
        },
        **describe_request(req),
        "seeds": 1,
        "capacity_per_replica": round(capacity, 3),
        "oracle_peak_replicas": peak,
        "policies": policies,
        "not_reported": skipped,
    }
