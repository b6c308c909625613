"""The capacity model shared by the live service, the simulator and the oracle.

Token work is the unit every policy counts demand in: a prefill token is worth 1, a decode token
what it costs a replica relative to a prefill token at the SLO-limited batch. The seed capacity is
what a replica sustains at the SLO from the performance profile alone; the ``forecast`` policy
starts from it and learns the rest online. It lives outside ``simulation`` because ``serve`` needs
it too, and the same numbers must drive both.
"""

from __future__ import annotations

from autoscaler.core.slo import SloSpec
from autoscaler.perf.model import PerfProfile


def decode_batch_at_slo(profile: PerfProfile, slo: SloSpec, mean_context: float) -> int:
    """Largest decode batch whose step time meets the TPOT SLO and whose contexts fit in KV."""
    kv_cap = max(1, int(profile.kv_capacity_tokens // max(mean_context, 1.0)))
    best = 1
    for b in range(1, profile.max_num_seqs + 1):
        if b > kv_cap:
            break
        if profile.decode_step_s(b, b * mean_context) <= slo.tpot_s:
            best = b
    return best


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
