"""Ours for one pool of a disaggregated workload: work in engine-seconds, a held peak over the
lead time, a utilisation learned from the pool's own latency SLO.

Why not the aggregated ``forecast`` per pool (still available as ``forecast-agg``)? It counts
demand in token work with fixed weights and learns one capacity in that unit. A prefill pool's
cost per prompt token grows with the prompt (the attention term: a 16k-token prompt costs ~17%
more per token than a 1k one, so a seed from typical prompts is far off on long ones), and its
band, calibrated on minute-scale forecast errors, doubles the fleet on bursty traffic (measured:
3x the two-pool oracle on ``rag-longprompt-shortout``). Here each pool counts its demand in what
the pool actually spends, *replica-seconds of engine time per second*, from the performance
profile at the mix the pool's own metrics show, so the seed is right by construction and
only a utilisation is learned:

* **prefill**: prompt tokens/s (plus the growth of the queue, and the queue itself cleared
  within a lead time) x the profile's prefill seconds per token at the observed mean prompt
  (linear + attention at that prompt + the step base over a full budget). Latency: the prefill
  engines' TTFT p90 against the TTFT budget at the p90 prompt. Saturation: prefill KV held by
  queued prompts.
* **decode**: generation tokens/s (plus queue growth x mean output) / the tokens/s of the
  largest batch that meets the TPOT SLO at the observed context (prompt + output / 2); and the
  KV the running contexts need at 85% use, whichever is larger. Latency: TPOT p90 against the
  TPOT SLO.

Demand is held at its peak over ``max(lead time, 5 min)`` and extended over the lead time by
the rise of that window's newer half's mean over its older half's (the lead time is the pool's
own observed time to ready), so a pool ordered now is sized for what arrives when it is ready;
desired = ceil(that / utilisation). The utilisation starts at 0.7 (the
aggregated seed's) and is learned per pool: -3% a tick while the latency p90 is over budget, or
the share of the window's requests over the pool's budget (from its histograms: TTFT against
each request's own budget, per-request TPOT) exceeds half the SLO's allowance, with the pool at
its count (not while replicas start); +0.5% a tick while p90 is under 60% of budget and nothing
misses; within [0.3, 0.95]. A latency over budget also scales the ready count by it (at most 1.5x a
tick), as the aggregated ``latency`` guard does. Stale or missing data holds (fail static).
The constants are the aggregated policy's where it has one (0.7, 1.5x, 85% KV, the 5-minute
window its HPA scale-down stabilisation uses), not fitted to a family.
"""

from __future__ import annotations

import math
from collections import deque

from autoscaler.core.attainment import share_within, ttft_miss_share
from autoscaler.core.recommendation import Candidate, PublishedMetric, Recommendation, hold
from autoscaler.core.signals import SignalSnapshot
from autoscaler.core.wire_names import DESIRED_METRIC
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR
from autoscaler.hpa.spec import ExternalMetricTarget, HpaSpec
from autoscaler.perf.capacity import decode_batch_at_slo
from autoscaler.perf.model import PerfProfile
from autoscaler.policies.base import Actuation, PolicyContext

START_UTILISATION = 0.7
UTILISATION_RANGE = (0.3, 0.95)
DOWN_STEP = 0.9
UP_STEP = 1.005
COMFORT = 0.6
MAX_LATENCY_SCALE = 1.5
KV_TARGET = 0.85
HOLD_S = 300.0


