"""Properties of the cost formulas with the real fitted profiles (hypothesis)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.perf.model import PerfProfile
from autoscaler.perf.profiles import available_profiles, get_profile

PROFILES = [get_profile(*key) for key in available_profiles()]
profiles = st.sampled_from(PROFILES)
batches = st.integers(min_value=1, max_value=256)
contexts = st.floats(min_value=0, max_value=2e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(profiles, batches, contexts, st.integers(min_value=0, max_value=20_000))
def test_steps_within_the_time_of_n_steps_is_n(profile, batch, ctx, steps):
    elapsed = profile.decode_steps_time(batch, ctx, steps)
    assert profile.decode_steps_within(batch, ctx, elapsed) == steps


@settings(max_examples=300, deadline=None)
@given(profiles, batches, contexts, st.floats(min_value=0, max_value=3_600, allow_nan=False))
def test_steps_within_is_the_largest_count_that_fits(profile, batch, ctx, seconds):
    n = profile.decode_steps_within(batch, ctx, seconds)
    assert profile.decode_steps_time(batch, ctx, n) <= seconds + 1e-9
    assert profile.decode_steps_time(batch, ctx, n + 1) > seconds


@settings(max_examples=100, deadline=None)
@given(profiles, batches, st.integers(min_value=0, max_value=5_000))
def test_closed_form_without_context_growth(profile, batch, steps):
    flat = dataclasses.replace(profile, decode_per_ctx_token_s=0.0)
    elapsed = flat.decode_steps_time(batch, 1000.0, steps)
    assert elapsed == pytest.approx(steps * flat.decode_step_s(batch, 1000.0))
    assert flat.decode_steps_within(batch, 1000.0, elapsed) == steps


@settings(max_examples=100, deadline=None)
@given(profiles, batches, contexts, st.integers(min_value=1, max_value=300))
def test_closed_form_equals_the_sum_of_steps(profile, batch, ctx, steps):
    one_by_one = sum(profile.decode_step_s(batch, ctx + i * batch) for i in range(steps))
    assert profile.decode_steps_time(batch, ctx, steps) == pytest.approx(one_by_one, rel=1e-9)


def _chunked_prefill(profile: PerfProfile, prompt: int, chunk: int) -> tuple[float, int]:
    total, offset, steps = 0.0, 0, 0
    while offset < prompt:
        size = min(chunk, prompt - offset)
        total += profile.prefill_base_s + profile.prefill_chunk_s(offset, size)
        offset += size
        steps += 1
    return total, steps


@settings(max_examples=200, deadline=None)
@given(
    profiles,
    st.integers(min_value=1, max_value=131_072),
    st.integers(min_value=1, max_value=8_192),
)
def test_prefill_in_chunks_equals_one_piece_plus_the_extra_step_bases(profile, prompt, chunk):
    chunked, steps = _chunked_prefill(profile, prompt, chunk)
    whole = profile.prefill_s(prompt)
    assert chunked - (steps - 1) * profile.prefill_base_s == pytest.approx(whole, rel=1e-9)


def test_long_prompt_extrapolation_is_superlinear_where_attention_was_fitted():
    p = get_profile()
    assert p.prefill_attn_s > 0
    # Twice the prompt costs more than twice the time beyond the CSV's 8,192 tokens.
    assert p.prefill_s(131_072) - p.prefill_base_s > 2 * (p.prefill_s(65_536) - p.prefill_base_s)
