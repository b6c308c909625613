"""The fluid replica model: one replica's behaviour at a mean running batch, tabulated.

Used by the fluid simulator (:mod:`autoscaler.simulation.fluid`) in place of the request-level
replica, for multi-day rate-only traces. All from the same
:class:`~autoscaler.perf.model.PerfProfile`:

* Continuous batching at a mean running batch ``B``: each step decodes ``B`` tokens and, in the
  mean, carries the prefill of ``lambda * s`` prompts, so (Little's law, ``B = lambda * E[O] * s``)
  the mean step time is ``s(B) = D(B) + 1.12 * B * E[prefill cost] / E[O]`` with ``D`` the
  profile's decode step (context length-biased to the running sequences; 1.12 calibrated against
  the request-level replica). The throughput ``lambda(B) = B / (E[O] * s(B))`` peaks at
  ``B_peak`` (the profile's quadratic batch term) or at ``B_cap`` (``max_num_seqs`` or the KV
  capacity at the reserved final context).
* Dynamics: per ready replica without a queue ``dB/dt = lambda / n - lambda(B)``, so below the
  peak ``B`` settles on the stable batch and above it climbs until, at ``B_cap``, a backlog forms:
  ``Q' = max(0, Q + (lambda - n * lambda(B_cap)) dt)``, carried between ticks. As under the
  least-outstanding-work router, replicas holding a backlog drain it while arrivals go to the
  others, up to their peak rate.
* TPOT of request ``i``: ``D(B)`` (Poisson batch variance, amplified by the step-time feedback)
  plus the prefill work of the arrivals during its decode spread over its tokens (compound
  Poisson, shifted-gamma approximation); a busy replica only receives arrivals when no replica is
  idle (router).
* TTFT of request ``i`` = prefill-queue wait (M/G/1, Pollaczek-Khinchine) + half a step +
  ``chunks_i`` decode steps + its prefill cost, plus ``Q / mu`` behind a backlog or the M/G/c wait
  (Halfin-Whitt, Allen-Cunneen) near the slot limit.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from autoscaler.core.slo import SloSpec
from autoscaler.perf.model import PerfProfile
from autoscaler.traces.synthetic import LengthMixture

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

GRID = 400
_ROUTING_LEVELS = np.asarray([0.0, 0.05, 0.15, 0.3, 0.5, 0.75, 1.0])
"""Interference levels: the share of a replica's mean arrival rate that reaches it while busy."""
_LEVELS = [float(x) for x in _ROUTING_LEVELS]
PREFILL_INFLATION = 1.12
"""Prefill time per request relative to the profile's prefill cost: calibrated against the
request-level replica (Poisson load, Azure conversation mix), where chunked prefill interleaved
with decode costs about 12% more step time than the bare prefill cost."""
PREFILL_WAIT = 1.5
"""Scale of the Pollaczek-Khinchine mean wait of the prefill queue (calibration knob)."""
TPOT_BATCH_VARIANCE = 2.0
"""Scale of the batch-fluctuation variance in a request's TPOT (calibration knob)."""
TTFT_QUANTILES = np.linspace(0.005, 0.995, 100)


def _norm_cdf(x: FloatArray) -> FloatArray:
    """Standard normal CDF, vectorised (math.erf through numpy's frompyfunc is slow)."""
    # Abramowitz-Stegun 7.1.26 on |x|/sqrt(2); error < 1.5e-7
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = 1.0 - poly * np.exp(-z * z)
    return np.asarray(0.5 * (1.0 + np.sign(x) * erf), dtype=np.float64)


def _shifted_gamma_cdf(x: FloatArray, mean: FloatArray, var: FloatArray) -> FloatArray:
    """P(G <= x) for G gamma-distributed with the given mean and variance (Wilson-Hilferty)."""
    mean = np.maximum(mean, 1e-12)
    var = np.maximum(var, 1e-18)
    shape = mean * mean / var
    scale = var / mean
    ratio = np.maximum(x, 0.0) / (shape * scale)
    z = (np.cbrt(ratio) - (1.0 - 1.0 / (9.0 * shape))) / np.sqrt(1.0 / (9.0 * shape))
    return np.asarray(np.where(x <= 0.0, 0.0, _norm_cdf(z)), dtype=np.float64)


