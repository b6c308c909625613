"""The fluid fleet's dynamics: the ready replicas over one interval, and what they show.

:func:`advance_ready` moves the mean running batch and the backlog of the ready replicas over an
interval of constant arrival rate (the dynamics and the latency model are described in
:mod:`autoscaler.simulation.fluid_model`); :func:`fluid_snapshot` builds the
:class:`~autoscaler.core.signals.SignalSnapshot` the request-level view would build from that
state, so the policies see what they see in the event-driven simulator and live.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from autoscaler.core.replica_states import lead_time_s
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.simulation.engine import SimConfig
from autoscaler.simulation.fluid_model import GRID, TTFT_QUANTILES, FloatArray, ReplicaModel


@dataclass(slots=True)
class Sample:
    """The cumulative counters a scrape at ``t`` reads (the rates come from two of them)."""

    t: float
    done: float
    prompt: float
    gen: float
    waiting: float


def _erlang_c_hw(c: float, rho: float) -> float:
    """Probability of waiting in M/M/c, Halfin-Whitt approximation (good for large ``c``)."""
    if rho <= 0.0 or c <= 0.0:
        return 0.0
    if rho >= 1.0:
        return 1.0
    beta = (1.0 - rho) * math.sqrt(c)
    if beta > 8.0:
        return 0.0
    phi = math.exp(-0.5 * beta * beta) / math.sqrt(2.0 * math.pi)
    big_phi = 0.5 * (1.0 + math.erf(beta / math.sqrt(2.0)))
    return 1.0 / (1.0 + beta * big_phi / phi)


def window_mix(
    lengths: tuple[npt.ArrayLike, npt.ArrayLike] | None,
    n: int,
    m: ReplicaModel,
    weights: tuple[float, float],
) -> list[tuple[float, float, float]] | None:
    """Per window: (real requests per request of mean work, mean prompt, mean output)."""
    if lengths is None:
        return None
    prompt = np.asarray(lengths[0], dtype=np.float64)
    output = np.asarray(lengths[1], dtype=np.float64)
    if prompt.shape != (n,) or output.shape != (n,):
        raise ValueError("window_lengths: one mean prompt and output length per window")
    ok = np.isfinite(prompt) & np.isfinite(output) & (prompt >= 0) & (output > 0)
    prompt = np.where(ok, prompt, m.mean_prompt)
    output = np.where(ok, output, m.mean_output)
    mean_work = m.mean_prompt * weights[0] + m.mean_output * weights[1]
    work = np.maximum(prompt * weights[0] + output * weights[1], 1e-9)
    real = mean_work / work
    return [(float(r), float(p), float(o)) for r, p, o in zip(real, prompt, output, strict=True)]


def _interference(n: int, b: float) -> float:
    """Share of a replica's mean arrival rate that reaches it while it is busy, under the
    least-outstanding-work router: an arrival only joins a busy replica when none is idle, so
    ``P(N >= n) / P(busy)`` with ``N ~ Poisson(n b)`` the fleet's running requests (1 for one
    replica; about 0 for a large fleet at a mean batch below one)."""
    if b <= 0.0 or n <= 0:
        return 0.0
    mu = n * b
    if n <= 30:
        term = math.exp(-mu)
        below = 0.0
        for k in range(n):
            below += term
            term *= mu / (k + 1)
        all_busy = max(0.0, 1.0 - below)
    else:
        all_busy = 0.5 * math.erfc((n - 0.5 - mu) / math.sqrt(2.0 * mu))
    return min(1.0, all_busy / max(1.0 - math.exp(-b), 1e-12))


def drain_s(m: ReplicaModel, b: float) -> float:
    """Expected drain time of a ready replica holding a mean batch ``b``: the remaining decode of
    its longest in-flight request (half the ``1 - 1/(b+1)`` output quantile), if it holds any."""
    if b <= 0.0:
        return 0.0
    q = float(np.interp(1.0 - 1.0 / (b + 1.0), m.output_q_levels, m.output_q))
    step_s = float(m.step_grid[m.index_at(b)])
    return (1.0 - math.exp(-b)) * step_s * q / 2.0


def advance_ready(
    m: ReplicaModel,
    lam: float,
    dt: float,
    n: int,
    stuck: int,
    b: float,
    backlog: float,
    slack_ok: Callable[[float], float],
    exp_q: FloatArray,
) -> tuple[float, float, float, float, int, float, float, int]:
    """Advance the ready fleet by ``dt`` at arrival rate ``lam``.

    ``b`` is the mean running batch of the replicas without a queue (``n - stuck`` of them): it
    relaxes towards the stable batch, ``db/dt = lam_r - b / (E[O] s(b))`` (semi-implicit
    sub-steps of at most 5 s), so a load beyond the peak makes it climb, throughput fall and, at
    ``b_cap``, a queue form: those replicas join the ``stuck`` ones, which serve their backlog at
    the saturated rate while new arrivals go to the others (least outstanding work).
    Returns (served, mean wait, share meeting the SLO, TPOT p90, grid index, batch, backlog,
    stuck).
    """
    mo = m.mean_output
    steps = max(1, int(math.ceil(dt / 5.0 - 1e-9)))
    h = dt / steps
    served = wait_acc = ok_acc = tpot_acc = 0.0
    gi = 0
    tpot_sat_ok = 1.0 if m.b_cap < m.b_tpot else 0.0
    for _ in range(steps):
        fresh = n - stuck
        arrivals = lam * h
        if stuck and fresh > 0 and b >= m.b_cap:
            stuck, fresh = n, 0
        if fresh > 0:
            lam_r = lam / fresh
            gi = m.index_at(b)
            s_b = float(m.step_grid[gi])
            b_new = (b + lam_r * h) / (1.0 + h / (mo * max(s_b, 1e-9)))
            b_new = min(b_new, m.b_cap)
            b = b_new
            gi = m.index_at(b)
            s_b = float(m.step_grid[gi])
            thru = fresh * b / (mo * s_b)
            ok = m.ok_at(gi, _interference(fresh, b))
            w = 0.0
            rho = b / m.b_cap
            pw = _erlang_c_hw(fresh * m.b_cap, rho) if 0.5 < rho < 1.0 else 0.0
            if pw > 1e-6:
                theta = fresh * m.b_cap / (mo * s_b) * (1.0 - rho) * 2.0 / (1.0 + m.cs2)
                ews = float(np.mean([slack_ok(q / theta) for q in exp_q]))
                ok *= (1.0 - pw) + pw * ews
                w = pw / theta
            tp90 = float(m.tpot_p90_grid[gi])
            served += thru * h
            if b >= m.b_cap - 1e-9 and lam > thru:
                # saturated: the excess queues, every replica now holds a backlog
                backlog += (lam - thru) * h
                stuck = n
            elif stuck:
                drained = min(backlog, stuck * m.mu_sat * h)
                backlog -= drained
                served += drained
        else:
            mu = n * m.mu_sat
            q0 = backlog
            backlog = max(0.0, backlog + (lam - mu) * h)
            served += arrivals + q0 - backlog
            w = 0.5 * (q0 + backlog) / mu
            ok = m.feasible_share * tpot_sat_ok * slack_ok(w)
            gi = GRID - 1
            b = m.b_cap
            tp90 = float(m.sat_step)
        if backlog <= 1e-9 and stuck:
            # the backlogged replicas rejoin the pool at a full batch
            backlog = 0.0
            b = ((n - stuck) * b + stuck * m.b_cap) / n if stuck < n else m.b_cap
            stuck = 0
        wait_acc += w
        ok_acc += ok
        tpot_acc += tp90
    return (
        served,
        wait_acc / steps,
        ok_acc / steps,
        tpot_acc / steps,
        gi,
        b,
        backlog,
        stuck,
    )


def fluid_snapshot(
    config: SimConfig,
    now: float,
    counts: ReplicaCounts,
    samples: deque[Sample],
    lat: deque[tuple[float, float, int, float, float]],
    state: tuple[float, float, float, int],
    m: ReplicaModel,
    time_to_ready: deque[float],
) -> SignalSnapshot:
    """The snapshot the request-level view would build, from the fluid state ``(batch of the
    replicas without a backlog, backlog, their queued requests, replicas holding the backlog)``.

    Per replica: a replica holding the backlog runs a full batch (``b_cap``) and waits its share
    of the backlog; the others run ``batch`` and queue their share of ``queued``. KV usage is the
    context the running sequences hold (``ctx_per_seq`` each), as vLLM's gauge counts it."""
    batch, backlog, queued, stuck = state
    ready = counts.ready
    held = ready if stuck < 0 else min(stuck, ready)
    free = ready - held
    run_free, run_held = (batch, m.b_cap) if free else (0.0, m.b_cap)
    wait_free = queued / free if free else 0.0
    wait_held = (backlog + (0.0 if free else queued)) / held if held else 0.0
    if not held:
        wait_free += backlog / free if free else 0.0

    def kv_of(b: float) -> float:
        return min(1.0, b * m.ctx_per_seq / m.kv_capacity) if m.kv_capacity > 0 else 0.0

    waiting = (wait_held,) * held + (wait_free,) * free
    running = (run_held,) * held + (run_free,) * free
    kvs = (kv_of(run_held),) * held + (kv_of(run_free),) * free
    ttr = time_to_ready
    base: dict[str, object] = dict(
        workload=config.workload,
        timestamp=now,
        replicas=counts,
        data_age_s=0.0,
        waiting=float(sum(waiting)),
        running=float(sum(running)),
        kv_usage=sum(kvs) / ready if ready else None,
        kv_usage_max=max(kvs) if ready else None,
        per_replica_waiting=waiting,
        per_replica_running=running,
        per_replica_kv_usage=kvs,
        time_to_ready_s=lead_time_s(ttr),
        preemption_rate=0.0,
    )
    if len(samples) < 2:
        return SignalSnapshot(**base)  # type: ignore[arg-type]
    first, last = samples[0], samples[-1]
    dt = last.t - first.t
    if dt <= 0:
        return SignalSnapshot(**base)  # type: ignore[arg-type]
    window = [x for x in lat if x[0] > 0]
    ttft90 = q90 = tpot90 = None
    if window:
        wsum = sum(x[0] for x in window)
        wait = sum(x[0] * x[1] for x in window) / wsum
        gi = window[-1][2]
        ttft90 = float(np.interp(0.9, TTFT_QUANTILES, m.ttft_q[gi])) + wait
        q90 = wait + 0.5 * float(m.step_grid[min(gi, m.step_grid.size - 1)])
        tpot90 = sum(x[0] * x[3] for x in window) / wsum
    done = last.done - first.done
    return SignalSnapshot(
        **base,  # type: ignore[arg-type]
        request_rate=done / dt,
        prompt_tokens_rate=(last.prompt - first.prompt) / dt,
        generation_tokens_rate=(last.gen - first.gen) / dt,
        mean_prompt_tokens=(last.prompt - first.prompt) / done if done > 0 else None,
        mean_output_tokens=(last.gen - first.gen) / done if done > 0 else None,
        p90_prompt_tokens=m.p90_prompt if done > 0 else None,
        waiting_growth_rate=(last.waiting - first.waiting) / dt,
        ttft_p90_s=ttft90,
        tpot_p90_s=tpot90,
        e2e_p95_s=None,
        queue_time_p90_s=q90,
    )
