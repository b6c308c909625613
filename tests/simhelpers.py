"""Small builders for simulator tests: a hand-made profile and tiny traces."""

from __future__ import annotations

import numpy as np

from autoscaler.perf.model import PerfProfile
from autoscaler.traces.records import Trace, from_columns


def toy_profile(**overrides: float) -> PerfProfile:
    """A profile with round numbers so expected times can be computed by hand."""
    fields: dict[str, object] = dict(
        model="toy",
        gpu="toy",
        tp=4,
        prefill_base_s=0.01,
        prefill_per_token_s=0.0001,
        prefill_attn_s=0.0,
        decode_base_s=0.02,
        decode_per_seq_s=0.001,
        decode_per_seq2_s=0.0,
        decode_per_ctx_token_s=0.0,
        kv_capacity_tokens=100_000,
        max_context=32_768,
        max_batched_tokens=2048,
        max_num_seqs=64,
    )
    fields.update(overrides)
    return PerfProfile(**fields)  # type: ignore[arg-type]


def poisson_trace(rate: float, duration: float, prompt: int, output: int, seed: int = 0) -> Trace:
    rng = np.random.default_rng(seed)
    n = int(rng.poisson(rate * duration))
    arrivals = np.sort(rng.uniform(0, duration, n))
    return from_columns(
        "poisson", "synthetic", arrivals, np.full(n, prompt), np.full(n, output), duration
    )
