"""The adaptive Holt bank, the per-step error trackers it and the selector band on, and the
cheap point-forecast hooks the selector scores (beyond the shared contract)."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting._errors import MAE_TO_SIGMA, HorizonMae
from forecasting.adaptive_holt import AdaptiveHolt
from forecasting.holt import DampedHolt
from forecasting.holt_winters import HoltWinters
from forecasting.metrics import interval_coverage
from forecasting.naive import LastValue, SeasonalNaive
from forecasting.quantile_regression import QuantileRegression
from forecasting.registry import make_forecaster
from forecasting.selector import OnlineSelector

S = 24


def noisy_level(n: int, sd: float = 10.0, seed: int = 0) -> np.ndarray:
    return 100.0 + np.random.default_rng(seed).normal(0.0, sd, n)


def random_walk(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1000.0 + np.cumsum(rng.normal(0.0, 10.0, n)) + rng.normal(0.0, 1.0, n)


# --- the bank ------------------------------------------------------------------------------


def test_one_member_is_exactly_damped_holt():
    y = random_walk(300)
    y[::23] = np.nan
    bank = AdaptiveHolt(alphas=(0.3,), betas=(0.1,), phi=0.9, error_alpha=0.1, max_horizon=40)
    holt = DampedHolt(alpha=0.3, beta=0.1, phi=0.9, error_alpha=0.1, max_horizon=40)
    qs = [0.05, 0.5, 0.9, 0.99]
    assert np.allclose(bank.fit(y).predict(50, qs), holt.fit(y).predict(50, qs), rtol=1e-12)


def test_noise_around_a_level_weights_the_slow_members():
    model = AdaptiveHolt(horizon=4).fit(noisy_level(600))
    weight = dict(zip(model.members_, model.weights_.tolist(), strict=True))
    slow = sum(w for (a, _), w in weight.items() if a <= 0.1)
    fast = sum(w for (a, _), w in weight.items() if a >= 0.5)
    assert slow > 2 * fast  # soft weights: on pure noise the members' errors differ by ~30%
    assert weight[(0.05, 0.0)] == max(weight.values())


def test_a_random_walk_weights_the_fast_members():
    model = AdaptiveHolt(horizon=4).fit(random_walk(600))
    weight = dict(zip(model.members_, model.weights_.tolist(), strict=True))
    assert sum(w for (a, _), w in weight.items() if a >= 0.5) > 0.5


def test_the_bank_beats_a_fixed_holt_on_noise_and_keeps_up_on_a_walk():
    def mae_at(model, y: np.ndarray, h: int) -> float:
        model.fit(y[:200])
        errors = []
        for i in range(200, y.size - h):
            errors.append(abs(model.predict(h, [0.5])[-1, 0] - y[i + h - 1]))
            model.update(y[i : i + 1])
        return float(np.mean(errors))

    noise, walk = noisy_level(800, seed=1), random_walk(800, seed=1)
    assert mae_at(AdaptiveHolt(horizon=4), noise, 4) < 0.9 * mae_at(DampedHolt(), noise, 4)
    assert mae_at(AdaptiveHolt(horizon=4), walk, 4) < 1.05 * mae_at(DampedHolt(), walk, 4)


def test_the_band_is_calibrated_on_noise():
    y = noisy_level(1200, seed=2)
    model = AdaptiveHolt(horizon=4, max_horizon=4).fit(y[:400])
    lo, hi, actual = [], [], []
    for i in range(400, y.size - 4):
        band = model.predict(4, [0.05, 0.95])[-1]
        lo.append(band[0])
        hi.append(band[1])
        actual.append(y[i + 3])
        model.update(y[i : i + 1])
    assert 0.85 <= interval_coverage(actual, lo, hi) <= 0.95


def test_weights_sum_to_one_and_best_is_one_hot_at_the_lowest_loss():
    y = random_walk(200)
    blend = AdaptiveHolt(horizon=3).fit(y)
    assert blend.weights_.sum() == pytest.approx(1.0)
    assert (blend.weights_ > 0).all()
    best = AdaptiveHolt(horizon=3, combine="best").fit(y)
    assert best.weights_.sum() == 1.0 and best.weights_.max() == 1.0
    assert int(np.argmax(best.weights_)) == int(np.argmin(best.loss_))


def test_a_sharper_power_concentrates_the_weight():
    y = noisy_level(400)
    flat = AdaptiveHolt(power=1.0).fit(y).weights_
    sharp = AdaptiveHolt(power=8.0).fit(y).weights_
    assert sharp.max() > flat.max()


def test_before_any_score_the_first_member_forecasts_alone():
    model = AdaptiveHolt(horizon=5).fit([10.0, 20.0, 30.0])
    assert model.n_scored_ == 0 and model.weights_[0] == 1.0
    # the first member (alpha 0.5, no trend) after 10, 20, 30: 10 -> 15 -> 22.5
    assert model.predict(2, [0.5])[:, 0] == pytest.approx([22.5, 22.5])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"combine": "median"}, "combine"),
        ({"alphas": ()}, "at least one"),
        ({"betas": (0.1, 1.5)}, r"betas must lie in \[0, 1\]"),
    ],
)
def test_bad_settings_are_value_errors_at_fit(kwargs, match):
    model = AdaptiveHolt(**kwargs)  # __init__ has no logic
    with pytest.raises(ValueError, match=match):
        model.fit([1.0, 2.0])


# --- the error trackers --------------------------------------------------------------------


def _reference_mae(paths: list[np.ndarray], ys: list[float], h: int, alpha: float) -> np.ndarray:
    """Straightforward per-step EW MAE: path p forecasts y[p + 1 ..], scored when they come."""
    mae, counts = np.zeros(h), np.zeros(h)
    for s in range(1, len(ys)):
        for a in range(h):
            p = s - 1 - a
            if p < 0:
                break
            counts[a] += 1
            w = max(alpha, 1.0 / counts[a])
            mae[a] += w * (abs(ys[s] - paths[p][a]) - mae[a])
    return mae


def test_horizon_mae_matches_a_plain_loop_before_and_after_its_steady_state():
    rng = np.random.default_rng(4)
    h, alpha = 5, 0.25
    tracker = HorizonMae(h, alpha)
    ys = rng.normal(0, 1, 60).tolist()
    paths = [rng.normal(0, 1, h) for _ in ys]
    for i, (y, path) in enumerate(zip(ys, paths, strict=True)):
        if i:
            tracker.observe(y)
        tracker.push(path)
        expected = _reference_mae(paths[: i + 1], ys[: i + 1], h, alpha)
        assert np.allclose(tracker.mae, expected, rtol=1e-12, atol=1e-15)
    assert tracker._steady  # the fast path was exercised


def test_horizon_mae_skips_gaps_and_fills_unseen_steps_with_the_widest():
    tracker = HorizonMae(4, 0.1)
    tracker.push(np.array([1.0, 1.0, 1.0, 1.0]))
    tracker.observe(float("nan"))  # a gap scores nothing
    assert tracker.counts.sum() == 0 and np.array_equal(tracker.sigmas(6), np.zeros(6))
    tracker.push(np.array([1.0, 1.0, 1.0, 1.0]))
    tracker.observe(3.0)  # step 1 of the newest path, step 2 of the one before: both miss by 2
    assert tracker.sigmas(6) == pytest.approx([2 * MAE_TO_SIGMA] * 6)


# --- the point-forecast hooks the selector scores ------------------------------------------


def _seasonal(n: int) -> np.ndarray:
    t = np.arange(n)
    return 100 + 40 * np.sin(2 * np.pi * t / S) + np.random.default_rng(5).normal(0, 3, n)


@pytest.mark.parametrize(
    "model",
    [
        LastValue(),
        SeasonalNaive(season_length=S),
        DampedHolt(),
        HoltWinters(season_length=S),
        AdaptiveHolt(),
        QuantileRegression(season_length=S, horizons=(1, 4)),
    ],
    ids=lambda m: type(m).__name__,
)
def test_point_step_is_the_last_point_of_the_point_path(model):
    y = _seasonal(6 * S)
    y[::11] = np.nan
    model.fit(y)
    for step in (1, 4, S, 3 * S + 1):
        assert model._point_step(step) == pytest.approx(model._point_path(step)[-1], rel=1e-12)


def test_the_default_point_path_is_the_median():
    model = QuantileRegression(season_length=S, horizons=(1, 4)).fit(_seasonal(6 * S))
    assert np.allclose(model._point_path(4), model.predict(4, [0.5])[:, 0])


def test_the_naive_point_paths_are_what_they_repeat():
    y = _seasonal(3 * S)
    assert np.array_equal(LastValue().fit(y)._point_path(3), np.full(3, y[-1]))
    assert np.array_equal(SeasonalNaive(season_length=S).fit(y)._point_path(S), y[-S:])


# --- the registry's selector ---------------------------------------------------------------


def test_the_default_selector_adds_holt_winters_only_with_a_season():
    plain = make_forecaster("selector", horizon=16)
    seasonal = make_forecaster("selector", season_length=144, horizon=16)
    assert isinstance(plain, OnlineSelector) and isinstance(seasonal, OnlineSelector)
    assert [n for n, _ in plain.candidates] == ["adaptive-holt"]
    assert [n for n, _ in seasonal.candidates] == ["adaptive-holt", "holt-winters"]
    assert plain.horizon == 16 and plain.candidates[0][1].get_params()["horizon"] == 16


def test_a_selector_of_one_candidate_forecasts_its_point_path_with_the_same_band():
    # the selector's band tracks its own paths; with one candidate those are the candidate's,
    # so it must reproduce the adaptive bank (same error_alpha, same max_horizon)
    y = random_walk(400)
    bank = AdaptiveHolt(horizon=4, max_horizon=8)
    selector = OnlineSelector((("bank", bank),), horizon=4, max_horizon=8)
    qs = [0.1, 0.5, 0.9]
    expected = AdaptiveHolt(horizon=4, max_horizon=8).fit(y).predict(6, qs)
    assert np.allclose(selector.fit(y).predict(6, qs), expected, rtol=1e-9)