class RoleForecastPolicy:
    """Ours for the ``prefill`` or ``decode`` pool (see the module docstring)."""

    name = "forecast"
    actuation: Actuation = "hpa"

    def __init__(self, ctx: PolicyContext, role: str, profile: PerfProfile) -> None:
        if role not in ("prefill", "decode"):
            raise ValueError(f"forecast: unknown role {role!r} (prefill or decode)")
        self.ctx = ctx
        self.role = role
        self.profile = profile
        self.utilisation = START_UTILISATION
        keep = int(math.ceil(3600.0 / ctx.tick_s))
        self._busy: deque[float] = deque(maxlen=keep)
        self._kv_need = 0.0
        self._allowed = (1.0 - ctx.slo.attainment_target) / 2.0
        """Each pool may miss half the SLO's allowance: a request misses if either pool does."""
        """Decode: replicas whose KV the running and queued contexts fill at ``KV_TARGET``."""

    def hpa_spec(self) -> HpaSpec:
        return HpaSpec(
            metrics=(ExternalMetricTarget(DESIRED_METRIC, "AverageValue", 1.0),),
            behavior=SHIPPED_BEHAVIOR,
            min_replicas=self.ctx.min_replicas,
            max_replicas=self.ctx.max_replicas,
        )

    # -- demand in replica-seconds per second -----------------------------------------------
    def prefill_s_per_token(self, mean_prompt: float) -> float:
        prof = self.profile
        per_step = prof.prefill_base_s / prof.max_batched_tokens
        return per_step + prof.prefill_per_token_s + prof.prefill_attn_s * max(mean_prompt, 1.0)

    def decode_tokens_per_s(self, context: float) -> float:
        prof = self.profile
        b = decode_batch_at_slo(prof, self.ctx.slo, context)
        return b / prof.decode_step_s(b, b * context)

    def _busy_now(self, s: SignalSnapshot, lead: float) -> tuple[float, str] | None:
        waiting = s.waiting or 0.0
        growth = s.waiting_growth_rate or 0.0
        if self.role == "prefill":
            if s.prompt_tokens_rate is None or s.mean_prompt_tokens is None:
                return None
            prompt = s.mean_prompt_tokens
            tokens = max(0.0, s.prompt_tokens_rate + growth * prompt) + waiting * prompt / lead
            cost = self.prefill_s_per_token(prompt)
            return tokens * cost, f"{tokens:.0f} prompt tok/s x {cost * 1e3:.4f} ms/tok"
        if s.generation_tokens_rate is None or s.mean_output_tokens is None:
            return None
        output = s.mean_output_tokens
        context = (s.mean_prompt_tokens or 0.0) + output / 2.0
        rate = self.decode_tokens_per_s(context)
        tokens = max(0.0, s.generation_tokens_rate + growth * output)
        compute = tokens / rate
        ready = s.replicas.ready
        kv = (s.kv_usage or 0.0) * ready / KV_TARGET
        queued = waiting * (context + output / 2.0) / (self.profile.kv_capacity_tokens * KV_TARGET)
        kv += queued
        why = f"{tokens:.0f} decode tok/s / {rate:.0f} at the TPOT SLO; KV {kv:.2f} replicas"
        self._kv_need = kv
        return compute, why

    def _miss_share(self, s: SignalSnapshot) -> float | None:
        """Share of the window's requests over this pool's budget, from its histograms."""
        if self.role == "prefill":
            if not (s.ttft_buckets and s.prompt_buckets):
                return None
            return ttft_miss_share(s.ttft_buckets, s.prompt_buckets, self.ctx.slo)
        if not s.tpot_buckets:
            return None
        within = share_within(s.tpot_buckets, self.ctx.slo.tpot_s)
        return None if within is None else 1.0 - within

    def _latency_ratio(self, s: SignalSnapshot) -> float | None:
        slo = self.ctx.slo
        if self.role == "prefill":
            if s.ttft_p90_s is None:
                return None
            return s.ttft_p90_s / slo.ttft_budget(s.p90_prompt_tokens or 0.0)
        return None if s.tpot_p90_s is None else s.tpot_p90_s / slo.tpot_s

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        s = snapshot
        if s.stale:
            return hold(s.workload, s.timestamp, "stale data: holding (fail static)")
        ctx = self.ctx
        lead = s.time_to_ready_s or ctx.default_lead_time_s
        now = self._busy_now(s, max(lead, ctx.tick_s))
        if now is None:
            return hold(s.workload, s.timestamp, f"no {self.role} demand data yet: holding")
        busy, why = now
        self._busy.append(busy)
        window = max(1, int(math.ceil(max(lead, HOLD_S) / ctx.tick_s)))
        recent = list(self._busy)[-window:]
        peak = max(recent)
        trend = 0.0
        if len(recent) >= 4:
            half = len(recent) // 2
            older = sum(recent[:half]) / half
            newer = sum(recent[half:]) / (len(recent) - half)
            span = (len(recent) / 2.0) * ctx.tick_s
            trend = max(0.0, (newer - older) / span) * lead
        ratio = self._latency_ratio(s)
        ready = s.replicas.ready
        at_count = s.replicas.starting == 0 and s.replicas.pending == 0
        miss = self._miss_share(s)
        over = (ratio is not None and ratio > 1.0) or (miss is not None and miss > self._allowed)
        if over and at_count:
            self.utilisation = max(UTILISATION_RANGE[0], self.utilisation * DOWN_STEP)
        elif ratio is not None and ratio < COMFORT and not miss and at_count:
            self.utilisation = min(UTILISATION_RANGE[1], self.utilisation * UP_STEP)
        need = (peak + trend) / self.utilisation
        candidates = [
            Candidate(
                "forecast",
                need,
                f"peak {peak:.2f} + trend {trend:.2f} busy replicas over {lead:.0f}s "
                f"({why}) / utilisation {self.utilisation:.2f}",
            )
        ]
        if self.role == "decode" and self._kv_need > 0:
            candidates.append(Candidate("kv", self._kv_need, f"KV at {KV_TARGET:.0%} use"))
        if ratio is not None and ratio > 1.0 and ready > 0:
            scaled = ready * min(ratio, MAX_LATENCY_SCALE)
            candidates.append(
                Candidate("latency", scaled, f"{self.role} latency p90 at {ratio:.2f}x budget")
            )
        best = max(candidates, key=lambda c: c.replicas)
        desired = max(1, math.ceil(best.replicas - 1e-9))
        desired = max(ctx.min_replicas, min(ctx.max_replicas, desired))
        return Recommendation(
            workload=s.workload,
            timestamp=s.timestamp,
            desired_replicas=desired,
            winner=best.reason,
            candidates=tuple(candidates),
            metrics=(PublishedMetric(DESIRED_METRIC, float(desired)),),
        )