def length_sample(
    lengths: LengthMixture | tuple[npt.ArrayLike, npt.ArrayLike], n: int = 4096, seed: int = 0
) -> tuple[IntArray, IntArray]:
    """(prompt, output) pairs representing the length distribution: drawn from a mixture with a
    fixed seed, or a given empirical sample (subsampled evenly to at most ``n`` pairs)."""
    if isinstance(lengths, LengthMixture):
        p, o = lengths.sample(np.random.default_rng(seed), n)
        return p.astype(np.int64), o.astype(np.int64)
    prompts = np.asarray(lengths[0], dtype=np.int64)
    outputs = np.asarray(lengths[1], dtype=np.int64)
    if prompts.shape != outputs.shape or prompts.size == 0:
        raise ValueError("lengths: prompt and output samples must be non-empty and aligned")
    if prompts.size > n:
        pick = np.random.default_rng(seed).choice(prompts.size, n, replace=False)
        prompts, outputs = prompts[pick], outputs[pick]
    return prompts, outputs


@dataclass(frozen=True, slots=True)
class ReplicaModel:
    """One replica's fluid behaviour, tabulated over the mean running batch ``B``."""

    mean_prompt: float
    mean_output: float
    p90_prompt: float
    kv_per_seq: float
    """Reserved KV tokens per running sequence (length-biased final context)."""
    ctx_per_seq: float
    """KV tokens a running sequence holds on average (length-biased mid-decode context): what
    the engine's KV-usage gauge counts, as the request-level replica's ``observe``."""
    kv_capacity: float
    b_cap: float
    b_peak: float
    b_tpot: float
    lam_peak: float
    """Largest sustainable request rate of one replica (requests/s)."""
    mu_sat: float
    """Request rate one replica serves with a backlog (batch at ``b_cap``)."""
    cs2: float
    """Squared coefficient of variation of a request's service (decode) time."""
    feasible_share: float
    b_grid: FloatArray
    lam_grid: FloatArray
    """lambda(B) on ``b_grid`` up to ``b_peak`` (increasing)."""
    step_grid: FloatArray
    ok_grid: FloatArray
    """Expected share of all requests meeting the SLO at batch ``B`` with no wait, per
    interference level (``_ROUTING_LEVELS`` x grid)."""
    ok_rows: list[list[float]]
    """``ok_grid`` transposed, as lists (scalar look-ups in the tick loop)."""
    slack: FloatArray
    """Sorted TTFT slack (budget - TTFT without wait) of feasible, TPOT-ok requests at B_ref."""
    ttft_q: FloatArray
    """TTFT quantiles (``TTFT_QUANTILES``) without wait, per grid point, shape (grid, q)."""
    queue_s: FloatArray
    """Mean time a request spends in the engine's waiting queue without a slot wait, per grid
    point: the prefill-queue wait, the rest of the step in progress and its prompt chunks but the
    last (the request-level replica keeps a request in ``waiting`` until its last chunk is
    scheduled)."""
    tpot_p90_grid: FloatArray
    sat_step: float
    """Step time at the saturated batch ``b_cap``."""
    output_q_levels: FloatArray
    output_q: FloatArray
    """Quantiles of the output length (for drain times)."""

    def batch_at(self, lam: float) -> float:
        """Mean running batch at per-replica rate ``lam`` (stable branch, up to ``b_peak``)."""
        top = self.index_at(self.b_peak) + 1
        return float(np.interp(lam, self.lam_grid[:top], self.b_grid[:top]))

    def ok_at(self, index: int, g: float) -> float:
        """Share meeting the SLO at grid point ``index`` and interference level ``g``."""
        row = self.ok_rows[index]
        levels = _LEVELS
        if g >= 1.0:
            return row[-1]
        j = bisect_right(levels, g) - 1
        if j < 0:
            return row[0]
        frac = (g - levels[j]) / (levels[j + 1] - levels[j])
        return row[j] + frac * (row[j + 1] - row[j])

    def index_at(self, b: float) -> int:
        i = int(b / self.b_cap * (GRID - 1) + 0.5) if self.b_cap > 0 else 0
        return min(max(i, 0), GRID - 1)


