"""The rolling-origin backtest: no model ever sees the future, the table's shape, and evaluate's
figures on hand-made series whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from forecasting.backtest import (
    CVTable,
    cross_validation,
    cutoffs_for,
    evaluate,
    seasonal_scale,
)
from forecasting.holt import DampedHolt

QS = (0.05, 0.5, 0.95)


class Spy:
    """Forecasts ``max index seen + step`` on a series whose values are their own indices, and
    records what it saw. If the backtest leaked any future point, its forecast would exceed the
    true value at ``ts`` and ``seen_at_predict`` would exceed the cutoff. With ``peek`` it also
    tries to read the whole series through the array it is given (``y.base``)."""

    instances = 0
    max_seen_: float

    def __init__(self, peek: bool = False) -> None:
        self.peek = peek
        Spy.instances += 1

    def get_params(self):
        return {"peek": self.peek}

    def _absorb(self, y):
        y = np.asarray(y)
        values = [y]
        if self.peek and y.base is not None:
            values.append(np.asarray(y.base))
        for v in values:
            finite = v[np.isfinite(v)]
            if finite.size:
                self.max_seen_ = max(self.max_seen_, float(finite.max()))

    def fit(self, y):
        self.max_seen_ = -1.0
        self.seen_at_predict_: list[float] = []
        self.fits_ = 1
        self._absorb(y)
        return self

    def update(self, y_new):
        self._absorb(y_new)
        return self

    def predict(self, horizon, quantiles):
        self.seen_at_predict_.append(self.max_seen_)
        base = self.max_seen_ + np.arange(1, horizon + 1, dtype=float)
        return np.repeat(base[:, None], len(quantiles), axis=1)


class LastValue:
    """The naive forecast, every quantile at the last finite value."""

    def get_params(self):
        return {}

    def fit(self, y):
        self.last_ = math.nan
        return self.update(y)

    def update(self, y_new):
        finite = np.asarray(y_new, dtype=float)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            self.last_ = float(finite[-1])
        return self

    def predict(self, horizon, quantiles):
        return np.full((horizon, len(quantiles)), self.last_)


class LinearOracle:
    """Extends the straight line through the last two points: perfect on a linear series."""

    def get_params(self):
        return {}

    def fit(self, y):
        self.y_ = list(np.asarray(y, dtype=float))
        return self

    def update(self, y_new):
        self.y_.extend(np.asarray(y_new, dtype=float))
        return self

    def predict(self, horizon, quantiles):
        slope = self.y_[-1] - self.y_[-2]
        path = self.y_[-1] + slope * np.arange(1, horizon + 1)
        return np.repeat(path[:, None], len(quantiles), axis=1)


# --- never the future -----------------------------------------------------------------------


@pytest.mark.parametrize("refit", [False, True, 3])
@pytest.mark.parametrize("step", [1, 4])
def test_backtest_never_lets_a_model_see_the_future(refit, step):
    y = np.arange(120, dtype=float)  # value == index
    table = cross_validation(
        {"a": y, "b": y[:90]},
        {"spy": Spy(), "peeker": Spy(peek=True)},
        h=7,
        step=step,
        refit=refit,
        quantiles=QS,
        min_train=10,
    )
    # a forecast equals the truth exactly when the model saw everything up to the cutoff and
    # nothing after it: more would overshoot, less would undershoot
    for j in range(len(QS)):
        np.testing.assert_array_equal(table.forecast[:, j], table.ts.astype(float))
    np.testing.assert_array_equal(table.actual, table.ts.astype(float))


def test_the_spy_would_catch_a_backtest_that_hands_out_views():
    y = np.arange(50, dtype=float)
    spy = Spy(peek=True).fit(y[:20])  # a view: .base is the whole series
    assert spy.predict(1, QS)[0, 0] == 50.0  # it read y[49], the future
    honest = Spy(peek=True).fit(np.array(y[:20], copy=True))
    assert honest.predict(1, QS)[0, 0] == 20.0


def test_update_mode_feeds_every_point_exactly_once():
    """With refit=False the model is fitted once and then sees each new point once."""

    class Counter(Spy):
        def fit(self, y):
            super().fit(y)
            self.points_ = len(y)
            return self

        def update(self, y_new):
            self.points_ += len(y_new)
            return super().update(y_new)

        def predict(self, horizon, quantiles):
            out = super().predict(horizon, quantiles)
            assert self.points_ == self.max_seen_ + 1
            return out

    cross_validation(np.arange(60.0), {"c": Counter()}, h=3, step=2, min_train=5, quantiles=QS)


def test_each_workload_gets_its_own_clone_and_the_prototype_stays_unfitted():
    proto = Spy()
    before = Spy.instances
    cross_validation({"a": np.arange(30.0), "b": np.arange(40.0)}, {"s": proto}, h=2, n_windows=3)
    assert Spy.instances - before == 2
    assert not hasattr(proto, "max_seen_")


def test_project_forecasters_are_cloned_without_sharing_state():
    y = np.abs(np.sin(np.arange(200) / 7.0)) * 50 + 10
    proto = DampedHolt(alpha=0.3)
    table = cross_validation({"a": y, "b": y * 2}, {"holt": proto}, h=4, n_windows=5)
    assert not hasattr(proto, "level_")
    a = table.forecast[table.workload == "a"]
    b = table.forecast[table.workload == "b"]
    np.testing.assert_allclose(b, 2 * a, rtol=1e-9)  # scale-equivariant, so no leak across


# --- the table ------------------------------------------------------------------------------


def test_cutoffs_follow_statsforecast():
    # last window ends at the series' end; earlier ones step back; min_train drops the first
    np.testing.assert_array_equal(
        cutoffs_for(20, h=3, n_windows=3, step=2, min_train=1), [12, 14, 16]
    )
    np.testing.assert_array_equal(
        cutoffs_for(20, h=3, n_windows=None, step=5, min_train=10), [11, 16]
    )
    assert cutoffs_for(5, h=5, n_windows=None, step=1, min_train=1).size == 0


def test_table_shape_and_columns():
    y = {"a": np.arange(50.0), "b": np.arange(30.0)}
    table = cross_validation(
        y, {"m1": LastValue(), "m2": Spy()}, h=4, n_windows=5, step=2, quantiles=(0.9, 0.1, 0.5)
    )
    assert isinstance(table, CVTable)
    assert len(table) == 2 * 2 * 5 * 4
    cols = table.columns()
    assert list(cols) == [
        "workload", "cutoff", "step", "ts", "model", "q0.1", "q0.5", "q0.9", "actual",
    ]  # fmt: skip
    assert all(len(c) == len(table) for c in cols.values())
    assert table.quantiles == (0.1, 0.5, 0.9)
    assert set(cols["step"].tolist()) == {1, 2, 3, 4}
    np.testing.assert_array_equal(cols["ts"], cols["cutoff"] + cols["step"])
    a = cols["workload"] == "a"
    assert sorted(set(cols["cutoff"][a].tolist())) == [37, 39, 41, 43, 45]
    np.testing.assert_array_equal(cols["actual"][a], cols["ts"][a].astype(float))


def test_gaps_reach_the_models_and_nan_actuals_stay_in_the_table():
    y = np.arange(40.0)
    y[[20, 33]] = np.nan
    table = cross_validation(y, {"last": LastValue()}, h=3, n_windows=10, quantiles=QS)
    assert np.isnan(table.actual).sum() > 0
    assert np.isfinite(table.forecast).all()


def test_bad_arguments_and_bad_models_raise():
    y = np.arange(10.0)
    with pytest.raises(ValueError, match="too short"):
        cross_validation({"w": y}, {"m": LastValue()}, h=5, min_train=8)
    with pytest.raises(ValueError, match="h must"):
        cross_validation(y, {"m": LastValue()}, h=0)
    with pytest.raises(ValueError, match="quantiles"):
        cross_validation(y, {"m": LastValue()}, h=1, quantiles=(0.5, 1.0))

    class WrongShape(LastValue):
        def predict(self, horizon, quantiles):
            return np.zeros(horizon)

    with pytest.raises(ValueError, match="shape"):
        cross_validation(y, {"bad": WrongShape()}, h=2)


# --- evaluate -------------------------------------------------------------------------------


def _linear():
    return 5.0 + 2.0 * np.arange(80.0)


def test_perfect_model_has_zero_loss_full_coverage_and_zero_ratio():
    y = _linear()
    table = cross_validation(
        y, {"oracle": LinearOracle(), "last": LastValue()}, h=4, min_train=10, quantiles=QS
    )
    scores = evaluate(table, y, reference="last", n_boot=200)
    perfect = scores["oracle"]
    assert perfect.wql == 0.0
    assert perfect.mase == 0.0
    assert perfect.coverage_90 == 1.0
    assert perfect.wql_ratio == 0.0
    assert perfect.windows == 80 - 4 - 10 + 1
    assert perfect.ci["wql"] == (0.0, 0.0)


def test_naive_on_a_line_has_the_known_mase_wql_and_coverage():
    y = _linear()
    h, qs = 4, QS
    table = cross_validation(y, {"last": LastValue()}, h=h, min_train=10, quantiles=qs)
    score = evaluate(table, y, reference="last", n_boot=100)["last"]
    # error at step k is 2k; in-sample naive error is 2 -> MASE = mean(2k)/2 = (h + 1)/2
    assert score.mase == pytest.approx((h + 1) / 2)
    # every quantile sits below the truth: pinball_q = q * err, WQL = mean_q 2 q sum(err)/sum(y)
    rows = ~np.isnan(table.actual)
    err = (table.actual - table.forecast[:, 0])[rows].sum()
    expected = np.mean([2 * q * err for q in qs]) / np.abs(table.actual[rows]).sum()
    assert score.wql == pytest.approx(expected)
    assert score.coverage_90 == 0.0
    assert score.wql_ratio == pytest.approx(1.0)


def test_seasonal_scale_uses_the_season_once_one_has_passed():
    y = np.array([1.0, 3.0, 1.0, 3.0, 1.0, 5.0])
    scale = seasonal_scale(y, season=2)
    assert math.isnan(scale[0])
    assert scale[1] == pytest.approx(2.0)  # naive: one season not yet complete
    assert scale[2] == pytest.approx(0.0)  # |1 - 1|
    assert scale[5] == pytest.approx(2.0 / 4)  # lag-2 pairs: 0, 0, 0, |5 - 3|


def test_nan_actuals_are_skipped_and_mase_windows_with_zero_scale_are_left_out():
    y = np.full(40, 7.0)
    y[30] = np.nan
    table = cross_validation(y, {"last": LastValue()}, h=2, min_train=5, quantiles=QS)
    score = evaluate(table, y, reference="last", n_boot=50)["last"]
    assert score.wql == 0.0
    assert score.mase is None  # constant past: scale 0 everywhere
    assert score.coverage_90 == 1.0


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(3)
    y = 50 + rng.normal(0, 5, 400)
    table = cross_validation(
        y, {"holt": DampedHolt(), "last": LastValue()}, h=5, min_train=40, quantiles=QS
    )
    one = evaluate(table, y, reference="last", seed=1, n_boot=300)
    two = evaluate(table, y, reference="last", seed=1, n_boot=300)
    assert one == two
    for score in one.values():
        for name in ("mase", "wql", "coverage_90"):
            bounds = score.ci[name]
            assert bounds is not None
            assert bounds[0] <= getattr(score, name) <= bounds[1]
    ratio = one["holt"].ci["wql_ratio"]
    assert (
        ratio is not None and ratio[0] < 1.0
    )  # Holt beats the naive on white noise around a level


def test_reference_per_workload():
    y = {"a": _linear(), "b": 100.0 - _linear() / 4}
    table = cross_validation(
        y, {"oracle": LinearOracle(), "last": LastValue()}, h=3, min_train=10, quantiles=QS
    )
    scores = evaluate(table, y, reference={"a": "last", "b": "oracle"}, n_boot=50)
    # 'last' is compared with itself on a and with a perfect model on b
    assert scores["last"].wql_ratio is not None and scores["last"].wql_ratio > 1.0
    with pytest.raises(ValueError, match="reference"):
        evaluate(table, y, reference="nope")


def test_evaluate_agrees_with_forecasting_metrics():
    """The bootstrap needs per-window sums, so evaluate computes its figures itself; they must
    be the definitions of forecasting.metrics."""
    from forecasting.metrics import interval_coverage, mase, weighted_quantile_loss

    rng = np.random.default_rng(7)
    y = 30 + 10 * np.sin(np.arange(300) / 6.0) + rng.normal(0, 2, 300)
    y[[150, 151, 290]] = np.nan
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    table = cross_validation(y, {"holt": DampedHolt()}, h=6, min_train=60, quantiles=qs)
    score = evaluate(table, y, reference="holt", n_boot=10)["holt"]
    assert score.wql == pytest.approx(weighted_quantile_loss(table.actual, table.forecast, qs))
    assert score.coverage_90 == pytest.approx(
        interval_coverage(table.actual, table.quantile(0.05), table.quantile(0.95))
    )
    # one window: MASE is metrics.mase with the training part as the in-sample series
    one = cross_validation(y, {"holt": DampedHolt()}, h=6, n_windows=1, quantiles=qs)
    cut = int(one.cutoff[0])
    got = evaluate(one, y, reference="holt", season_length=19, n_boot=10)["holt"].mase
    assert got == pytest.approx(mase(one.actual, one.quantile(0.5), y[: cut + 1], season=19))


def test_on_predict_sees_each_window_once_with_the_fitted_model():
    calls = []
    y = np.arange(30.0)
    cross_validation(
        {"w": y},
        {"spy": Spy()},
        h=2,
        n_windows=4,
        on_predict=lambda w, name, cut, model: calls.append((w, name, cut, model.max_seen_)),
    )
    assert calls == [("w", "spy", c, float(c)) for c in (24, 25, 26, 27)]
