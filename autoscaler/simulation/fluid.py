"""Fluid (rate-level) simulation for multi-day rate-only traces (ServeGen's 600 s windows).

Request-level replay is impossible for billions of requests, so this mode advances the fleet in
15 s ticks on *rates*, and drives the same policies through the same
:class:`~autoscaler.core.signals.SignalSnapshot`, the same HPA emulation and the same replica
lifecycle as :func:`autoscaler.simulation.engine.simulate` (see ``docs/simulator.md``, "Fluid
mode").

The replica model is :mod:`~autoscaler.simulation.fluid_model`'s, the ready fleet's dynamics
and the snapshot :mod:`~autoscaler.simulation.fluid_dynamics`'s and the pods
:mod:`~autoscaler.simulation.fluid_fleet`'s (the lifecycle shared with the request-level fleet).

SLO attainment is the expected fraction of requests meeting the per-request SLO, integrated over
the length distribution (a sample of (prompt, output) pairs) and the waiting time; requests that
cannot meet it on an idle replica count as misses, as in the request-level simulator. Missing
windows (NaN) hold the last known rate (:func:`fill_gaps`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from autoscaler.core.slo import SloSpec
from autoscaler.hpa.controller import HpaController
from autoscaler.perf.model import PerfProfile
from autoscaler.policies.base import Policy
from autoscaler.simulation.engine import SimConfig, TickRecord, _decide, _prefetcher
from autoscaler.simulation.fluid_dynamics import (
    Sample,
    advance_ready,
    drain_s,
    fluid_snapshot,
    window_mix,
)
from autoscaler.simulation.fluid_fleet import FluidFleet
from autoscaler.simulation.fluid_model import (
    GRID,
    TTFT_QUANTILES,
    FloatArray,
    IntArray,
    ReplicaModel,
    build_replica_model,
    length_sample,
)
from autoscaler.simulation.prefetch import SimPrefetcher
from autoscaler.traces.synthetic import AZURE_CONV_LENGTHS, LengthMixture


@dataclass
class FluidOutput:
    """Raw outcome of one fluid run; :func:`fluid_figures` turns it into figures."""

    duration_s: float
    requests: float
    """Expected number of requests (integral of the arrival rate)."""
    met: float
    """Expected number of requests meeting the SLO."""
    gpu_seconds: float
    cold_starts: int
    warm_starts: int
    max_replicas: int
    replica_changes: int
    timeline: list[TickRecord]
    model: ReplicaModel
    tick_weight: FloatArray
    """Arrivals per integration interval (for latency quantiles)."""
    tick_wait: FloatArray
    tick_index: IntArray
    """Grid index of the mean batch per interval."""
    tick_tpot_p90: FloatArray
    tick_start: FloatArray
    """Start time of each integration interval."""
    tick_ok: FloatArray
    """Expected share of that interval's arrivals meeting the SLO."""
    final_backlog: float = 0.0
    time_to_ready: list[float] = field(default_factory=list)
    """Seconds from creation to ready of every pod that became ready (not the starting fleet)."""
    prefetch: SimPrefetcher | None = None

    @property
    def slo_attainment(self) -> float:
        return self.met / self.requests if self.requests > 0 else 1.0

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600.0


def fill_gaps(rates_rps: npt.ArrayLike) -> FloatArray:
    """Missing windows (NaN, inf, negative) hold the last known rate; leading ones take the first
    known rate; an all-missing series is all zero."""
    r = np.asarray(rates_rps, dtype=np.float64).copy()
    bad = ~np.isfinite(r) | (r < 0)
    if bad.all():
        return np.zeros_like(r)
    if not bad.any():
        return r
    idx = np.where(~bad, np.arange(r.size), 0)
    np.maximum.accumulate(idx, out=idx)
    first = int(np.argmax(~bad))
    out = r[idx]
    out[:first] = r[first]
    return np.asarray(out, dtype=np.float64)


