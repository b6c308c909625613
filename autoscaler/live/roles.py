"""What the live loop adds to a role target's snapshot before its policy sees it.

The role policy (:class:`~autoscaler.policies.role_forecast.RoleForecastPolicy`) sizes the
decode pool from generation tokens/s at the observed mean output per request. The simulator's
view fills ``mean_output_tokens`` from its requests; engines export no per-request output
histogram the profiles read (vLLM has ``vllm:request_generation_tokens``, the others differ), and
adding a query would change every aggregated workload's query set. Over one rate window the
mean output per finished request is the generation rate over the completion rate, both already
queried, so a role target's snapshot gets it from them. Nothing is made up: with no
completions in the window (or either rate missing) the field stays ``None`` and the decode
policy holds (fail static).
"""

from __future__ import annotations

from dataclasses import replace

from autoscaler.core.signals import SignalSnapshot


def with_output_mean(snap: SignalSnapshot) -> SignalSnapshot:
    """``snap`` with ``mean_output_tokens`` = generation tokens/s / requests/s where it is
    missing and both rates are known and positive."""
    if snap.mean_output_tokens is not None:
        return snap
    tokens, requests = snap.generation_tokens_rate, snap.request_rate
    if tokens is None or requests is None or requests <= 0.0 or tokens < 0.0:
        return snap
    return replace(snap, mean_output_tokens=tokens / requests)
