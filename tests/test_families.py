"""Workload families: deterministic per seed, the shapes and mixes they claim, clear errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autoscaler.errors import InputError, UnknownNameError
from autoscaler.traces.families import (
    FAMILIES,
    Diurnal,
    Family,
    FlashCrowd,
    Lognormal,
    OnOff,
    Pareto,
    Poisson,
    Ramp,
    RequestMix,
    SessionMix,
    generate,
    generate_sessions,
    get_family,
)

SHORT_S = 600.0


def short(family: Family) -> Family:
    """The family cut to 10 minutes (a flash crowd moved to start at minute 3)."""
    shape = family.shape
    if isinstance(shape, FlashCrowd):
        shape = replace(shape, at_s=180.0)
    return replace(family, shape=shape, duration_s=SHORT_S)


def per_minute(arrival_s: np.ndarray, duration_s: float) -> np.ndarray:
    return np.bincount((arrival_s // 60).astype(int), minlength=int(duration_s // 60))[
        : int(duration_s // 60)
    ]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_same_seed_same_trace_other_seed_differs(name):
    family = short(FAMILIES[name])
    a, b, c = generate(family, 1), generate(family, 1), generate(family, 2)
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert np.array_equal(a.prompt_tokens, b.prompt_tokens)
    assert np.array_equal(a.output_tokens, b.output_tokens)
    assert a.requests != c.requests or not np.array_equal(a.arrival_s, c.arrival_s)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_trace_is_well_formed(name):
    family = short(FAMILIES[name])
    trace = generate(family, 0)
    assert trace.requests > 100
    assert np.all(np.diff(trace.arrival_s) >= 0)
    assert trace.arrival_s[0] >= 0 and trace.arrival_s[-1] < family.duration_s
    assert trace.duration_s == family.duration_s
    assert trace.prompt_tokens.min() >= 1 and trace.output_tokens.min() >= 1
    assert np.all(trace.prompt_tokens + trace.output_tokens <= family.max_context)


def test_registry_has_the_issue_families_with_durations_of_45_to_60_minutes():
    assert 8 <= len(FAMILIES) <= 10
    for name in ("poisson-chat", "diurnal-chat", "flash-x4-chat", "flash-x10-chat", "onoff-code",
                 "ramp-longctx", "sessions-multiturn", "rag-longprompt-shortout"):  # fmt: skip
        assert FAMILIES[name].name == name
    for family in FAMILIES.values():
        minutes = int(family.duration_s // 60)  # the trace's span, in whole minutes
        assert minutes in range(45, 61), (family.name, minutes)
        assert family.why
    with pytest.raises(UnknownNameError, match="poisson-chat"):
        get_family("nope")


@pytest.mark.parametrize("factor", [3.0, 4.0, 10.0])
def test_flash_crowd_peak_minute_is_factor_times_the_base(factor):
    family = Family(
        "flash",
        FlashCrowd(base_rps=20.0, factor=factor, at_s=300.0, rise_s=30.0, hold_s=180.0),
        RequestMix(Lognormal(100.0), Lognormal(10.0)),
        duration_s=900.0,
    )
    # the shape itself: a whole minute at k x the base, reached within the minute of the start
    t = np.arange(0.0, family.duration_s, 0.25)
    rate_per_minute = family.rate(t).reshape(-1, 240).mean(axis=1)
    assert rate_per_minute.max() == pytest.approx(factor * rate_per_minute[0])
    assert rate_per_minute[6] == pytest.approx(factor * rate_per_minute[0])
    # the drawn trace, over seeds: Poisson noise of ~1,200 arrivals a minute is ~3% (1 sd)
    for seed in range(3):
        minutes = per_minute(generate(family, seed).arrival_s, family.duration_s)
        baseline = np.median(minutes[:5])
        assert minutes.max() >= 0.93 * factor * baseline
        assert minutes[6] >= 0.9 * factor * baseline


def test_ramp_increases_in_ten_minute_means():
    family = Family("ramp", Ramp(2.0, 8.0), RequestMix(Lognormal(100.0), Lognormal(10.0)), 3000.0)
    minutes = per_minute(generate(family, 0).arrival_s, family.duration_s)
    means = minutes.reshape(-1, 10).mean(axis=1)
    assert np.all(np.diff(means) > 0)


CHAT = RequestMix(Lognormal(100.0), Lognormal(10.0))


def test_diurnal_trough_at_start_peak_in_the_middle_and_on_off_phases():
    family = Family(
        "day", Diurnal(10.0, 0.6), RequestMix(Lognormal(100.0), Lognormal(10.0)), 1200.0
    )
    minutes = per_minute(generate(family, 0).arrival_s, family.duration_s)
    assert minutes[9:11].mean() > 2.5 * minutes[[0, 19]].mean()
    onoff = Family("onoff", OnOff(20.0, 2.0, 120.0, 120.0), CHAT, 960.0)
    minutes = per_minute(generate(onoff, 0).arrival_s, onoff.duration_s)
    off, on = minutes.reshape(-1, 2, 2)[:, 0].mean(), minutes.reshape(-1, 2, 2)[:, 1].mean()
    assert on > 6 * off


def test_poisson_counts_are_poisson():
    family = Family("p", Poisson(5.0), RequestMix(Lognormal(100.0), Lognormal(10.0)), 3000.0)
    per_10s = np.bincount((generate(family, 0).arrival_s // 10).astype(int))
    assert per_10s.mean() == pytest.approx(50.0, rel=0.05)
    assert per_10s.var() / per_10s.mean() == pytest.approx(1.0, abs=0.2)


def test_session_prompt_grows_across_turns():
    family = short(FAMILIES["sessions-multiturn"])
    trace, session = generate_sessions(family, 0)
    grouped = 0
    for sid in np.unique(session)[:200]:
        rows = np.flatnonzero(session == sid)  # in arrival order: turn order
        prompts, outputs = trace.prompt_tokens[rows], trace.output_tokens[rows]
        if rows.size > 1:
            grouped += 1
            # each prompt holds the previous prompt and answer, plus a new message
            assert np.all(prompts[1:] > prompts[:-1] + outputs[:-1])
    assert grouped > 50


def test_sessions_end_at_the_context_limit():
    mix = SessionMix(Lognormal(3000.0), Lognormal(2000.0), Lognormal(500.0), turns_mean=15.0)
    family = Family("long", Poisson(2.0), mix, 600.0, max_context=16_384)
    trace = generate(family, 0)
    assert trace.requests > 0
    assert np.all(trace.prompt_tokens + trace.output_tokens <= 16_384)


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if isinstance(f.mix, RequestMix)])
def test_mix_means_match_their_parameters(name):
    mix = FAMILIES[name].mix
    assert isinstance(mix, RequestMix)
    rng = np.random.default_rng(0)
    for lengths in (mix.prompt, mix.output):
        sample = lengths.sample(rng, 200_000)
        assert sample.mean() == pytest.approx(lengths.mean, rel=0.15)


@pytest.mark.parametrize("lengths", [Lognormal(20_000.0, 1.0), Pareto(300.0, 2.2), Lognormal(10.0)])
def test_length_distributions_span_the_issue_range(lengths):
    sample = lengths.sample(np.random.default_rng(1), 200_000)
    assert sample.mean() == pytest.approx(lengths.mean, rel=0.15)


@pytest.mark.parametrize(
    ("build", "parameter"),
    [
        (lambda: Poisson(0.0), "rate_rps"),
        (lambda: Diurnal(10.0, 1.0), "amplitude"),
        (lambda: Diurnal(10.0, 0.5, period_s=-1.0), "period_s"),
        (lambda: FlashCrowd(5.0, 1.0, 60.0), "factor"),
        (lambda: FlashCrowd(5.0, 4.0, 60.0, rise_s=300.0), "rise_s"),
        (lambda: FlashCrowd(5.0, 4.0, 60.0, hold_s=10.0), "hold_s"),
        (lambda: OnOff(5.0, 6.0, 60.0, 60.0), "off_rps"),
        (lambda: OnOff(5.0, 1.0, 0.0, 60.0), "on_s"),
        (lambda: Ramp(-1.0, 5.0), "start_rps"),
        (lambda: Lognormal(0.5), "mean"),
        (lambda: Lognormal(100.0, float("nan")), "sigma"),
        (lambda: Pareto(100.0, 1.5), "alpha"),
        (lambda: SessionMix(Lognormal(9.0), Lognormal(9.0), Lognormal(9.0), 0.5), "turns_mean"),
        (lambda: Family("f", Poisson(1.0), CHAT, duration_s=10.0), "duration_s"),
        (lambda: Family("f", FlashCrowd(1.0, 4.0, 900.0), CHAT, duration_s=600.0), "at_s"),
    ],
)
def test_bad_parameters_name_the_parameter(build, parameter):
    with pytest.raises(InputError, match=parameter):
        build()
