"""Profile lookup, names, and KV capacity (no shared data needed)."""

from __future__ import annotations

import dataclasses

import pytest

from autoscaler.errors import InputError, UnknownNameError
from autoscaler.perf import shapes
from autoscaler.perf.profiles import (
    DEFAULT_PROFILE_KEY,
    available_profiles,
    fitted_coefficients,
    get_profile,
)


def test_default_profile_is_llama2_70b_on_four_h100_with_128k_context():
    p = get_profile()
    assert (p.model, p.gpu, p.tp) == DEFAULT_PROFILE_KEY == ("llama2-70b", "h100-80gb", 4)
    assert (p.max_context, p.max_batched_tokens, p.max_num_seqs) == (131_072, 8_192, 256)
    assert "splitwise_perf_model.csv" in p.source


def test_twelve_profiles_including_the_derived_pcap_ones():
    combos = available_profiles()
    assert len(combos) == 12 == len(set(combos))
    assert ("bloom-176b", "h100-80gb-pcap", 8) in combos
    for model, gpu, tp in combos:
        p = get_profile(model, gpu, tp)
        assert ("derived" in p.source) == (gpu == "h100-80gb-pcap")
        assert p.kv_capacity_tokens > 0


@pytest.mark.parametrize(
    ("alias", "csv_name"),
    [
        ("h100", "h100-80gb"),
        ("a100", "a100-80gb"),
        ("h100-pcap", "h100-80gb-pcap"),
        ("H100", "h100-80gb"),
    ],
)
def test_cli_and_csv_gpu_names_give_the_same_profile(alias, csv_name):
    assert get_profile("llama2-70b", alias, 8) == get_profile("llama2-70b", csv_name, 8)


def test_default_kv_capacity_by_hand():
    """(4 GPUs x 79.19 GiB x 0.9 - 2 bytes x 68.98e9 params - 4 x 3 GiB) / 320 KiB per token."""
    gib = 1024**3
    free = 4 * 79.19 * gib * 0.9 - 2 * 68_976_648_192 - 4 * 3 * gib
    per_token = 2 * 80 * 8 * 128 * 2  # K and V, layers, KV heads, head dim, fp16
    assert per_token == 320 * 1024
    by_hand = free / per_token  # ~473,850 tokens
    capacity = get_profile().kv_capacity_tokens
    assert capacity % 16 == 0
    assert by_hand - 16 - 1 <= capacity <= by_hand
    assert 300_000 < capacity < 700_000


def test_kv_capacity_grows_with_tp_and_bloom_holds_fewer_tokens():
    tp2, tp4, tp8 = (get_profile("llama2-70b", "h100", tp).kv_capacity_tokens for tp in (2, 4, 8))
    assert tp2 < tp4 < tp8
    bloom = get_profile("bloom-176b", "h100", 8).kv_capacity_tokens
    # 112 KV heads (no GQA) make a token 12.25x larger than llama2-70b's.
    assert 40_000 < bloom < 80_000 < tp8


def test_a_model_that_does_not_fit_raises_input_error():
    with pytest.raises(InputError, match="does not fit"):
        shapes.kv_capacity_tokens(shapes.BLOOM_176B, shapes.H100_80GB, 4)
    with pytest.raises(InputError, match="does not fit"):
        shapes.kv_capacity_tokens(shapes.LLAMA2_70B, shapes.A100_80GB, 1)


def test_kv_capacity_rejects_bad_settings():
    with pytest.raises(InputError):
        shapes.kv_capacity_tokens(shapes.LLAMA2_70B, shapes.H100_80GB, 4, gpu_memory_utilization=0)
    with pytest.raises(InputError):
        shapes.kv_capacity_tokens(shapes.LLAMA2_70B, shapes.H100_80GB, 0)


def test_physics_per_context_token_cost_of_the_default():
    """320 KiB per token over 4 ranks at 3.35 TB/s: ~24.5 ns per cached token per step."""
    expected = 327_680 / 4 / 3.35e12
    assert shapes.decode_seconds_per_ctx_token(
        shapes.LLAMA2_70B, shapes.H100_80GB, 4
    ) == pytest.approx(expected)
    assert get_profile().decode_per_ctx_token_s == pytest.approx(expected)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as err:
        get_profile("gpt-5")
    assert err.value.kind == "model"
    assert set(err.value.known) == {"llama2-70b", "bloom-176b"}
    assert isinstance(err.value, InputError)


def test_unknown_gpu_lists_cli_and_csv_names():
    with pytest.raises(UnknownNameError) as err:
        get_profile(gpu="v100")
    assert {"a100", "h100", "a100-80gb", "h100-80gb"} <= set(err.value.known)


def test_missing_tp_says_which_tps_exist():
    with pytest.raises(UnknownNameError, match=r"known: 2, 4, 8"):
        get_profile("llama2-70b", "h100", 3)
    with pytest.raises(UnknownNameError, match=r"TP for bloom-176b on a100-80gb.*known: 8$"):
        get_profile("bloom-176b", "a100", 4)


def test_bad_limits_are_input_errors():
    with pytest.raises(InputError):
        get_profile(max_context=0)
    with pytest.raises(InputError):
        get_profile(tp="4")  # type: ignore[arg-type]


def test_table_has_no_negative_coefficients():
    for c in fitted_coefficients():
        values = [getattr(c, f.name) for f in dataclasses.fields(c) if f.name.endswith("_s")]
        assert len(values) == 7
        assert all(v >= 0 for v in values), c


def test_attention_flops_bound_of_the_default_by_hand():
    # 2 x 80 layers x 8192 hidden / (4 GPUs x 989 TFLOP/s x 0.30 MFU)
    bound = shapes.prefill_attn_max_s(shapes.LLAMA2_70B, shapes.H100_80GB, 4)
    assert bound == pytest.approx(2 * 80 * 8192 / (4 * 989e12 * 0.30))
    assert bound == pytest.approx(1.104e-9, rel=1e-3)
    assert shapes.gpu_spec("h100-80gb-pcap").peak_flops == shapes.H100_80GB.peak_flops
    with pytest.raises(InputError):
        shapes.prefill_attn_max_s(shapes.LLAMA2_70B, shapes.H100_80GB, 0)
    with pytest.raises(InputError):
        shapes.prefill_attn_max_s(shapes.LLAMA2_70B, shapes.H100_80GB, 4, min_mfu=0.0)


def test_every_attention_coefficient_respects_the_flops_bound():
    for c in fitted_coefficients():
        bound = shapes.prefill_attn_max_s(shapes.model_shape(c.model), shapes.gpu_spec(c.gpu), c.tp)
        assert c.prefill_attn_s <= bound * (1 + 1e-9), c


def test_128k_prefill_on_the_default_profile_is_below_35_seconds():
    p = get_profile()
    prompt, chunk = 131_072, p.max_batched_tokens
    steps = -(-prompt // chunk)
    # chunked prefill on an idle replica: the chunk costs add up to one piece plus a base per step
    total = sum(p.prefill_s(0) + p.prefill_chunk_s(o, chunk) for o in range(0, prompt, chunk))
    assert steps == 16
    assert total == pytest.approx(p.prefill_s(prompt) + (steps - 1) * p.prefill_base_s)
    assert total < 35.0
