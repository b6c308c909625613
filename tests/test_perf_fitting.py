"""The fitted profiles against the Splitwise CSV they come from (``perf/splitwise_perf_model.csv``).

Every test here reads the shared CSV through the ``shared_file`` fixture: it is skipped when the
file is absent, and fails under ``REQUIRE_SHARED=1``.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
from pathlib import Path

import numpy as np
import pytest

from autoscaler.errors import InputError
from autoscaler.perf import fitting
from autoscaler.perf.profiles import FittedCoefficients, available_profiles, fitted_coefficients

CSV = "perf/splitwise_perf_model.csv"
COMBOS = available_profiles()
COEFFICIENT_FIELDS = [
    f.name
    for f in dataclasses.fields(FittedCoefficients)
    if f.name.endswith("_s") and f.name not in ("model", "gpu", "tp")
]


@functools.cache
def _fits(path: Path) -> dict[tuple[str, str, int], fitting.ComboFit]:
    return {fit.combo: fit for fit in fitting.fit_all(fitting.read_experiments(path))}


def test_the_csv_has_exactly_the_combinations_that_have_profiles(shared_file):
    assert sorted(_fits(shared_file(CSV))) == COMBOS
    assert len(COMBOS) == 12


@pytest.mark.parametrize("combo", COMBOS, ids=["/".join(map(str, c)) for c in COMBOS])
def test_literal_coefficients_equal_a_fresh_fit(shared_file, combo):
    fresh = _fits(shared_file(CSV))[combo].coefficients
    (literal,) = [c for c in fitted_coefficients() if (c.model, c.gpu, c.tp) == combo]
    for name in COEFFICIENT_FIELDS:
        expected = pytest.approx(getattr(fresh, name), rel=1e-6, abs=1e-15)
        assert getattr(literal, name) == expected, name
    assert literal.per_ctx_source == fresh.per_ctx_source
    assert literal.derived == fresh.derived


def test_fit_error_table(shared_file):
    """Prints the per-combination error table (``pytest -s``); the asserts are per combination."""
    fits = _fits(shared_file(CSV))
    print()
    print(f"{'combination':30s} rows  prefill med (by setting)  max   decode med   max")
    for combo, fit in sorted(fits.items()):
        print(
            f"{'/'.join(map(str, combo)):30s} {len(fit.rows):4d}  "
            f"{fit.prefill_median_rel_error:6.1%} "
            f"({fit.prefill_median_rel_error_by_setting():6.1%})"
            f"  {fit.prefill_max_rel_error:6.1%}  {fit.decode_median_rel_error:6.1%}"
            f"  {fit.decode_max_rel_error:6.1%}"
        )
    assert len(fits) == len(COMBOS)


@pytest.mark.parametrize("combo", COMBOS, ids=["/".join(map(str, c)) for c in COMBOS])
def test_median_relative_error_is_at_most_10_percent(shared_file, combo):
    fit = _fits(shared_file(CSV))[combo]
    assert fit.prefill_median_rel_error <= 0.10
    assert fit.decode_median_rel_error <= 0.10


@pytest.mark.parametrize("combo", COMBOS, ids=["/".join(map(str, c)) for c in COMBOS])
def test_errors_are_computed_against_averaged_csv_rows(shared_file, combo):
    """Recompute one error by hand from the raw CSV rows, independently of the fitting code."""
    import csv

    fit = _fits(shared_file(CSV))[combo]
    row = max(fit.rows, key=lambda r: r.experiment.prompt_size)  # the 8,192-token prompt
    e = row.experiment
    with shared_file(CSV).open() as handle:
        raw = [
            float(r["prompt_time"]) / 1000
            for r in csv.DictReader(handle)
            if (r["model"], r["hardware"], int(r["tensor_parallel"])) == combo
            and (int(r["prompt_size"]), int(r["batch_size"]), int(r["token_size"]))
            == (e.prompt_size, e.batch_size, e.token_size)
        ]
    assert len(raw) == 5
    c = fit.coefficients
    predicted = c.prefill_base_s + c.prefill_per_token_s * 8192 + c.prefill_attn_s * 8192**2
    expected = (predicted - statistics.fmean(raw)) / statistics.fmean(raw)
    assert row.prefill_rel_error == pytest.approx(expected, rel=1e-9)


def test_anomaly_rule_drops_exactly_the_tp2_batch64_experiments(shared_file):
    experiments = fitting.read_experiments(shared_file(CSV))
    assert len(experiments) == 12 * 21
    assert all(e.repetitions == 5 for e in experiments)
    flagged = fitting.anomalous(experiments)
    assert sorted(e.combo for e in flagged) == [
        ("llama2-70b", "a100-80gb", 2),
        ("llama2-70b", "h100-80gb", 2),
        ("llama2-70b", "h100-80gb-pcap", 2),
    ]
    assert {(e.prompt_size, e.batch_size, e.token_size) for e in flagged} == {(512, 64, 128)}


def test_pcap_rows_look_derived_from_h100(shared_file):
    """README §4a: the power-capped H100 repeats H100 decode and scales prefill by ~1.3."""
    experiments = fitting.read_experiments(shared_file(CSV))

    def by_key(hw: str) -> dict[tuple[str, int, int, int, int, int], fitting.Experiment]:
        return {
            (e.model, e.tp, e.prompt_size, e.batch_size, e.token_size, i): e
            for i, e in enumerate(x for x in experiments if x.hardware == hw)
        }

    h100, pcap = by_key("h100-80gb"), by_key("h100-80gb-pcap")
    assert h100.keys() == pcap.keys()
    decode_ratio = [pcap[k].token_time_s / h100[k].token_time_s for k in h100]
    prefill_ratio = [pcap[k].prompt_time_s / h100[k].prompt_time_s for k in h100]
    assert max(abs(r - 1) for r in decode_ratio) < 0.02
    assert statistics.median(prefill_ratio) == pytest.approx(1.3, abs=0.02)
    assert all(c.derived == (c.gpu == "h100-80gb-pcap") for c in fitted_coefficients())


def test_generated_tokens_account_for_early_stopping(shared_file):
    """Runs asking for >= 1,024 tokens stop early (README §4a); context uses what was generated."""
    experiments = fitting.read_experiments(shared_file(CSV))
    short = [e for e in experiments if e.token_size == 128]
    long = [e for e in experiments if e.token_size == 8192]
    # (the derived pcap rows scale prefill but not e2e, so their estimate runs up to ~20% low)
    assert all(0.8 * 128 <= e.generated_tokens <= 128 for e in short)
    assert all(e.generated_tokens < 0.5 * 8192 for e in long)


def test_nonnegative_lstsq_matches_scipy():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(7)
    for _ in range(50):
        a = rng.normal(size=(15, 4)) * np.array([1.0, 1e3, 1e6, 1e-3])
        y = rng.normal(size=15)
        ours = fitting.nonnegative_lstsq(a, y)
        theirs, _ = optimize.nnls(a, y)
        assert np.linalg.norm(a @ ours - y) == pytest.approx(np.linalg.norm(a @ theirs - y))
        assert np.all(ours >= 0)


@pytest.mark.parametrize("combo", COMBOS, ids=["/".join(map(str, c)) for c in COMBOS])
def test_attention_sits_at_the_flops_bound_exactly_when_the_free_fit_exceeds_it(shared_file, combo):
    fit = _fits(shared_file(CSV))[combo]
    attn = fit.coefficients.prefill_attn_s
    assert attn <= fit.prefill_attn_max
    if fit.prefill_attn_bounded:
        assert attn == fit.prefill_attn_max
    else:
        assert attn == fit.prefill_attn_free


def test_the_bound_binds_on_the_default_profile(shared_file):
    fit = _fits(shared_file(CSV))[("llama2-70b", "h100-80gb", 4)]
    assert fit.prefill_attn_bounded
    assert fit.prefill_attn_free > 2 * fit.prefill_attn_max  # the free fit was ~2.7x the bound


def test_nonnegative_lad_matches_linprog():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(11)
    for _ in range(30):
        a = np.abs(rng.normal(size=(12, 2))) * np.array([1.0, 1e3])
        y = rng.normal(size=12) + 1.0
        ours = fitting.nonnegative_lad(a, y)
        # min sum(u + v) s.t. a x + u - v = y, x, u, v >= 0
        m, n = a.shape
        res = optimize.linprog(
            np.concatenate([np.zeros(n), np.ones(2 * m)]),
            A_eq=np.hstack([a, np.eye(m), -np.eye(m)]),
            b_eq=y,
            bounds=[(0, None)] * (n + 2 * m),
        )
        assert res.success
        assert np.all(ours >= 0)
        assert np.abs(a @ ours - y).sum() == pytest.approx(res.fun, rel=1e-7, abs=1e-9)


def test_read_experiments_names_the_missing_column(tmp_path):
    bad = tmp_path / "perf.csv"
    bad.write_text("model,hardware,prompt_size\nllama2-70b,h100-80gb,512\n")
    with pytest.raises(InputError, match="batch_size"):
        fitting.read_experiments(bad)
