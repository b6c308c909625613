"""Filling the demand signals an engine does not export, as the engine profiles document.

Each profile lists its ``missing`` signals and the fallback of each
(:data:`autoscaler.engines.base.DEFAULT_FALLBACKS`); this module is where the policy applies the
demand-side ones, so a Triton/TensorRT-LLM fleet (no token counters) or a fleet whose token
counters are briefly absent still gets a token-work demand instead of holding forever. Every
fallback used is named, and the recommendation carries the names so an operator can see that a
number rests on a seed rather than on a measurement.

Latency and saturation fallbacks need no filling: the policy already takes the worst of the
latency signals it has (TTFT, else queue time) and the queue length when the KV gauge is absent.
"""

from __future__ import annotations

from dataclasses import replace

from autoscaler.core.signals import SignalSnapshot
from autoscaler.policies.base import PolicyContext


def fill_demand(snap: SignalSnapshot, ctx: PolicyContext) -> tuple[SignalSnapshot, tuple[str, ...]]:
    """The snapshot with missing demand fields derived from the others, and what was derived.

    * request rate missing, generation tokens known: requests = generation tokens / the seed's
      mean output tokens;
    * prompt or generation token rate missing, request rate known: request rate x the seed's mean
      prompt (output) tokens, i.e. demand counted in requests only;
    * mean prompt or output size missing: the observed ratio of rates (a measurement, not
      listed), else the seed's mean.

    Nothing is invented from nothing: with no demand signal at all the snapshot stays as it is
    and the policy holds.
    """
    used: list[str] = []
    s = snap
    if s.request_rate is None and s.generation_tokens_rate is not None:
        s = replace(s, request_rate=s.generation_tokens_rate / ctx.seed_mean_output_tokens)
        used.append("request_rate = generation tokens rate / seed mean output tokens")
    rate = s.request_rate
    if rate is not None:
        if s.prompt_tokens_rate is None:
            s = replace(s, prompt_tokens_rate=rate * ctx.seed_mean_prompt_tokens)
            used.append("prompt_tokens_rate = request rate x seed mean prompt tokens")
        if s.generation_tokens_rate is None:
            s = replace(s, generation_tokens_rate=rate * ctx.seed_mean_output_tokens)
            used.append("generation_tokens_rate = request rate x seed mean output tokens")
    if s.mean_prompt_tokens is None:
        if s.prompt_tokens_rate and s.request_rate:  # measured, not a fallback
            s = replace(s, mean_prompt_tokens=s.prompt_tokens_rate / s.request_rate)
        else:
            s = replace(s, mean_prompt_tokens=ctx.seed_mean_prompt_tokens)
            used.append("mean_prompt_tokens = seed mean prompt tokens")
    if s.mean_output_tokens is None:
        if s.generation_tokens_rate and s.request_rate:  # measured, not a fallback
            s = replace(s, mean_output_tokens=s.generation_tokens_rate / s.request_rate)
        else:
            s = replace(s, mean_output_tokens=ctx.seed_mean_output_tokens)
            used.append("mean_output_tokens = seed mean output tokens")
    return s, tuple(used)
