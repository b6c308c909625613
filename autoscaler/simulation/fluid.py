"""Fluid (rate-level) simulation for multi-day rate-only traces (ServeGen's 600 s windows).

Request-level replay is impossible for billions of requests, so this mode advances the fleet in
15 s ticks on *rates*, and drives the same policies through the same
:class:`~autoscaler.core.signals.SignalSnapshot`, the same HPA emulation and the same replica
lifecycle as :func:`autoscaler.simulation.engine.simulate` (see ``docs/simulator.md``, "Fluid
mode").

The replica model, all from the same :class:`~autoscaler.perf.model.PerfProfile`:

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

SLO attainment is the expected fraction of requests meeting the per-request SLO, integrated over
the length distribution (a sample of (prompt, output) pairs) and the waiting time; requests that
cannot meet it on an idle replica count as misses, as in the request-level simulator. Missing
windows (NaN) hold the last known rate (:func:`fill_gaps`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from heapq import heappop, heappush

import numpy as np
import numpy.typing as npt

from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.core.slo import SloSpec
from autoscaler.hpa.controller import HpaController
from autoscaler.perf.model import PerfProfile
from autoscaler.policies.base import Policy
from autoscaler.replica_states import DEFAULT_TIME_TO_READY_WINDOW, lead_time_s
from autoscaler.simulation.engine import SimConfig, TickRecord, _decide, _prefetcher
from autoscaler.simulation.fleet import (
    INITIALIZING,
    PENDING,
    PROVISIONING,
    PULLING,
    READY,
    LifecycleConfig,
)
from autoscaler.simulation.prefetch import SimPrefetcher
from autoscaler.traces.synthetic import AZURE_CONV_LENGTHS, LengthMixture

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_UNREADY_ORDER = {PENDING: 0, PROVISIONING: 1, PULLING: 2, INITIALIZING: 3}
_STARTING = (PROVISIONING, PULLING, INITIALIZING)
_GRID = 400
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
_TTFT_QUANTILES = np.linspace(0.005, 0.995, 100)


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
    """TTFT quantiles (``_TTFT_QUANTILES``) without wait, per grid point, shape (grid, q)."""
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
        i = int(b / self.b_cap * (_GRID - 1) + 0.5) if self.b_cap > 0 else 0
        return min(max(i, 0), _GRID - 1)


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

    b_grid = np.linspace(0.0, b_cap, _GRID)
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
    ref = _GRID // 2
    weight_ok = fits & (p_tpot[ref] > 0.5)
    slack = np.sort(slack0[ref][weight_ok]) if weight_ok.any() else np.zeros(1)
    # TTFT distribution per grid point: no-wait TTFT plus a draw of the prefill-queue wait
    u = np.random.default_rng(1).uniform(1e-12, 1.0, o.size)[None, :]
    wp = np.where(u < rho_p[:, None], -tail * np.log(u / np.maximum(rho_p[:, None], 1e-12)), 0.0)
    ttft_q = np.quantile(ttft0 + wp, _TTFT_QUANTILES, axis=1).T
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


# -- light replica lifecycle ----------------------------------------------------------------


@dataclass(slots=True)
class _Pod:
    slot: int
    created: float
    phase: str
    node: int = -1
    until: float = 0.0
    ready_at: float = 0.0
    warm: bool = False


@dataclass
class _Lifecycle:
    """The fleet's pods without request state: fleet.py's phases, scheduling and scale-down rank.

    Ready pods are kept in the order they became ready (the ReplicaSet deletes the most recently
    ready first); not-ready pods separately, so a tick costs O(not-ready pods)."""

    lc: LifecycleConfig
    tp: int
    num_nodes: int
    used: list[int] = field(default_factory=list)
    image: list[bool] = field(default_factory=list)
    ready: list[_Pod] = field(default_factory=list)
    unready: list[_Pod] = field(default_factory=list)
    draining: list[tuple[float, int]] = field(default_factory=list)
    """(end of drain, node) of deleted ready pods still finishing requests."""
    next_slot: int = 0
    gpu_seconds: float = 0.0
    cold: int = 0
    warm: int = 0
    ttr: deque[float] = field(default_factory=lambda: deque(maxlen=DEFAULT_TIME_TO_READY_WINDOW))
    started: list[float] = field(default_factory=list)
    """Time-to-ready of every pod that became ready (not the starting fleet)."""
    prefetcher: SimPrefetcher | None = None
    """The prefetch planner's simulated pulls (``--prefetch on``), as in fleet.py."""

    def __post_init__(self) -> None:
        self.used = [0] * self.num_nodes
        self.image = [False] * self.num_nodes
        self.idle_since: list[float | None] = [None] * self.num_nodes
        """When the image was last used on a node running none of the pods (churn model)."""
        # nodes by (holds the image, free GPUs), lowest index first (lazy deletion)
        self._heaps: dict[tuple[bool, int], list[int]] = {}
        for i in range(self.num_nodes):
            self._touch(i)

    def _touch(self, node: int) -> None:
        key = (self.image[node], self.lc.node_gpus - self.used[node])
        heappush(self._heaps.setdefault(key, []), node)

    def _pick(self) -> int:
        """kube-scheduler's choice (fleet.py): LeastAllocated + ImageLocality, lowest index."""
        gpus = self.lc.node_gpus
        best, best_score = -1, -1.0
        for (warm, free), heap in self._heaps.items():
            if free < self.tp:
                continue
            while heap and (self.image[heap[0]], gpus - self.used[heap[0]]) != (warm, free):
                heappop(heap)
            if not heap:
                continue
            score = 100.0 * (free - self.tp) / gpus + (100.0 if warm else 0.0)
            if score > best_score or (score == best_score and heap[0] < best):
                best, best_score = heap[0], score
        return best

    def expire_images(self, now: float) -> None:
        """Other tenants' images evict ours from idle nodes (fleet.py's churn model)."""
        interval = self.lc.foreign_image_interval_s
        if interval <= 0:
            return
        horizon = self.lc.image_slots * interval
        for node, since in enumerate(self.idle_since):
            if since is not None and now - since >= horizon and self.image[node]:
                self.image[node] = False
                self._touch(node)

    def _pull_end(self, node: int, now: float) -> float:
        end = now + self.lc.pull_s
        if self.prefetcher is None:
            return end
        joined = self.prefetcher.pull_until.get(node)
        return joined if joined is not None and now <= joined < end else end

    def _schedule(self, pod: _Pod, now: float, instant: bool = False) -> bool:
        self.expire_images(now)
        node = self._pick()
        if node < 0:
            return False
        self.used[node] += self.tp
        self.idle_since[node] = None
        pod.node = node
        pod.warm = self.image[node]
        if instant:
            self.image[node] = True
            self._touch(node)
            pod.phase, pod.ready_at = READY, now
            return True
        self._touch(node)
        if pod.warm:
            self.warm += 1
        else:
            self.cold += 1
        lc = self.lc
        if lc.provision_s > 0:
            pod.phase, pod.until = PROVISIONING, now + lc.provision_s
        elif not pod.warm and lc.pull_s > 0:
            pod.phase, pod.until = PULLING, self._pull_end(node, now)
        elif lc.init_s > 0:
            pod.phase, pod.until = INITIALIZING, now + lc.init_s
        else:
            pod.phase, pod.ready_at = READY, now
            self.ttr.append(0.0)
            self.started.append(0.0)
        return True

    def create(self, now: float, instant: bool = False) -> None:
        pod = _Pod(self.next_slot, now, PENDING)
        self.next_slot += 1
        if not self._schedule(pod, now, instant) and instant:
            raise RuntimeError("node pool too small for the starting fleet")
        (self.ready if pod.phase == READY else self.unready).append(pod)

    def next_event(self) -> float:
        t = math.inf
        for pod in self.unready:
            if pod.phase != PENDING and pod.until < t:
                t = pod.until
        for end, _ in self.draining:
            if end < t:
                t = end
        if self.prefetcher is not None:
            for end in self.prefetcher.pull_until.values():
                if end < t:
                    t = end
        return t

    def advance(self, now: float) -> None:
        """Fire every lifecycle timer due at or before ``now``."""
        if self.prefetcher is not None and self.prefetcher.pull_until:
            for node, end in sorted(self.prefetcher.pull_until.items(), key=lambda kv: kv[1]):
                if end <= now and self.prefetcher.finish(node, end):
                    self.image[node] = True
                    if self.used[node] == 0:
                        self.idle_since[node] = end
                    self._touch(node)
        if self.draining and any(end <= now for end, _ in self.draining):
            keep = []
            for end, node in sorted(self.draining):
                if end <= now:
                    self._free(node, end)
                else:
                    keep.append((end, node))
            self.draining = keep
        if not self.unready:
            return
        lc = self.lc
        became: list[_Pod] = []
        for pod in self.unready:
            while pod.phase in _STARTING and pod.until <= now:
                t = pod.until
                if pod.phase == PULLING:
                    self.image[pod.node] = True
                    self._touch(pod.node)
                if pod.phase == PROVISIONING and not pod.warm and lc.pull_s > 0:
                    pod.phase, pod.until = PULLING, self._pull_end(pod.node, t)
                elif pod.phase in (PROVISIONING, PULLING) and lc.init_s > 0:
                    pod.phase, pod.until = INITIALIZING, t + lc.init_s
                else:
                    pod.phase, pod.ready_at = READY, t
                    self.ttr.append(t - pod.created)
                    self.started.append(t - pod.created)
                    became.append(pod)
        if became:
            became.sort(key=lambda p: (p.ready_at, p.slot))
            self.ready.extend(became)
            self.unready = [p for p in self.unready if p.phase != READY]

    def _free(self, node: int, now: float) -> None:
        self.used[node] -= self.tp
        if self.used[node] == 0:
            self.idle_since[node] = now
        self._touch(node)
        for pod in self.unready:
            if pod.phase == PENDING and not self._schedule(pod, now):
                break
        if any(p.phase == READY for p in self.unready):
            self.ready.extend(p for p in self.unready if p.phase == READY)
            self.unready = [p for p in self.unready if p.phase != READY]

    def scale_to(self, desired: int, now: float, drain_s: float, end_s: float) -> None:
        n = len(self.ready) + len(self.unready)
        if desired > n:
            for _ in range(desired - n):
                self.create(now)
            return
        excess = n - desired
        if excess <= 0:
            return
        # unscheduled first, then not ready (newest first), then the most recently ready
        order = sorted(self.unready, key=lambda p: (_UNREADY_ORDER[p.phase], -p.created, -p.slot))
        victims = order[:excess]
        if victims:
            gone = {id(v) for v in victims}
            self.unready = [p for p in self.unready if id(p) not in gone]
        for pod in victims:
            self.gpu_seconds += (min(now, end_s) - pod.created) * self.tp
            if pod.node >= 0:
                self._free(pod.node, now)
        for _ in range(excess - len(victims)):
            pod = self.ready.pop()
            if drain_s > 0:
                end = now + drain_s
                self.gpu_seconds += (min(end, end_s) - pod.created) * self.tp
                self.draining.append((end, pod.node))
            else:
                self.gpu_seconds += (min(now, end_s) - pod.created) * self.tp
                self._free(pod.node, now)

    def counts(self, now: float) -> ReplicaCounts:
        pending = 0
        ages: list[float] = []
        for pod in self.unready:
            if pod.phase == PENDING:
                pending += 1
            ages.append(now - pod.created)
        ages.sort(reverse=True)
        ready = len(self.ready)
        starting = len(self.unready) - pending
        return ReplicaCounts(
            spec=ready + starting + pending,
            ready=ready,
            starting=starting,
            pending=pending,
            terminating=len(self.draining),
            oldest_unready_age_s=ages[0] if ages else 0.0,
            starting_ages_s=tuple(ages),
        )

    def ready_count(self) -> int:
        return len(self.ready)

    def close(self, end_s: float) -> None:
        for pod in (*self.ready, *self.unready):
            self.gpu_seconds += max(0.0, end_s - pod.created) * self.tp
        self.ready, self.unready = [], []


