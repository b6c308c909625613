"""The mix-aware capacity model: a replica's token-work capacity at the SLO from the request mix."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.core.slo import SloSpec
from autoscaler.perf.capacity import mix_capacity, prompt_second_moment, seed_capacity
from autoscaler.perf.profiles import get_profile

PROFILE, SLO = get_profile(), SloSpec()
CHAT = (1154.0, 2525.0, 210.0)  # the Azure conversation mix (mean, p90 prompt; mean output)
LONG_PROMPTS = (16000.0, 31000.0, 300.0)
REASONING = (400.0, 843.0, 1011.0)


@given(st.floats(0.0, 1.28), st.floats(10.0, 1e5))
def test_the_second_moment_recovers_a_lognormal_spread_from_mean_and_p90(sigma, mean):
    p90 = mean * math.exp(1.2816 * sigma - sigma * sigma / 2.0)
    assert prompt_second_moment(mean, p90) == pytest.approx(
        mean * mean * math.exp(sigma * sigma), rel=1e-6
    )


def test_without_a_usable_p90_the_second_moment_is_the_squared_mean():
    assert prompt_second_moment(1000.0, None) == 1e6
    assert prompt_second_moment(1000.0, 900.0) == 1e6  # a p90 below the mean: no spread
    assert prompt_second_moment(0.0, 10.0) == 0.0


def test_long_prompts_cost_more_capacity_than_chat_and_long_answers_less():
    chat = mix_capacity(PROFILE, SLO, *CHAT)
    assert mix_capacity(PROFILE, SLO, *LONG_PROMPTS) < 0.5 * chat
    assert mix_capacity(PROFILE, SLO, *REASONING) > 1.3 * chat
    # on the reference mix the model and the profile's constant seed agree within 10%
    assert chat == pytest.approx(seed_capacity(PROFILE, SLO), rel=0.1)


def test_the_binding_budget_decides_which_share_matters():
    # prefill binds for chat: its capacity scales with the prefill share, not the decode one
    base = mix_capacity(PROFILE, SLO, *CHAT)
    assert mix_capacity(PROFILE, SLO, *CHAT, prefill_share=0.16) == pytest.approx(base / 2)
    assert mix_capacity(PROFILE, SLO, *CHAT, decode_share=2.0) == pytest.approx(base)
    # decode binds for long answers: the other way round
    long = mix_capacity(PROFILE, SLO, *REASONING)
    assert mix_capacity(PROFILE, SLO, *REASONING, prefill_share=0.64) == pytest.approx(long)
    assert mix_capacity(PROFILE, SLO, *REASONING, decode_share=0.5) == pytest.approx(long / 2)


def test_a_heavier_prompt_tail_lowers_the_capacity_at_the_same_mean():
    narrow = mix_capacity(PROFILE, SLO, 16000.0, 17000.0, 300.0)
    wide = mix_capacity(PROFILE, SLO, 16000.0, 40000.0, 300.0)
    assert wide < narrow


def test_an_empty_mix_has_no_capacity_rather_than_an_error():
    assert mix_capacity(PROFILE, SLO, 0.0, None, 0.0) == 0.0


@pytest.mark.parametrize("context", [1.0, 300.0, 1500.0, 16_000.0, 120_000.0])
def test_the_decode_batch_bisection_finds_what_a_scan_of_every_batch_finds(context):
    from dataclasses import replace

    from autoscaler.perf.capacity import decode_batch_at_slo

    def scan(profile, slo):
        kv_cap = max(1, int(profile.kv_capacity_tokens // max(context, 1.0)))
        ok = [b for b in range(1, min(profile.max_num_seqs, kv_cap) + 1)
              if profile.decode_step_s(b, b * context) <= slo.tpot_s]  # fmt: skip
        return max(ok, default=1)

    for tpot in (0.02, 0.05, 0.1, 0.3):
        slo = SloSpec(tpot_s=tpot)
        assert decode_batch_at_slo(PROFILE, slo, context) == scan(PROFILE, slo)
        odd = replace(PROFILE, decode_per_seq_s=-1e-4)  # not monotone: scanned
        assert decode_batch_at_slo(odd, slo, context) == scan(odd, slo)
