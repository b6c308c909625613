"""``dynamo``: NVIDIA Dynamo's SLA planner, adapted to an aggregated fleet.

Every adjustment interval (180 s) the planner adds the last interval's request rate and mean
input/output lengths to three load predictors and forecasts the next interval's with them (the
default ``arima`` predictor, :mod:`autoscaler.policies.arima`), compares the observed TTFT and
ITL with what its performance profile expected at the observed load (correction factors), and
sizes prefill and decode capacity from the profile's throughput per replica. It scales the
deployment itself, with no rate limit and no notion of replicas still starting.

Dynamo sizes separate prefill and decode pools. Our replicas do both (continuous batching with
chunked prefill), and a replica's capacity is one budget of weighted token work:
``prefill_weight * prompt_tokens/s + decode_weight * output_tokens/s <= replica_token_capacity``.
The two needs therefore *add up* on a replica: replicas = ceil(prefill need + decode need), each in
fractional replicas. Taking the max would let prefill and decode both use the same capacity.
Dynamo's newer aggregated mode (``core/throughput_scaling.py``, ``_throughput_agg``) makes the same
choice through a joint model of one engine serving both.

The profile is our engine profile's seed: prefill throughput per replica ``capacity /
prefill_weight`` prompt tokens/s, decode throughput ``capacity / decode_weight`` output tokens/s at
the run's TPOT SLO, and an ITL that grows linearly with the decode load from 25 % of the SLO on an
empty batch to the SLO at that throughput (Dynamo: "ITL grows near-linearly with active kv
usage"). It is used only through the correction factors, so a seed that is off is corrected by
what the fleet shows, as in Dynamo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoscaler.core.recommendation import Candidate, Recommendation, hold
from autoscaler.core.signals import SignalSnapshot
from autoscaler.policies.arima import ArimaPredictor
from autoscaler.policies.base import Actuation, PolicyContext

DEFAULT_THROUGHPUT_SCALE = 1.0
ADJUSTMENT_INTERVAL_S = 180.0
"""``--adjustment-interval`` default: 12 ticks of 15 s."""
IDLE_ITL_FRACTION = 0.25
"""ITL of an almost empty decode batch as a fraction of the TPOT SLO (profile stand-in)."""
PROFILE_MIN_FRACTION = 0.05
PROFILE_MAX_FRACTION = 2.0
"""Range of decode throughput, as a fraction of the seed's, that the stand-in profile covers;
Dynamo's interpolator likewise only answers within the profiled range."""


@dataclass(frozen=True, slots=True)
class _Observation:
    """One tick's inputs to the planner (None where the snapshot lacks the signal)."""

    rate: float | None
    isl: float | None
    osl: float | None
    ttft_s: float | None
    itl_s: float | None
    decode_tokens_per_replica: float | None


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return sum(present) / len(present) if present else None


