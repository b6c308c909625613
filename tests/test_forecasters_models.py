"""What each forecaster is for, beyond the shared contract."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.holt import DampedHolt
from forecasting.holt_winters import HoltWinters
from forecasting.metrics import interval_coverage
from forecasting.naive import LastValue, SeasonalNaive
from forecasting.quantile_regression import QuantileRegression
from forecasting.selector import OnlineSelector

S = 24


def daily(n: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return (
        100 + 50 * np.sin(2 * np.pi * t / S) + rng.normal(0, noise, n)
        if noise
        else (100 + 50 * np.sin(2 * np.pi * t / S))
    )


def test_last_value_band_is_the_spread_of_past_changes():
    y = [10.0, 12.0, 10.0, 12.0, 10.0]  # one-step changes +-2
    out = LastValue().fit(y).predict(2, [0.01, 0.99])
    assert out[0, 0] == pytest.approx(8.0, abs=0.2) and out[0, 1] == pytest.approx(12.0, abs=0.2)
    assert np.allclose(out[1], 10.0)  # two-step changes are all 0


def test_seasonal_naive_repeats_the_last_season():
    y = daily(3 * S)
    out = SeasonalNaive(season_length=S).fit(y).predict(2 * S, [0.5])[:, 0]
    assert np.allclose(out, np.tile(y[-S:], 2))


def test_seasonal_naive_is_naive_before_one_season():
    y = daily(S - 1, noise=3.0)
    a = SeasonalNaive(season_length=S).fit(y).predict(5, [0.1, 0.5, 0.9])
    assert np.array_equal(a, LastValue().fit(y).predict(5, [0.1, 0.5, 0.9]))


def test_seasonal_naive_keeps_the_phase_across_gaps():
    y = daily(3 * S)
    y[-S + 3] = np.nan
    out = SeasonalNaive(season_length=S).fit(y).predict(S, [0.5])[:, 0]
    assert np.allclose(np.delete(out, 3), np.delete(y[-S:], 3))


def test_holt_winters_learns_the_daily_season():
    y = daily(6 * S, noise=2.0)
    median = HoltWinters(season_length=S).fit(y).predict(S, [0.5])[:, 0]
    truth = daily(7 * S)[-S:]
    assert np.abs(median - truth).mean() < 5.0  # the season's amplitude is 50
    holt = DampedHolt().fit(y).predict(S, [0.5])[:, 0]
    assert np.abs(holt - truth).mean() > 20.0


def test_holt_winters_band_covers_the_noise():
    y = daily(20 * S, noise=5.0, seed=1)
    model = HoltWinters(season_length=S, max_horizon=4).fit(y[: 10 * S])
    lo, hi, actual = [], [], []
    for i in range(10 * S, 20 * S - 4):
        band = model.predict(4, [0.05, 0.95])[-1]
        lo.append(band[0])
        hi.append(band[1])
        actual.append(y[i + 3])
        model.update(y[i : i + 1])
    assert 0.8 <= interval_coverage(actual, lo, hi) <= 0.99


def test_quantile_regression_refits_on_schedule_and_only_then():
    model = QuantileRegression(horizons=(1, 4), refit_every=50, min_train_size=20)
    model.fit(daily(120, noise=3.0))
    coef = model.coef_.copy()
    model.update(daily(49, noise=3.0, seed=5))
    assert np.array_equal(model.coef_, coef) and model.since_fit_ == 49
    model.update([100.0])
    assert model.since_fit_ == 0 and not np.array_equal(model.coef_, coef)


def test_quantile_regression_is_last_value_until_it_can_fit():
    y = [5.0, 6.0, 7.0]
    a = QuantileRegression().fit(y).predict(3, [0.1, 0.9])
    assert np.array_equal(a, LastValue().fit(y).predict(3, [0.1, 0.9]))


def test_quantile_regression_quantiles_are_calibrated_on_noise():
    rng = np.random.default_rng(0)
    y = 100 + rng.normal(0, 10, 400)
    out = QuantileRegression(horizons=(1,)).fit(y).predict(1, [0.05, 0.5, 0.95])[0]
    assert out[1] == pytest.approx(100, abs=4)
    assert out[2] - out[0] == pytest.approx(2 * 1.645 * 10, rel=0.3)


def test_quantile_regression_uses_the_time_of_day():
    y = daily(20 * S, noise=2.0)
    model = QuantileRegression(season_length=S, horizons=(1, 6), max_train_size=300)
    median = model.fit(y).predict(6, [0.5])[:, 0]
    assert model.use_season_
    assert np.abs(median - daily(20 * S + 6)[-6:]).mean() < 5.0


def _candidates():
    return (("last-value", LastValue()), ("seasonal-naive", SeasonalNaive(season_length=S)))


def test_the_selector_picks_the_candidate_with_the_lower_recent_loss():
    selector = OnlineSelector(_candidates(), window=3 * S, horizon=6).fit(daily(10 * S, 1.0))
    assert selector.selected_ == "seasonal-naive"
    assert selector.losses_["seasonal-naive"] < selector.losses_["last-value"]
    assert selector.weights_.tolist() == [0.0, 1.0]
    # the median follows the chosen candidate's point path: yesterday's curve
    expected = selector.models_[1]._point_path(6)
    assert np.allclose(selector.predict(6, [0.5])[:, 0], expected)


def test_the_selector_band_is_its_own_and_calibrated():
    # noise of sd 5 around a daily curve: the 5-95% band of the chosen seasonal naive should be
    # about 2 x 1.645 x sqrt(2) x 5 wide (two noisy points: now and a season ago)
    y = daily(40 * S, 5.0, seed=3)
    selector = OnlineSelector(_candidates(), window=3 * S, horizon=2, max_horizon=4).fit(y)
    lo, hi = selector.predict(2, [0.05, 0.95]).T
    assert selector.selected_ == "seasonal-naive"
    assert np.allclose(hi - lo, 2 * 1.645 * np.sqrt(2) * 5, rtol=0.25)


def test_the_selector_switches_when_the_regime_changes():
    # half a day flat: seasonal naive still repeats yesterday's curve, last value is right
    y = np.concatenate([daily(10 * S, 1.0), np.full(S // 2, 80.0)])
    selector = OnlineSelector(_candidates(), window=S // 4, horizon=2).fit(y)
    assert selector.selected_ == "last-value"


def test_the_inverse_loss_ensemble_lies_between_its_candidates():
    y = daily(10 * S, 1.0)
    selector = OnlineSelector(_candidates(), window=3 * S, horizon=6, combine="inverse-loss")
    out = selector.fit(y).predict(6, [0.5])[:, 0]
    parts = [m._point_path(6) for m in selector.models_]
    assert selector.selected_ == "inverse-loss"
    assert (out >= np.minimum(*parts) - 1e-9).all() and (out <= np.maximum(*parts) + 1e-9).all()
    assert sum(selector.weights_) == pytest.approx(1.0)
    assert selector.weights_[1] > selector.weights_[0]  # seasonal naive missed less


@pytest.mark.parametrize("split", [100, 400, 700])
def test_the_selector_update_agrees_with_fit_when_its_candidates_promise_it(split):
    # long enough (30 seasons) for fit to take its shortcut: candidates fitted on the head in
    # bulk, only the last 2 x window + max_horizon + horizon + 40 points streamed
    y = daily(30 * S, 2.0)
    y[::17] = np.nan
    params = {"window": S, "horizon": 3, "max_horizon": 6, "error_alpha": 0.5}
    whole = OnlineSelector(_candidates(), **params).fit(y)
    assert whole._stream_length() < y.size
    parts = OnlineSelector(_candidates(), **params).fit(y[:split]).update(y[split:])
    assert parts.promises_exact_update()
    assert parts.selected_ == whole.selected_
    assert parts.losses_ == pytest.approx(whole.losses_, rel=1e-12)
    assert np.allclose(parts.predict(5, [0.1, 0.9]), whole.predict(5, [0.1, 0.9]), rtol=1e-9)


def test_the_selector_scores_point_forecasts_without_asking_for_quantiles():
    class Counting(LastValue):
        calls = 0

        def _predict(self, horizon, quantiles):
            Counting.calls += 1
            return super()._predict(horizon, quantiles)

    selector = OnlineSelector((("lv", Counting()),), window=S, horizon=3).fit(daily(5 * S, 1.0))
    selector.update(daily(S, 1.0))
    selector.predict(3, [0.1, 0.5, 0.9])
    assert Counting.calls == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"combine": "vote"}, "combine"), ({"candidates": ()}, "one")],
)
def test_the_selector_rejects_bad_settings_at_fit(kwargs, match):
    params = {"candidates": _candidates(), **kwargs}
    selector = OnlineSelector(**params)  # __init__ has no logic
    with pytest.raises(ValueError, match=match):
        selector.fit([1.0, 2.0])


def test_the_selector_rejects_duplicate_names():
    selector = OnlineSelector((("a", LastValue()), ("a", LastValue())))
    with pytest.raises(ValueError, match="unique"):
        selector.fit([1.0])