def simulate_fluid(
    rates_rps: npt.ArrayLike,
    window_s: float,
    policy: Policy,
    *,
    profile: PerfProfile,
    config: SimConfig,
    slo: SloSpec,
    lengths: LengthMixture | tuple[npt.ArrayLike, npt.ArrayLike] = AZURE_CONV_LENGTHS,
    model: ReplicaModel | None = None,
    duration_s: float | None = None,
    window_lengths: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
) -> FluidOutput:
    """Run ``policy`` on the piecewise-constant arrival rate ``rates_rps`` (one value per window
    of ``window_s`` seconds; NaN = missing window, see :func:`fill_gaps`). Deterministic.

    ``lengths`` is the (prompt, output) distribution: a :class:`LengthMixture` (sampled with a
    fixed seed) or an empirical sample; ``model`` a prebuilt :class:`ReplicaModel` (reuse it
    across policies to save its set-up). ``duration_s`` (default: all windows) ends the run
    early, e.g. at a trace's true end inside its last window. ``window_lengths`` (mean prompt and
    output tokens per request, one each per window; NaN: the model's means) make the snapshot
    show each window's own request mix: ``rates_rps`` are then requests of the model's mean token
    work, and a window of mean work ``w`` completes ``E[work] / w`` real requests for each."""
    rates = fill_gaps(rates_rps)
    if window_s <= 0:
        raise ValueError("window_s must be > 0")
    if model is None:
        prompts, outputs = length_sample(lengths)
        model = build_replica_model(profile, slo, prompts, outputs)
    m = model
    duration = float(rates.size * window_s)
    if duration_s is not None:
        duration = min(duration, float(duration_s))
    tick = config.tick_s
    tp = profile.tp
    nodes = config.num_nodes or -(-config.max_replicas * tp // config.lifecycle.node_gpus)
    fleet = FluidFleet(config.lifecycle, tp, nodes, _prefetcher(config, nodes, tp))
    for _ in range(config.start_replicas):
        fleet.create(0.0, instant=True)
    spec = config.start_replicas
    spec_hpa = policy.hpa_spec() if policy.actuation == "hpa" else None
    hpa = HpaController(spec_hpa, sync_period_s=tick) if spec_hpa is not None else None

    keep = int(math.ceil(config.rate_window_s / tick)) + 1
    samples: deque[Sample] = deque(maxlen=keep)
    lat: deque[tuple[float, float, int, float, float]] = deque(maxlen=keep - 1)
    """Per tick interval: (arrivals, wait, grid index, tpot p90, queue wait p90)."""
    done = prompt_tok = gen_tok = 0.0
    per_window = window_mix(window_lengths, rates.size, m, config.work_weights)
    backlog = 0.0
    queued = 0.0
    """Requests in the engines' waiting queues of the replicas without a backlog (Little's law:
    arrival rate x time in the queue), on top of the backlog."""
    stuck = 0
    """Ready replicas holding the backlog (-1: held at the gateway, no replica ready)."""
    n_prev = config.start_replicas
    batch = 0.0
    total_req = total_met = 0.0
    w_list: list[float] = []
    wait_list: list[float] = []
    idx_list: list[int] = []
    tpot_list: list[float] = []
    start_list: list[float] = []
    ok_list: list[float] = []
    timeline: list[TickRecord] = []
    changes = 0
    max_live = spec
    slack = m.slack
    n_slack = float(slack.size)
    mo, mp = m.mean_output, m.mean_prompt
    exp_q = -np.log(1.0 - (np.arange(8) + 0.5) / 8.0)

    def slack_ok(wait: float) -> float:
        """Share of feasible, TPOT-ok requests whose TTFT slack covers ``wait``."""
        if wait <= 0.0:
            return 1.0
        return 1.0 - float(np.searchsorted(slack, wait, side="left")) / n_slack

    # ticks at 0, tick, 2 tick, ... while now + tick <= duration, as the engine; the last tick
    # integrates up to the end of the run. Each tick scrapes (the sample at ``now`` closes the
    # interval before it), builds the snapshot, asks the policy and scales.
    samples.append(Sample(0.0, 0.0, 0.0, 0.0, 0.0))
    k = 0
    while True:
        now = k * tick
        fleet.advance(now)
        counts = fleet.counts(now)
        snapshot = fluid_snapshot(
            config,
            now,
            counts,
            samples,
            lat,
            (batch, backlog, queued, stuck),
            m,
            fleet.pods.time_to_ready,
        )
        rec = policy.recommend(snapshot)
        desired = _decide(rec, hpa, now, spec, snapshot.replicas.spec, snapshot.replicas.ready)
        desired = max(config.min_replicas, min(config.max_replicas, desired))
        if desired != spec:
            changes += 1
            spec = desired
        fleet.scale_to(spec, now, drain_s(m, batch) if spec < fleet.live() else 0.0, duration)
        if fleet.prefetcher is not None:
            pods = fleet.pods
            pods.expire_images(now)
            fleet.prefetcher.plan(now, rec, used=pods.used, warm=pods.warm, pods_on=pods.pods_on())
        max_live = max(max_live, spec)
        timeline.append(TickRecord.of(now, spec, snapshot, rec.winner, config.work_weights))
        last_tick = now + tick > duration
        stop = duration if last_tick else now + tick
        # integrate [now, stop), split at window edges and lifecycle events
        t = now
        arr_tick = wait_acc = 0.0
        idx_acc = 0
        tpot_acc = 0.0
        while t < stop - 1e-9:
            nxt = min(stop, fleet.next_event(), (math.floor(t / window_s + 1e-9) + 1) * window_s)
            if nxt <= t:
                nxt = min(stop, t + 1e-6)
            fleet.advance(t)
            dt = nxt - t
            w_idx = min(int(t / window_s + 1e-9), rates.size - 1)
            lam = float(rates[w_idx])
            n = len(fleet.ready)
            arrivals = lam * dt
            if n == 0:
                backlog += arrivals
                stuck = -1  # held at the gateway: every replica that comes up takes a share
                n_prev = 0
                served = 0.0
                wait = math.inf
                ok_share = 0.0
                tpot90 = float(m.sat_step)
                gi = GRID - 1
                queued = 0.0
            else:
                if backlog <= 1e-9:
                    backlog, stuck = 0.0, 0
                elif stuck < 0 or stuck > n:
                    stuck = n
                if n > n_prev:
                    # replicas that just became ready start empty
                    fresh_old = max(0, n_prev - stuck)
                    batch = batch * fresh_old / (n - stuck) if n > stuck else batch
                n_prev = n
                served, wait, ok_share, tpot90, gi, batch, backlog, stuck = advance_ready(
                    m, lam, dt, n, stuck, batch, backlog, slack_ok, exp_q
                )
                queued = lam * (float(m.queue_s[gi]) + wait) if stuck < n else 0.0
            total_req += arrivals
            total_met += arrivals * ok_share
            if per_window is None:
                done += served
                prompt_tok += served * mp
                gen_tok += served * mo
            else:
                real, w_prompt, w_output = per_window[w_idx]
                done += served * real
                prompt_tok += served * real * w_prompt
                gen_tok += served * real * w_output
            arr_tick += arrivals
            wait_acc += arrivals * (wait if math.isfinite(wait) else 1e4)
            idx_acc = gi
            tpot_acc += arrivals * tpot90
            w_list.append(arrivals)
            wait_list.append(wait if math.isfinite(wait) else 1e4)
            idx_list.append(gi)
            tpot_list.append(tpot90)
            start_list.append(t)
            ok_list.append(ok_share)
            t = nxt
        mean_wait = wait_acc / arr_tick if arr_tick > 0 else 0.0
        mean_tpot = tpot_acc / arr_tick if arr_tick > 0 else float(m.tpot_p90_grid[0])
        lat.append((arr_tick, mean_wait, idx_acc, mean_tpot, mean_wait))
        if last_tick:
            break
        samples.append(Sample(stop, done, prompt_tok, gen_tok, backlog + queued))
        k += 1
    fleet.close(duration)
    # pods still draining at the end were charged up to their drain's end, capped at duration
    return FluidOutput(
        duration_s=duration,
        requests=total_req,
        met=total_met,
        gpu_seconds=fleet.gpu_seconds,
        cold_starts=fleet.pods.cold_starts,
        warm_starts=fleet.pods.warm_starts,
        max_replicas=max_live,
        replica_changes=changes,
        timeline=timeline,
        model=m,
        tick_weight=np.asarray(w_list, dtype=np.float64),
        tick_wait=np.asarray(wait_list, dtype=np.float64),
        tick_index=np.asarray(idx_list, dtype=np.int64),
        tick_tpot_p90=np.asarray(tpot_list, dtype=np.float64),
        tick_start=np.asarray(start_list, dtype=np.float64),
        tick_ok=np.asarray(ok_list, dtype=np.float64),
        final_backlog=backlog,
        time_to_ready=fleet.pods.started,
        prefetch=fleet.prefetcher,
    )


_HIST_EDGES = np.logspace(-4.0, 5.0, 3601)


def _weighted_quantiles(
    values: FloatArray, weights: FloatArray, qs: tuple[float, ...]
) -> list[float | None]:
    """Quantiles of a weighted sample through a log-spaced histogram (0.6% bins)."""
    if values.size == 0 or float(weights.sum()) <= 0:
        return [None] * len(qs)
    idx = np.clip(np.searchsorted(_HIST_EDGES, values), 1, _HIST_EDGES.size - 1)
    hist = np.bincount(idx, weights=weights, minlength=_HIST_EDGES.size)
    cum = np.cumsum(hist)
    out: list[float | None] = []
    for q in qs:
        i = int(np.searchsorted(cum, q * cum[-1], side="left"))
        i = min(max(i, 1), _HIST_EDGES.size - 1)
        out.append(float(math.sqrt(_HIST_EDGES[i - 1] * _HIST_EDGES[i])))
    return out


def fluid_figures(
    out: FluidOutput, *, oracle_gpu_hours: float, work_bound_gpu_hours: float
) -> dict[str, float | int | None]:
    """The figures of :data:`autoscaler.simulation.results.FIGURES` for one fluid run."""
    m = out.model
    w = out.tick_weight
    keep = w > 0
    w, wait, gi = w[keep], out.tick_wait[keep], out.tick_index[keep]
    nq = TTFT_QUANTILES.size
    ttft = (m.ttft_q[gi] + wait[:, None]).ravel()
    tw = np.repeat(w / nq, nq)
    p50, p90, p99 = _weighted_quantiles(ttft, tw, (0.5, 0.9, 0.99))
    figs: Mapping[str, float | int | None] = {
        "slo_attainment": out.slo_attainment,
        "gpu_hours": out.gpu_hours,
        "oracle_gpu_hours": oracle_gpu_hours,
        "work_bound_gpu_hours": work_bound_gpu_hours,
        "cold_starts": out.cold_starts,
        "warm_starts": out.warm_starts,
        "requests": int(round(out.requests)),
        "ttft_p50_s": p50,
        "ttft_p90_s": p90,
        "ttft_p99_s": p99,
        "tpot_p90_s": _weighted_quantiles(out.tick_tpot_p90[keep], w, (0.9,))[0],
        "max_replicas": out.max_replicas,
        "replica_changes": out.replica_changes,
    }
    return dict(figs)