def build_replica_model(
    profile: PerfProfile, slo: SloSpec, prompts: IntArray, outputs: IntArray
) -> ReplicaModel:
    """Tabulate the fluid replica model for ``profile`` and the given length sample."""
    p = prompts.astype(np.float64)
    o = np.maximum(outputs, 1).astype(np.float64)
    mo = float(o.mean())
    fits = p + o <= min(profile.max_context, profile.kv_capacity_tokens)
    pre_cost = profile.prefill_per_token_s * p + profile.prefill_attn_s * p * p
    budget = slo.ttft_s + slo.ttft_per_1k_s * p / 1000.0
    budget_room = max(1, profile.max_batched_tokens)
    # batch context, weighted by residence (output length): mid-decode context
    ctx_seq = float(np.sum(o * (p + o / 2.0)) / np.sum(o))
    kv_seq = float(np.sum(o * (p + o)) / np.sum(o))
    kv_slots = profile.kv_capacity_tokens / max(kv_seq, 1.0)
    b_cap = float(max(1.0, min(profile.max_num_seqs, kv_slots)))
    mean_pre = float(np.mean(np.where(fits, pre_cost, 0.0)))
    base = max(profile.prefill_base_s, profile.decode_base_s)

    def decode(b: FloatArray) -> FloatArray:
        return np.asarray(
            base
            + profile.decode_per_seq_s * b
            + profile.decode_per_seq2_s * b * b
            + profile.decode_per_ctx_token_s * b * ctx_seq,
            dtype=np.float64,
        )

    def step(b: FloatArray) -> FloatArray:
        return np.asarray(decode(b) + b * mean_pre * PREFILL_INFLATION / mo, dtype=np.float64)

    fine = np.linspace(1e-6, b_cap, 4000)
    lam_fine = fine / (mo * step(fine))
    b_peak = float(fine[int(np.argmax(lam_fine))])
    lam_peak = float(lam_fine.max())
    mu_sat = float(lam_fine[-1])
    over = fine[step(fine) > slo.tpot_s]
    b_tpot = float(over[0]) if over.size else float("inf")

    b_grid = np.linspace(0.0, b_cap, GRID)
    step_grid = step(b_grid)
    lam_grid = b_grid / (mo * step_grid)
    lam_col = lam_grid[:, None]
    dec_grid = decode(b_grid)
    # TPOT_i = D(B_i) + Y_i: Y_i is the prefill work of the arrivals during the request's decode
    # spread over its O_i - 1 tokens (compound Poisson), D(B_i) varies with the Poisson batch
    # averaged over the request's life. Shifted-gamma (Wilson-Hilferty) approximation.
    life_tokens = np.maximum(o - 1.0, 1.0)[None, :]
    pre2 = float(np.mean(np.where(fits, pre_cost, 0.0) ** 2)) * PREFILL_INFLATION**2
    mean_y = np.broadcast_to(step_grid[:, None] - dec_grid[:, None], (b_grid.size, o.size))
    var_y = lam_col * step_grid[:, None] * pre2 / life_tokens
    slope = profile.decode_per_seq_s + 2.0 * profile.decode_per_seq2_s * b_grid
    slope = slope + profile.decode_per_ctx_token_s * ctx_seq
    # the batch's Poisson variance is amplified by the feedback longer steps -> longer lives ->
    # larger batch: 1 / (1 - e)^2 with e the elasticity of the step time in the batch
    elasticity = np.gradient(step_grid, b_grid) * b_grid / step_grid
    amp = np.where(b_grid <= b_peak, 1.0 / np.maximum(1.0 - elasticity, 0.05) ** 2, 1.0)
    var_d = (slope**2 * b_grid * amp)[:, None] * (mo / (mo + o))[None, :]
    mean_c = mean_pre * PREFILL_INFLATION
    var_c = max(pre2 - mean_c * mean_c, 0.0)
    var_b = var_d * TPOT_BATCH_VARIANCE
    room = slo.tpot_s - dec_grid[:, None]
    ok_idle = _norm_cdf(room / np.sqrt(var_b + 1e-18))
    chunks = np.ceil(p / np.maximum(budget_room - b_grid[:, None], 1.0))
    ttft0 = 0.5 * step_grid[:, None] + chunks * dec_grid[:, None] + pre_cost[None, :]
    slack0 = budget[None, :] - ttft0

    def shares(g: float) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """(P(TPOT ok), P(TTFT ok), prefill-queue busy share, wait tail) per grid point and
        request when a fraction ``g`` of the replica's rate lands on it while it is busy."""
        lam_g = lam_col * g
        # N arrivals during the life (Poisson, mean m_n); with none the TPOT is D(B) alone,
        # else the prefill work conditional on N >= 1 is spread over the request's tokens
        m_n = lam_g * step_grid[:, None] * life_tokens
        p0 = np.exp(-m_n)
        busy = np.maximum(1.0 - p0, 1e-12)
        n1 = m_n / busy
        var_n1 = (m_n + m_n * m_n) / busy - n1 * n1
        mean_x = n1 * mean_c / life_tokens
        var_x = (n1 * var_c + np.maximum(var_n1, 0.0) * mean_c * mean_c) / life_tokens**2
        ok_busy = _shifted_gamma_cdf(room, mean_x, var_x + var_b)
        p_tpot = np.where(o[None, :] <= 1.0, 1.0, p0 * ok_idle + (1.0 - p0) * ok_busy)
        # TTFT_i = W_p + half a step + chunks_i * D(B) + c_i; W_p: M/G/1 wait of the prefill
        # queue (Pollaczek-Khinchine mean, exponential tail)
        rho_p = np.minimum(lam_grid * g * mean_c, 0.999)
        mean_wp = lam_grid * g * pre2 / (2.0 * (1.0 - rho_p)) * PREFILL_WAIT
        tail = np.where(rho_p > 0, mean_wp / np.maximum(rho_p, 1e-12), 1.0)[:, None]
        ttft_p = np.where(
            slack0 < 0, 0.0, 1.0 - rho_p[:, None] * np.exp(-np.maximum(slack0, 0.0) / tail)
        )
        return p_tpot, ttft_p * fits[None, :], rho_p, tail

    ok_levels = []
    for g in _ROUTING_LEVELS:
        p_g, t_g, _, _ = shares(float(g))
        ok_levels.append(np.mean(t_g * p_g, axis=1))
    # less interference can only help: the normal (idle) and gamma (busy) approximations
    # disagree near the throughput peak, so take the better of each level and the ones above it
    ok_grid = np.maximum.accumulate(np.asarray(ok_levels, dtype=np.float64)[::-1], axis=0)[::-1]
    p_tpot, _, rho_p, tail = shares(1.0)
    ref = GRID // 2
    weight_ok = fits & (p_tpot[ref] > 0.5)
    slack = np.sort(slack0[ref][weight_ok]) if weight_ok.any() else np.zeros(1)
    # TTFT distribution per grid point: no-wait TTFT plus a draw of the prefill-queue wait
    u = np.random.default_rng(1).uniform(1e-12, 1.0, o.size)[None, :]
    wp = np.where(u < rho_p[:, None], -tail * np.log(u / np.maximum(rho_p[:, None], 1e-12)), 0.0)
    ttft_q = np.quantile(ttft0 + wp, TTFT_QUANTILES, axis=1).T
    # in the engine's waiting queue: the prefill-queue wait, the rest of the step in progress and
    # every chunk but the last (the request leaves the queue when its last chunk is scheduled)
    before_last = (chunks - 1.0) * (dec_grid[:, None] + pre_cost[None, :] / chunks)
    queue_s = np.mean(wp + 0.5 * step_grid[:, None] + before_last, axis=1)
    # TPOT p90 over requests: mean plus 1.28 standard deviations of the mixture
    mean_t = dec_grid[:, None] + mean_y
    sd_t = np.sqrt(var_y + var_d * TPOT_BATCH_VARIANCE)
    tpot_p90 = np.quantile(mean_t + 1.2816 * sd_t, 0.9, axis=1)
    service = o * float(step(np.asarray([b_peak]))[0])
    cs2 = float(np.var(service)) / max(float(np.mean(service)) ** 2, 1e-12)
    q_levels = np.linspace(0.0, 1.0, 201)
    return ReplicaModel(
        mean_prompt=float(p.mean()),
        mean_output=mo,
        p90_prompt=float(np.quantile(p, 0.9)),
        kv_per_seq=kv_seq,
        ctx_per_seq=ctx_seq,
        kv_capacity=float(profile.kv_capacity_tokens),
        b_cap=b_cap,
        b_peak=b_peak,
        b_tpot=b_tpot,
        lam_peak=lam_peak,
        mu_sat=mu_sat,
        cs2=cs2,
        feasible_share=float(fits.mean()),
        b_grid=b_grid,
        lam_grid=lam_grid,
        step_grid=step_grid,
        ok_grid=ok_grid,
        ok_rows=ok_grid.T.tolist(),
        slack=slack,
        ttft_q=np.asarray(ttft_q, dtype=np.float64),
        queue_s=np.asarray(queue_s, dtype=np.float64),
        tpot_p90_grid=tpot_p90,
        sat_step=float(step(np.asarray([b_cap]))[0]),
        output_q_levels=q_levels,
        output_q=np.quantile(o, q_levels),
    )