class DynamoPolicy:
    """Dynamo SLA planner (default ``arima`` load predictor) with the run's SLO and replica cap.

    Source: ai-dynamo/dynamo ``docs/architecture/sla_planner.md`` (correction factors,
    ``prefill = ceil(req * isl / interval * min(1, corr_p) / thpt)``, decode from the best
    throughput meeting ``itl / corr_d`` at context ``isl + osl / 2``) and
    ``components/src/dynamo/planner/defaults.py`` (adjustment interval 180 s, ``--ttft`` 500 ms,
    ``--itl`` 50 ms, ``--max-gpu-budget`` 8, ``--min-endpoint`` 1). As DESIGN.md asks, the TTFT and
    ITL targets are the run's SLO (``ctx.slo.ttft_s``, ``ctx.slo.tpot_s``) and the budget is the
    run's ``max_replicas``, not 8 GPUs. The load predictor is Dynamo's default, ``arima``
    (``SLAPlannerDefaults.load_predictor``): one :class:`~autoscaler.policies.arima.ArimaPredictor`
    each for the request rate, the mean input length and the mean output length, fed one point
    per interval; the plan sizes for their one-step forecasts, the corrections use what was
    observed (as ``planner_core.py`` does).

    Setting: a throughput scale applied to the profile's per-replica throughputs (default 1.0;
    swept 0.7, 0.85, 1.0, 1.2); below 1 plans headroom, above 1 trusts the replica for more.

    The planner acts on the first tick at least 180 s after its last action (every 12th tick) and
    keeps its count in between. The snapshot has p90 TTFT and TPOT where Dynamo averages; the
    interval means of those p90s stand in for its averages, which makes the corrections lean
    towards more replicas.
    """

    name: str = "dynamo"
    actuation: Actuation = "native"

    def __init__(self, ctx: PolicyContext, setting: float | None = None) -> None:
        self.ctx = ctx
        self.setting: float = DEFAULT_THROUGHPUT_SCALE if setting is None else float(setting)
        self._interval_start: float | None = None
        self._observations: list[_Observation] = []
        self._decision: int | None = None
        self._decision_candidates: tuple[Candidate, ...] = ()
        self.rate_predictor = ArimaPredictor()
        self.isl_predictor = ArimaPredictor()
        self.osl_predictor = ArimaPredictor()

    def hpa_spec(self) -> None:
        """Native: the planner patches the deployment's replica count itself."""
        return None

    @property
    def prefill_tokens_per_replica(self) -> float:
        """Profile: prompt tokens/s one replica sustains when it only prefills."""
        return self.ctx.replica_token_capacity / self.ctx.prefill_weight

    @property
    def decode_tokens_per_replica(self) -> float:
        """Profile: output tokens/s one replica sustains at the TPOT SLO when it only decodes."""
        return self.ctx.replica_token_capacity / self.ctx.decode_weight

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        """Record this tick; every 180 s, plan the next interval."""
        if snapshot.stale:
            return hold(snapshot.workload, snapshot.timestamp, "stale data: keep the count")
        now = snapshot.timestamp
        self._observations.append(self._observe(snapshot))
        if self._interval_start is None:
            self._interval_start = now
        if now - self._interval_start < ADJUSTMENT_INTERVAL_S - 1e-9:
            return self._keep(snapshot, f"next adjustment in {self._next_in(now):.0f} s")
        observations, self._observations = self._observations, []
        self._interval_start = now
        planned = self._plan(observations)
        if planned is None:
            return self._keep(snapshot, "no request rate or sequence lengths this interval")
        self._decision, self._decision_candidates = planned
        return Recommendation(
            workload=snapshot.workload,
            timestamp=now,
            desired_replicas=self._decision,
            winner="sla-planner",
            candidates=self._decision_candidates,
        )

    def _next_in(self, now: float) -> float:
        start = now if self._interval_start is None else self._interval_start
        return max(0.0, start + ADJUSTMENT_INTERVAL_S - now)

    def _keep(self, snapshot: SignalSnapshot, why: str) -> Recommendation:
        """Between adjustments the planner's last count stands (the current one before any)."""
        if self._decision is not None:
            desired = self._decision
        else:
            spec = snapshot.replicas.spec
            desired = min(self.ctx.max_replicas, max(self.ctx.min_replicas, spec))
        return Recommendation(
            workload=snapshot.workload,
            timestamp=snapshot.timestamp,
            desired_replicas=desired,
            winner="interval",
            candidates=(Candidate("interval", float(desired), why),) + self._decision_candidates,
        )

    def _observe(self, s: SignalSnapshot) -> _Observation:
        rate = s.demand_requests_per_s()
        isl = s.mean_prompt_tokens
        osl = s.mean_output_tokens
        if s.request_rate is not None and s.request_rate > 0:
            if isl is None and s.prompt_tokens_rate is not None:
                isl = s.prompt_tokens_rate / s.request_rate
            if osl is None and s.generation_tokens_rate is not None:
                osl = s.generation_tokens_rate / s.request_rate
        decode: float | None = None
        if s.replicas.ready > 0:
            if s.generation_tokens_rate is not None:
                decode = s.generation_tokens_rate / s.replicas.ready
            elif s.request_rate is not None and osl is not None:
                decode = s.request_rate * osl / s.replicas.ready
        return _Observation(rate, isl, osl, s.ttft_p90_s, s.tpot_p90_s, decode)

    def _plan(self, obs: list[_Observation]) -> tuple[int, tuple[Candidate, ...]] | None:
        """One adjustment: load forecast, correction factors, prefill + decode needs."""
        seen_rate = _mean([o.rate for o in obs])
        seen_isl = _mean([o.isl for o in obs])
        seen_osl = _mean([o.osl for o in obs])
        if seen_rate is None or seen_isl is None or seen_osl is None:
            return None
        self.rate_predictor.add(seen_rate)
        self.isl_predictor.add(seen_isl)
        self.osl_predictor.add(seen_osl)
        rate = self.rate_predictor.predict()
        isl = self.isl_predictor.predict() or seen_isl
        osl = self.osl_predictor.predict() or seen_osl
        ttft = _mean([o.ttft_s for o in obs])
        itl = _mean([o.itl_s for o in obs])
        decode_load = _mean([o.decode_tokens_per_replica for o in obs])
        slo = self.ctx.slo
        p0 = self.prefill_tokens_per_replica
        d0 = self.decode_tokens_per_replica

        expected_ttft = seen_isl / p0
        if ttft is not None and expected_ttft > 0:
            corr_p = ttft / expected_ttft
            p_why = f"TTFT {ttft:.3f} s / expected {expected_ttft:.3f} s"
        else:
            corr_p, p_why = 1.0, "no TTFT: correction 1"
        prefill_tokens = rate * isl * min(1.0, corr_p)
        prefill_need = prefill_tokens / (p0 * self.setting)

        if itl is not None and decode_load is not None:
            u = min(max(decode_load / d0, 0.0), PROFILE_MAX_FRACTION)
            expected_itl = slo.tpot_s * (IDLE_ITL_FRACTION + (1.0 - IDLE_ITL_FRACTION) * u)
            corr_d = itl / expected_itl
            d_why = f"ITL {itl:.4f} s / expected {expected_itl:.4f} s"
        else:
            corr_d, d_why = 1.0, "no ITL: correction 1"
        corrected_itl = slo.tpot_s / corr_d if corr_d > 0 else slo.tpot_s
        frac = (corrected_itl / slo.tpot_s - IDLE_ITL_FRACTION) / (1.0 - IDLE_ITL_FRACTION)
        frac = min(max(frac, PROFILE_MIN_FRACTION), PROFILE_MAX_FRACTION)
        decode_thpt = d0 * frac * self.setting
        decode_tokens = rate * osl
        decode_need = decode_tokens / decode_thpt

        total = prefill_need + decode_need
        raw = max(math.ceil(total - 1e-9), 1)
        desired = min(self.ctx.max_replicas, max(self.ctx.min_replicas, raw))
        candidates = (
            Candidate(
                "prefill",
                prefill_need,
                f"forecast {rate:.2f} req/s x ISL {isl:.0f} x min(1, {corr_p:.2f}) = "
                f"{prefill_tokens:.0f} "
                f"tok/s over {p0 * self.setting:.0f} tok/s per replica ({p_why})",
            ),
            Candidate(
                "decode",
                decode_need,
                f"forecast {rate:.2f} req/s x OSL {osl:.0f} = {decode_tokens:.0f} tok/s over "
                f"{decode_thpt:.0f} tok/s per replica meeting ITL {corrected_itl:.4f} s "
                f"= SLO / {corr_d:.2f} ({d_why})",
            ),
            Candidate(
                "sla-planner",
                float(desired),
                f"ceil(prefill {prefill_need:.2f} + decode {decode_need:.2f}) = {raw}, "
                f"within [{self.ctx.min_replicas}, {self.ctx.max_replicas}]",
            ),
        )
        return desired, candidates
