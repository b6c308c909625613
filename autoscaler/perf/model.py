"""Cost model of one replica, the form every profile's coefficients plug into.

Prefill of a chunk of ``L`` prompt tokens starting at offset ``o`` of its request costs
``prefill_per_token_s * L + prefill_attn_s * ((o + L)**2 - o**2)``: a linear (MLP/projection) part
and a quadratic attention part, so chunked prefill sums to the cost of the whole prompt and prompts
beyond the CSV's 8,192 tokens are extrapolated by the attention term (DESIGN.md).

A decode step over a batch of ``B`` sequences holding ``ctx`` context tokens in total costs
``decode_base_s + decode_per_seq_s * B + decode_per_seq2_s * B**2 + decode_per_ctx_token_s * ctx``.
Within one decode-only stretch ``B`` is constant and ``ctx`` grows by ``B`` per step, so step times
form an arithmetic progression and ``n`` steps can be advanced in closed form
(:meth:`PerfProfile.decode_steps_time`, :meth:`PerfProfile.decode_steps_within`).

A step that mixes prefill and decode (vLLM's chunked prefill) costs
``max(prefill_base_s, decode_base) + decode part + prefill part``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PerfProfile:
    """Fitted cost of one replica of ``model`` on ``tp`` GPUs of type ``gpu``."""

    model: str
    gpu: str
    tp: int
    prefill_base_s: float
    prefill_per_token_s: float
    prefill_attn_s: float
    decode_base_s: float
    decode_per_seq_s: float
    decode_per_seq2_s: float
    decode_per_ctx_token_s: float
    kv_capacity_tokens: int
    max_context: int = 131_072
    max_batched_tokens: int = 8_192
    max_num_seqs: int = 256
    source: str = ""

    # -- prefill ---------------------------------------------------------------------------
    def prefill_chunk_s(self, offset: int, tokens: int) -> float:
        """Marginal cost of prefilling ``tokens`` tokens at ``offset`` (no step base)."""
        end = offset + tokens
        attention = self.prefill_attn_s * (end * end - offset * offset)
        return self.prefill_per_token_s * tokens + attention

    def prefill_s(self, prompt_tokens: int, batch: int = 1) -> float:
        """Time of one prefill step over ``batch`` prompts of ``prompt_tokens`` each."""
        return self.prefill_base_s + batch * self.prefill_chunk_s(0, prompt_tokens)

    # -- decode ----------------------------------------------------------------------------
    def decode_step_s(self, batch: int, ctx_tokens: float) -> float:
        """Time of one decode step for ``batch`` sequences holding ``ctx_tokens`` in total."""
        if batch <= 0:
            return 0.0
        return (
            self.decode_base_s
            + self.decode_per_seq_s * batch
            + self.decode_per_seq2_s * batch * batch
            + self.decode_per_ctx_token_s * ctx_tokens
        )

    def decode_steps_time(self, batch: int, ctx_tokens: float, steps: int) -> float:
        """Time of ``steps`` consecutive decode steps with a constant batch (closed form)."""
        if steps <= 0 or batch <= 0:
            return 0.0
        first = self.decode_step_s(batch, ctx_tokens)
        growth = self.decode_per_ctx_token_s * batch
        return steps * first + growth * steps * (steps - 1) / 2.0

    def decode_steps_within(self, batch: int, ctx_tokens: float, seconds: float) -> int:
        """How many whole decode steps fit in ``seconds`` (inverse of ``decode_steps_time``)."""
        if seconds <= 0 or batch <= 0:
            return 0
        first = self.decode_step_s(batch, ctx_tokens)
        growth = self.decode_per_ctx_token_s * batch
        if growth <= 0:
            return int(seconds / first + 1e-9)
        # growth/2 n^2 + (first - growth/2) n - seconds <= 0
        a = growth / 2.0
        b = first - a
        n = (-b + math.sqrt(b * b + 4 * a * seconds)) / (2 * a)
        steps = int(n + 1e-9)
        while steps > 0 and self.decode_steps_time(batch, ctx_tokens, steps) > seconds + 1e-12:
            steps -= 1
        return steps

    @property
    def key(self) -> str:
        return f"{self.model}/{self.gpu}/tp{self.tp}"

    def describe(self) -> dict[str, object]:
        """The ``profile`` object of the ``simulate --json`` contract."""
        return {
            "model": self.model,
            "gpu": self.gpu,
            "tp": self.tp,
            "kv_capacity_tokens": self.kv_capacity_tokens,
            "max_context": self.max_context,
            "max_batched_tokens": self.max_batched_tokens,
            "max_num_seqs": self.max_num_seqs,
            "source": self.source,
        }
