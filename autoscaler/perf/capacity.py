"""The capacity model shared by the live service, the simulator and the oracle.

Token work is the unit every policy counts demand in: a prefill token is worth 1, a decode token
what it costs a replica relative to a prefill token at the SLO-limited batch. The seed capacity is
what a replica sustains at the SLO from the performance profile alone; the ``forecast`` policy
starts from it and learns the rest online. It lives outside ``simulation`` because ``serve`` needs
it too, and the same numbers must drive both.
"""

from __future__ import annotations

import math

from autoscaler.core.slo import SloSpec
from autoscaler.perf.model import PerfProfile


def decode_batch_at_slo(profile: PerfProfile, slo: SloSpec, mean_context: float) -> int:
    """Largest decode batch whose step time meets the TPOT SLO and whose contexts fit in KV.

    A bisection: the step time grows with the batch (the fitted coefficients are non-negative),
    so the batches that meet the SLO are a prefix. The live policy sizes every workload's
    capacity from it each tick (:func:`mix_capacity`), where a scan of all 256 batch sizes cost
    ~0.1 ms per workload. A profile with a negative coefficient is scanned instead.
    """
    kv_cap = max(1, int(profile.kv_capacity_tokens // max(mean_context, 1.0)))
    top = min(profile.max_num_seqs, kv_cap)

    def meets(b: int) -> bool:
        return profile.decode_step_s(b, b * mean_context) <= slo.tpot_s

    coefficients = (
        profile.decode_per_seq_s,
        profile.decode_per_seq2_s,
        profile.decode_per_ctx_token_s,
    )
    if min(coefficients) < 0:
        return max((b for b in range(1, top + 1) if meets(b)), default=1)
    lo, hi = 0, top  # meets(lo) holds (0: none yet), meets(hi + 1) does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if meets(mid):
            lo = mid
        else:
            hi = mid - 1
    return max(lo, 1)


def work_weights(
    profile: PerfProfile, slo: SloSpec, mean_context: float = 1500.0
) -> tuple[float, float]:
    """(prefill, decode) weights of one token of work, in prefill-token equivalents.

    One decode token costs ``step(B*) / B*`` at the SLO-limited batch ``B*``; one prefill token
    costs ``prefill_per_token_s`` plus the attention term of a typical prompt. Counting demand in
    this unit makes a shift to long prompts raise the load at the same request rate.
    """
    b = decode_batch_at_slo(profile, slo, mean_context)
    decode_cost = profile.decode_step_s(b, b * mean_context) / b
    prefill_cost = profile.prefill_per_token_s + profile.prefill_attn_s * 1024.0
    return 1.0, decode_cost / prefill_cost


def seed_capacity(profile: PerfProfile, slo: SloSpec, utilisation: float = 0.7) -> float:
    """Token-work rate one replica sustains at the SLO, from the profile alone (no trace).

    Used to seed policies that learn capacity online; it assumes the replica is busy
    ``utilisation`` of the time, the usual queueing head-room at a p99 latency target.
    """
    wp, _ = work_weights(profile, slo)
    prefill_cost = profile.prefill_per_token_s + profile.prefill_attn_s * 1024.0
    return utilisation * wp / prefill_cost


PREFILL_SHARE = 0.32
"""Share of a replica's time that may go to prefill at the SLO. Past it, decode steps that carry a
prefill chunk stretch the TPOT of the requests decoding beside it and queued prompts wait past
their TTFT budget. The value is the median, over the nine workload families, of the prefill share
the fleet oracle's capacity implies (0.23 to 0.42 per family; ``benchmarks/capacity_model.py``
prints the table and the leave-one-out medians)."""

DECODE_SHARE = 1.0
"""Share of a replica's time that may go to decoding at the SLO-limited batch: all of it, because
the batch size :func:`decode_batch_at_slo` picks already keeps each step within the TPOT budget."""


def prompt_second_moment(mean: float, p90: float | None) -> float:
    """E[L^2] of prompt sizes from their mean and p90, taking the sizes as log-normal.

    Prefill attention grows with the square of the prompt, so the mean alone under-counts a
    heavy-tailed mix. The log-normal's spread follows from ``p90 / mean = exp(1.2816 s - s^2/2)``
    (increasing in ``s`` up to ``s = 1.2816``, where it is capped), solved in closed form. Without
    a p90, or with one at or below the mean, the spread is taken as zero.
    """
    if p90 is None or not p90 > mean > 0:
        return mean * mean
    # s^2/2 - z s + log(p90/mean) = 0, the smaller root (past the cap, no root: s = z)
    z = 1.2816
    sigma = z - math.sqrt(max(0.0, z * z - 2.0 * math.log(p90 / mean)))
    return mean * mean * math.exp(sigma * sigma)


def mix_capacity(
    profile: PerfProfile,
    slo: SloSpec,
    mean_prompt: float,
    p90_prompt: float | None,
    mean_output: float,
    prefill_share: float = PREFILL_SHARE,
    decode_share: float = DECODE_SHARE,
    weights: tuple[float, float] | None = None,
) -> float:
    """Token-work rate one replica sustains at the SLO for this request mix.

    The replica has two budgets, prefill time and decode time, and the binding one decides
    the request rate. The rate is ``min(prefill_share / E[prefill s], decode_share / E[decode
    s])``, and the capacity is that rate times the mean request's work. The fleet oracle's
    capacity in work units varies fivefold across the workload families (1,945 for 16k-token
    prompts to 10,262 for short prompts with long answers). One constant seed cannot follow
    that. The two budgets, fitted once, land within -23% to +41% of the oracle on every
    family.
    """
    wp, wd = work_weights(profile, slo)
    prefill_s = profile.prefill_per_token_s * mean_prompt + profile.prefill_attn_s * (
        prompt_second_moment(mean_prompt, p90_prompt)
    )
    context = mean_prompt + mean_output / 2.0
    batch = decode_batch_at_slo(profile, slo, context)
    decode_s = mean_output * profile.decode_step_s(batch, batch * context) / batch
    rate = min(
        prefill_share / prefill_s if prefill_s > 0 else math.inf,
        decode_share / decode_s if decode_s > 0 else math.inf,
    )
    if not math.isfinite(rate):
        return 0.0
    return rate * (mean_prompt * wp + mean_output * wd)
