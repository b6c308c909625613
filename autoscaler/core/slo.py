"""The per-request service-level objective used to score runs (DESIGN.md, "SLO").

A request meets its SLO when its TTFT is at most ``ttft_s + ttft_per_1k_s * prompt_tokens / 1000``
and its time per output token, (e2e - TTFT) / (output_tokens - 1), is at most ``tpot_s``. Requests
with a single output token are judged on TTFT alone. Dropped or rejected requests are misses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class SloSpec:
    """Latency budgets and the fraction of requests that must meet them."""

    ttft_s: float = 1.0
    ttft_per_1k_s: float = 0.2
    tpot_s: float = 0.1
    attainment_target: float = 0.99

    def ttft_budget(self, prompt_tokens: float) -> float:
        """TTFT budget of one request; grows with the prompt because prefill does."""
        return self.ttft_s + self.ttft_per_1k_s * prompt_tokens / 1000.0

    def met(
        self,
        prompt_tokens: npt.NDArray[np.int64],
        output_tokens: npt.NDArray[np.int64],
        ttft: npt.NDArray[np.float64],
        e2e: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.bool_]:
        """Vectorised SLO check; NaN TTFT or e2e (dropped, rejected, unfinished) is a miss."""
        budget = self.ttft_s + self.ttft_per_1k_s * prompt_tokens / 1000.0
        ok_ttft = ttft <= budget
        denom = np.maximum(output_tokens - 1, 1)
        tpot = (e2e - ttft) / denom
        ok_tpot = (output_tokens <= 1) | (tpot <= self.tpot_s)
        return np.asarray(ok_ttft & ok_tpot & np.isfinite(e2e), dtype=np.bool_)
