"""Policies for a workload with roles: one policy instance per pool (prefill, decode).

A disaggregated workload is two scale targets. Each gets its own policy instance with its own
:class:`~autoscaler.policies.base.PolicyContext`, so everything a policy learns (capacity, lead
time, forecast errors) is learned per pool, from that pool's snapshot alone:

* **prefill**: token work = prompt tokens (``prefill_weight`` 1, ``decode_weight`` 0); the seed
  capacity is the prompt tokens/s a prefill replica sustains with a full token budget, at the
  same 70% utilisation the aggregated seed assumes; its latency signal is the prefill engines'
  TTFT (a prefill engine exports no TPOT), its saturation the KV its queued prompts hold.
* **decode**: token work = decode tokens x the decode weight (``prefill_weight`` 0); the seed
  is the decode work/s of the largest batch meeting the TPOT SLO at the aggregated seed's
  typical context (1,500 tokens), at 70%; its latency signal is TPOT (a decode engine exports no
  TTFT of the client's), its saturation the decode-side KV.

``forecast`` (ours) per role is :class:`~autoscaler.policies.forecast.ForecastPolicy` built
through the registry with that context: no code of it is specialised for roles. ``dynamo-pd``
is :class:`~autoscaler.policies.dynamo_pd.DynamoPdPolicy`. Any other registry name builds the
same aggregated baseline per pool.
"""

from __future__ import annotations

from dataclasses import replace

from autoscaler.core.slo import SloSpec
from autoscaler.perf.capacity import decode_batch_at_slo
from autoscaler.perf.model import PerfProfile
from autoscaler.policies.base import Policy, PolicyContext
from autoscaler.policies.dynamo_pd import DynamoPdPolicy
from autoscaler.policies.registry import make_policy, parse_policy_name
from autoscaler.policies.role_forecast import RoleForecastPolicy

PREFILL = "prefill"
DECODE = "decode"
ROLES = (PREFILL, DECODE)
SEED_UTILISATION = 0.7
"""The aggregated seed's utilisation (:func:`autoscaler.perf.capacity.seed_capacity`)."""
SEED_CONTEXT = 1500.0
"""The aggregated weights' typical context (:func:`autoscaler.perf.capacity.work_weights`)."""


def role_seed_capacity(
    role: str, profile: PerfProfile, slo: SloSpec, weights: tuple[float, float]
) -> float:
    """One replica's work/s in its role at the SLO, from the profile alone (see module doc)."""
    if role == PREFILL:
        budget = profile.max_batched_tokens
        per_s = budget / (profile.prefill_base_s + profile.prefill_chunk_s(0, budget))
        return SEED_UTILISATION * per_s * weights[0]
    b = decode_batch_at_slo(profile, slo, SEED_CONTEXT)
    per_s = b / profile.decode_step_s(b, b * SEED_CONTEXT)
    return SEED_UTILISATION * per_s * weights[1]


def role_context(base: PolicyContext, profile: PerfProfile, role: str) -> PolicyContext:
    """One pool's context: ``base``'s SLO, tick, lead time and bounds, the role's weights and
    seed (the live loop's, for one role target whose bounds ``base`` already holds)."""
    weights = (base.prefill_weight, base.decode_weight)
    return replace(
        base,
        replica_token_capacity=role_seed_capacity(role, profile, base.slo, weights),
        prefill_weight=weights[0] if role == PREFILL else 0.0,
        decode_weight=weights[1] if role == DECODE else 0.0,
        peak_replicas=None,
    )


def role_contexts(
    base: PolicyContext,
    profile: PerfProfile,
    max_replicas: dict[str, int],
    capacity_seed_error: float = 0.0,
) -> dict[str, PolicyContext]:
    """Each pool's context: the run's SLO, tick and lead time, the role's weights, seed and cap."""
    weights = (base.prefill_weight, base.decode_weight)
    out: dict[str, PolicyContext] = {}
    for role in ROLES:
        seed = role_seed_capacity(role, profile, base.slo, weights)
        out[role] = replace(
            base,
            max_replicas=max_replicas[role],
            replica_token_capacity=seed * (1.0 + capacity_seed_error),
            prefill_weight=weights[0] if role == PREFILL else 0.0,
            decode_weight=weights[1] if role == DECODE else 0.0,
            peak_replicas=None,
        )
    return out


def make_role_policies(
    spec: str, contexts: dict[str, PolicyContext], profile: PerfProfile
) -> dict[str, Policy]:
    """One policy per role for ``spec`` (``NAME`` or ``NAME@SETTING``)."""
    name, _, raw = spec.partition("@")
    if spec == "forecast":
        return {r: RoleForecastPolicy(contexts[r], r, profile) for r in ROLES}
    if name == "forecast-agg":
        agg = "forecast" + (f"@{raw}" if raw else "")
        return {r: make_policy(agg, contexts[r]) for r in ROLES}
    if name == "dynamo-pd":
        setting = float(raw) if raw else None
        return {r: DynamoPdPolicy(contexts[r], r, profile, setting) for r in ROLES}
    parse_policy_name(spec)  # one clear error for an unknown name
    return {r: make_policy(spec, contexts[r]) for r in ROLES}