# -- the run --------------------------------------------------------------------------------


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


@dataclass(slots=True)
class _Sample:
    t: float
    done: float
    prompt: float
    gen: float
    waiting: float


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
    fleet = _Lifecycle(config.lifecycle, tp, nodes)
    fleet.prefetcher = _prefetcher(config, nodes, tp)
    for _ in range(config.start_replicas):
        fleet.create(0.0, instant=True)
    spec = config.start_replicas
    spec_hpa = policy.hpa_spec() if policy.actuation == "hpa" else None
    hpa = HpaController(spec_hpa, sync_period_s=tick) if spec_hpa is not None else None

    keep = int(math.ceil(config.rate_window_s / tick)) + 1
    samples: deque[_Sample] = deque(maxlen=keep)
    lat: deque[tuple[float, float, int, float, float]] = deque(maxlen=keep - 1)
    """Per tick interval: (arrivals, wait, grid index, tpot p90, queue wait p90)."""
    done = prompt_tok = gen_tok = 0.0
    per_window = _window_mix(window_lengths, rates.size, m, config.work_weights)
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
    samples.append(_Sample(0.0, 0.0, 0.0, 0.0, 0.0))
    k = 0
    while True:
        now = k * tick
        fleet.advance(now)
        counts = fleet.counts(now)
        snapshot = _snapshot(
            config, now, counts, samples, lat, (batch, backlog, queued, stuck), m, fleet
        )
        rec = policy.recommend(snapshot)
        desired = _decide(rec, hpa, now, spec, snapshot.replicas.spec, snapshot.replicas.ready)
        desired = max(config.min_replicas, min(config.max_replicas, desired))
        if desired != spec:
            changes += 1
            spec = desired
        live = len(fleet.ready) + len(fleet.unready)
        fleet.scale_to(spec, now, _drain_s(m, batch) if spec < live else 0.0, duration)
        if fleet.prefetcher is not None:
            fleet.expire_images(now)
            fleet.prefetcher.plan(
                now,
                rec,
                used=fleet.used,
                warm=fleet.image,
                pods_on={i: u // tp for i, u in enumerate(fleet.used) if u},
            )
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
            n = fleet.ready_count()
            arrivals = lam * dt
            if n == 0:
                backlog += arrivals
                stuck = -1  # held at the gateway: every replica that comes up takes a share
                n_prev = 0
                served = 0.0
                wait = math.inf
                ok_share = 0.0
                tpot90 = float(m.sat_step)
                gi = _GRID - 1
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
                served, wait, ok_share, tpot90, gi, batch, backlog, stuck = _advance(
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
        samples.append(_Sample(stop, done, prompt_tok, gen_tok, backlog + queued))
        k += 1
    fleet.close(duration)
    # pods still draining at the end were charged up to their drain's end, capped at duration
    return FluidOutput(
        duration_s=duration,
        requests=total_req,
        met=total_met,
        gpu_seconds=fleet.gpu_seconds,
        cold_starts=fleet.cold,
        warm_starts=fleet.warm,
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
        time_to_ready=fleet.started,
        prefetch=fleet.prefetcher,
    )


def _window_mix(
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


def _drain_s(m: ReplicaModel, b: float) -> float:
    """Expected drain time of a ready replica holding a mean batch ``b``: the remaining decode of
    its longest in-flight request (half the ``1 - 1/(b+1)`` output quantile), if it holds any."""
    if b <= 0.0:
        return 0.0
    q = float(np.interp(1.0 - 1.0 / (b + 1.0), m.output_q_levels, m.output_q))
    step_s = float(m.step_grid[m.index_at(b)])
    return (1.0 - math.exp(-b)) * step_s * q / 2.0


def _advance(
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
            gi = _GRID - 1
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


def _snapshot(
    config: SimConfig,
    now: float,
    counts: ReplicaCounts,
    samples: deque[_Sample],
    lat: deque[tuple[float, float, int, float, float]],
    state: tuple[float, float, float, int],
    m: ReplicaModel,
    fleet: _Lifecycle,
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
    ttr = fleet.ttr
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
        ttft90 = float(np.interp(0.9, _TTFT_QUANTILES, m.ttft_q[gi])) + wait
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
    nq = _TTFT_QUANTILES.size
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
