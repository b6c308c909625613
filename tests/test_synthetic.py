"""The embedded synthetic workload: deterministic, at its parameters, and its constants still
agree with a fresh fit of the shared Azure trace."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autoscaler.errors import InputError
from autoscaler.traces import fitting, synthetic
from autoscaler.traces.readers import read_trace
from autoscaler.traces.synthetic import (
    AZURE_CONV_LENGTHS,
    DEFAULT_WORKLOAD,
    LengthMixture,
    SyntheticWorkload,
    generate,
)

AZURE = "traces/azure2023_conv.csv"
# traces/README.md, section 2
AZURE_MEAN_RATE = 5.530
AZURE_SPAN_S = 3501.7


def test_same_seed_same_trace_other_seed_differs():
    a = generate(DEFAULT_WORKLOAD, seed=3)
    b = generate(DEFAULT_WORKLOAD, seed=3)
    c = generate(DEFAULT_WORKLOAD, seed=4)
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert np.array_equal(a.prompt_tokens, b.prompt_tokens)
    assert np.array_equal(a.output_tokens, b.output_tokens)
    assert a.requests != c.requests or not np.array_equal(a.arrival_s, c.arrival_s)


def test_trace_shape():
    trace = generate(DEFAULT_WORKLOAD, seed=0)
    assert trace.format == "synthetic"
    assert trace.duration_s == DEFAULT_WORKLOAD.duration_s
    assert np.all(np.diff(trace.arrival_s) >= 0)
    assert trace.arrival_s.min() >= 0 and trace.arrival_s.max() < trace.duration_s
    assert trace.prompt_tokens.dtype == np.int64 and trace.output_tokens.dtype == np.int64


def test_mean_rate_is_the_parameter():
    # without the slow modulation only Poisson noise is left (~0.4% at 65k requests) ...
    for rate in (25.0, 8.0):
        params = replace(DEFAULT_WORKLOAD, mean_rate_rps=rate, slow_variance=0.0)
        got = np.mean([generate(params, seed).requests for seed in range(2)]) / params.duration_s
        assert got == pytest.approx(rate, rel=0.02)
    # ... with it, each 45 min run's mean wanders by ~3% (CV 12%, 62 s correlation time)
    got = np.mean([generate(DEFAULT_WORKLOAD, s).requests for s in range(8)]) / 2700.0
    assert got == pytest.approx(DEFAULT_WORKLOAD.mean_rate_rps, rel=0.04)


def test_demo_default_sizes_a_fleet_of_several_replicas():
    # 25 req/s of ~1,370-token requests: 5-15 replicas at 3,000-8,000 tokens/s each
    assert 20 <= DEFAULT_WORKLOAD.mean_rate_rps <= 60
    span_s = DEFAULT_WORKLOAD.duration_s  # the workload parameter, not a measured time
    assert 30 * 60 <= span_s <= 60 * 60


def test_rate_rises_and_falls_over_the_run():
    trace = generate(DEFAULT_WORKLOAD, seed=1)
    tenth = trace.duration_s / 10
    counts = np.bincount((trace.arrival_s // tenth).astype(int), minlength=10)
    assert counts[4:6].mean() > 1.3 * counts[0]
    assert counts[4:6].mean() > 1.3 * counts[9]


def test_length_means_match_the_azure_trace():
    trace = generate(DEFAULT_WORKLOAD, seed=2)
    assert trace.prompt_tokens.mean() == pytest.approx(1154.7, rel=0.05)
    assert trace.output_tokens.mean() == pytest.approx(211.1, rel=0.05)
    assert np.percentile(trace.prompt_tokens, 50) == pytest.approx(1020, rel=0.05)
    assert np.percentile(trace.prompt_tokens, 90) == pytest.approx(2734.5, rel=0.1)
    assert np.percentile(trace.output_tokens, 90) == pytest.approx(424, rel=0.1)
    assert trace.prompt_tokens.min() >= 2 and trace.prompt_tokens.max() <= 14_050
    assert trace.output_tokens.min() >= 7 and trace.output_tokens.max() <= 1_000


def test_lengths_keep_the_prompt_output_dependence():
    # in the trace, ~1,000-token prompts get ~400-token answers, 3,000-4,500 ones about 70
    prompt, output = AZURE_CONV_LENGTHS.sample(np.random.default_rng(0), 100_000)
    mid = output[(prompt >= 800) & (prompt < 1300)].mean()
    long = output[(prompt >= 3000) & (prompt < 4500)].mean()
    assert mid > 300 and long < 120


def test_burstiness_matches_azure_at_azure_rate():
    # traces/README.md: 1 s dispersion 1.39, IAT CV 1.09
    params = replace(DEFAULT_WORKLOAD, mean_rate_rps=AZURE_MEAN_RATE, duration_s=AZURE_SPAN_S)
    traces = [generate(params, seed) for seed in range(4)]
    disp = np.mean([fitting.dispersion(t.arrival_s) for t in traces])
    iat_cv = np.mean([np.diff(t.arrival_s).std() / np.diff(t.arrival_s).mean() for t in traces])
    assert disp == pytest.approx(1.39, abs=0.1)
    assert iat_cv == pytest.approx(1.09, abs=0.05)


def test_without_modulation_arrivals_are_poisson():
    params = replace(DEFAULT_WORKLOAD, diurnal_amplitude=0.0, slow_variance=0.0, burst_extra=0.0)
    disp = np.mean([fitting.dispersion(generate(params, s).arrival_s) for s in range(3)])
    assert disp == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(
    "change",
    [
        {"mean_rate_rps": 0.0},
        {"duration_s": -1.0},
        {"diurnal_amplitude": 1.0},
        {"slow_variance": -0.1},
        {"burst_spread_s": 0.0},
        {"mean_rate_rps": float("nan")},
        {"diurnal_period_s": 0.0},
    ],
)
def test_invalid_parameters_are_refused(change):
    with pytest.raises(InputError, match=next(iter(change))):
        SyntheticWorkload(**change)


def test_invalid_mixture_is_refused():
    with pytest.raises(InputError, match="positive definite"):
        LengthMixture((1.0,), ((1.0, 1.0),), ((1.0, 2.0, 1.0),), (1, 10), (1, 10))
    with pytest.raises(InputError, match="sum to 1"):
        LengthMixture((0.5,), ((1.0, 1.0),), ((1.0, 0.0, 1.0),), (1, 10), (1, 10))


# --- the constants against a fresh fit of the shared trace -------------------------------------


def test_azure_dispersion_definition_matches_readme(shared_file):
    trace = read_trace(shared_file(AZURE))
    assert fitting.dispersion(trace.arrival_s) == pytest.approx(1.39, abs=0.005)


def test_constants_match_a_fresh_fit(shared_file):
    # one test for both fits: they take ~2 s and shared_file is function-scoped
    lengths, arrivals = fitting.fit_trace(read_trace(shared_file(AZURE)))

    embedded = AZURE_CONV_LENGTHS
    assert lengths.prompt_range == embedded.prompt_range
    assert lengths.output_range == embedded.output_range
    assert np.allclose(lengths.weights, embedded.weights, rtol=0.01, atol=1e-3)
    assert np.allclose(lengths.log_means, embedded.log_means, rtol=0, atol=5e-3)
    assert np.allclose(lengths.log_covariances, embedded.log_covariances, rtol=0.01, atol=1e-5)

    assert arrivals.mean_rate_rps == pytest.approx(AZURE_MEAN_RATE, abs=1e-3)
    assert arrivals.diurnal_amplitude == pytest.approx(synthetic.AZURE_DIURNAL_AMPLITUDE, rel=0.01)
    assert arrivals.slow_variance == pytest.approx(synthetic.AZURE_SLOW_VARIANCE, rel=0.01)
    assert arrivals.slow_timescale_s == pytest.approx(synthetic.AZURE_SLOW_TIMESCALE_S, rel=0.01)
    assert arrivals.burst_extra == pytest.approx(synthetic.AZURE_BURST_EXTRA, rel=0.01)
    assert arrivals.burst_spread_s == pytest.approx(synthetic.AZURE_BURST_SPREAD_S, rel=0.01)
    # the trough of the hour's sinusoid is at its start, where generate() puts it
    assert min(arrivals.diurnal_trough_fraction, 1 - arrivals.diurnal_trough_fraction) < 0.02


def test_mixture_beats_one_lognormal_on_the_trace(shared_file):
    trace = read_trace(shared_file(AZURE))
    p, o = trace.prompt_tokens, trace.output_tokens
    one = fitting.fit_lengths(p, o, components=1, restarts=1)
    mixture_ll = fitting.mixture_log_likelihood(AZURE_CONV_LENGTHS, p, o)
    single_ll = fitting.mixture_log_likelihood(one, p, o)
    assert mixture_ll > single_ll + 10_000


def test_fit_on_poisson_arrivals_finds_no_bursts():
    rng = np.random.default_rng(0)
    arrivals = np.cumsum(rng.exponential(1 / 8.0, 20_000))
    fit = fitting.fit_arrivals(arrivals)
    assert fit.mean_rate_rps == pytest.approx(8.0, rel=0.03)
    assert fit.diurnal_amplitude < 0.05
    assert fit.burst_extra < 0.02
    assert fit.slow_variance < 0.003


def test_fit_recovers_the_generators_own_parameters():
    params = replace(DEFAULT_WORKLOAD, mean_rate_rps=20.0, duration_s=3600.0)
    fit = fitting.fit_arrivals(generate(params, seed=0).arrival_s)
    assert fit.diurnal_amplitude == pytest.approx(params.diurnal_amplitude, abs=0.05)
    assert fit.slow_variance == pytest.approx(params.slow_variance, rel=0.5)
