"""``dynamo-pd``: NVIDIA Dynamo's SLA planner sizing a disaggregated prefill or decode pool.

Dynamo's throughput-based planner was written for disaggregated serving; ``dynamo``
(:mod:`autoscaler.policies.dynamo`) adapts it to aggregated replicas, this module is the
original shape: one planner instance per role here, each seeing its own pool's metrics (the
planner reads the frontend's; per pool, the prefill engines' TTFT and the decode engines' ITL
are the parts of those it uses). What it does, from the planner design doc
(docs.nvidia.com/dynamo, "Planner Design", throughput-based scaling) and ``planner_core.py``:

* every adjustment interval (180 s) it records the interval's request rate and mean ISL / OSL,
  forecasts the next interval's with one load predictor each (default ``arima``), and computes
  a correction factor per role: observed TTFT / TTFT the profile expects at the observed ISL
  (prefill), observed ITL / ITL the profile expects at the observed concurrency (decode);
* prefill replicas = ceil(forecast rate x ISL x min(1, prefill correction) / prefill
  throughput per GPU / GPUs per engine): the profile's prefill throughput is ISL / TTFT of one
  request at that ISL (the profiler measures a lone prompt, no in-flight batching);
* decode replicas = ceil(forecast rate x OSL / decode throughput per GPU / GPUs per engine),
  the throughput being the best the decode interpolator finds whose ITL meets ITL target /
  decode correction at context ISL + OSL / 2;
* at least ``min_endpoint`` (1) per role; no rate limit, no notion of replicas still starting.

The profile: the pre-deployment profiler's tables are replaced by our performance profile of
the same engine (:class:`~autoscaler.perf.model.PerfProfile`): TTFT(ISL) = one prefill of ISL
tokens, ITL(batch, context) = one decode step. The targets are the run's SLO (TTFT budget at the
ISL, TPOT), the budget the run's replica cap. Setting: a throughput scale as for ``dynamo``
(swept 0.7, 0.85, 1.0, 1.2).
"""

from __future__ import annotations

import math

from autoscaler.core.recommendation import Candidate, Recommendation, hold
from autoscaler.core.signals import SignalSnapshot
from autoscaler.perf.model import PerfProfile
from autoscaler.policies.arima import ArimaPredictor
from autoscaler.policies.base import Actuation, PolicyContext
from autoscaler.policies.dynamo import ADJUSTMENT_INTERVAL_S, DEFAULT_THROUGHPUT_SCALE

SWEEP = (0.7, 0.85, 1.0, 1.2)


def decode_throughput_at(profile: PerfProfile, itl_s: float, context: float) -> float:
    """Best decode tokens/s of one replica whose step meets ``itl_s`` at ``context`` tokens per
    sequence (the decode interpolator's answer; a batch of one when nothing meets it)."""
    best = 1.0 / profile.decode_step_s(1, context)
    kv_limit = max(1, int(profile.kv_capacity_tokens // max(context, 1.0)))
    for b in range(1, min(profile.max_num_seqs, kv_limit) + 1):
        step = profile.decode_step_s(b, b * context)
        if step <= itl_s:
            best = max(best, b / step)
    return best


class DynamoPdPolicy:
    """One role of Dynamo's disaggregated planner (``role``: ``prefill`` or ``decode``)."""

    actuation: Actuation = "native"

    def __init__(
        self, ctx: PolicyContext, role: str, profile: PerfProfile, setting: float | None = None
    ) -> None:
        if role not in ("prefill", "decode"):
            raise ValueError(f"dynamo-pd: unknown role {role!r} (prefill or decode)")
        self.name = "dynamo-pd"
        self.ctx = ctx
        self.role = role
        self.profile = profile
        self.setting = DEFAULT_THROUGHPUT_SCALE if setting is None else float(setting)
        self._start: float | None = None
        self._seen: list[tuple[float, float, float, float | None, float | None]] = []
        self._decision: int | None = None
        self.rate = ArimaPredictor()
        self.length = ArimaPredictor()

    def hpa_spec(self) -> None:
        return None

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        if snapshot.stale:
            return hold(snapshot.workload, snapshot.timestamp, "stale data: keep the count")
        now = snapshot.timestamp
        self._observe(snapshot)
        if self._start is None:
            self._start = now
        if now - self._start < ADJUSTMENT_INTERVAL_S - 1e-9 or not self._seen:
            return self._keep(snapshot, "between adjustments")
        seen, self._seen = self._seen, []
        self._start = now
        n = len(seen)
        rate = sum(s[0] for s in seen) / n
        isl = sum(s[1] for s in seen) / n
        osl = sum(s[2] for s in seen) / n
        latencies = [s[3] for s in seen if s[3] is not None]
        concurrency = [s[4] for s in seen if s[4] is not None]
        self.rate.add(rate)
        self.length.add(isl if self.role == "prefill" else osl)
        want_rate = self.rate.predict()
        want_len = self.length.predict() or (isl if self.role == "prefill" else osl)
        latency = sum(latencies) / len(latencies) if latencies else None
        prof = self.profile
        slo = self.ctx.slo
        if self.role == "prefill":
            expected = prof.prefill_s(max(1, round(isl)))
            corr = latency / expected if latency is not None and expected > 0 else 1.0
            thpt = want_len / prof.prefill_s(max(1, round(want_len))) * self.setting
            need = want_rate * want_len * min(1.0, corr) / thpt
            why = (
                f"{want_rate:.2f} req/s x ISL {want_len:.0f} x min(1, {corr:.2f}) / "
                f"{thpt:.0f} tok/s"
            )
        else:
            context = isl + osl / 2.0
            batch = sum(concurrency) / len(concurrency) if concurrency else 1.0
            b = max(1, round(batch))
            expected = prof.decode_step_s(b, b * context)
            corr = latency / expected if latency is not None and expected > 0 else 1.0
            target = slo.tpot_s / corr if corr > 0 else slo.tpot_s
            thpt = decode_throughput_at(prof, target, context) * self.setting
            need = want_rate * want_len / thpt
            why = (
                f"{want_rate:.2f} req/s x OSL {want_len:.0f} / {thpt:.0f} tok/s at ITL "
                f"{target:.4f} s (correction {corr:.2f})"
            )
        raw = max(1, math.ceil(need - 1e-9))
        self._decision = max(self.ctx.min_replicas, min(self.ctx.max_replicas, raw))
        return Recommendation(
            workload=snapshot.workload,
            timestamp=now,
            desired_replicas=self._decision,
            winner="sla-planner",
            candidates=(Candidate(self.role, need, why),),
        )

    def _observe(self, s: SignalSnapshot) -> None:
        rate = s.request_rate
        isl, osl = s.mean_prompt_tokens, s.mean_output_tokens
        if rate is None or isl is None or osl is None:
            return
        latency = s.ttft_p90_s if self.role == "prefill" else s.tpot_p90_s
        ready = s.replicas.ready
        running = s.running / ready if s.running is not None and ready > 0 else None
        self._seen.append((rate, isl, osl, latency, running))

    def _keep(self, s: SignalSnapshot, why: str) -> Recommendation:
        desired = self._decision
        if desired is None:
            desired = min(self.ctx.max_replicas, max(self.ctx.min_replicas, s.replicas.spec))
        return Recommendation(
            workload=s.workload,
            timestamp=s.timestamp,
            desired_replicas=desired,
            winner="interval",
            candidates=(Candidate("interval", float(desired), why),),
        )
