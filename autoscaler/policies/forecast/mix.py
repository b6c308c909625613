"""The capacity of one replica for the live request mix, as a scale on the learned capacity."""

from __future__ import annotations

from autoscaler.core.signals import SignalSnapshot
from autoscaler.perf.capacity import mix_capacity
from autoscaler.policies.base import PolicyContext


class MixScale:
    """The live request mix's capacity over the seed mix's.

    :func:`~autoscaler.perf.capacity.mix_capacity` sizes a replica from its prefill and decode
    time budgets. A 16k-token prompt mix gets about a third of a chat replica's token work, and
    a mix of long answers half as much again. The fleet oracle's capacity varies fivefold
    across the workload families: one seed cannot follow that, and the learner moves about 1%
    per steady observation. The policy multiplies the learned capacity by this scale, and the
    learner counts loads in the seed mix's units, so what it learned carries over when the mix
    moves. The scale is held while the mix is unknown, and is 1 without a profile.
    """

    smoothing_ticks = 40
    """Ticks over which the mix is averaged (an exponential mean): 10 minutes of 15 s ticks. On a
    steady chat trace a minute's mean output and p90 prompt swing +-30%, and the capacity must
    not swing with them."""

    def __init__(self, ctx: PolicyContext) -> None:
        self.ctx = ctx
        self.scale: float | None = None
        """The current scale (None: no mix seen yet, or no profile)."""
        self._seed_mix = (
            mix_capacity(
                ctx.profile,
                ctx.slo,
                ctx.seed_mean_prompt_tokens,
                None,
                ctx.seed_mean_output_tokens,
                weights=(ctx.prefill_weight, ctx.decode_weight),
            )
            if ctx.profile is not None
            else 0.0
        )

    def update(self, snap: SignalSnapshot) -> float:
        """Fold in this tick's mix; the scale to use now."""
        profile = self.ctx.profile
        prompt, output = snap.mean_prompt_tokens, snap.mean_output_tokens
        if profile is not None and self._seed_mix > 0 and prompt and output:
            now = mix_capacity(
                profile,
                self.ctx.slo,
                prompt,
                snap.p90_prompt_tokens,
                output,
                weights=(self.ctx.prefill_weight, self.ctx.decode_weight),
            )
            if now > 0:
                ratio = now / self._seed_mix
                if self.scale is None:
                    self.scale = ratio
                else:
                    self.scale += (ratio - self.scale) / self.smoothing_ticks
        return self.scale or 1.0
