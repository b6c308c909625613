"""Dynamo's default load predictor (``arima``) and the ``dynamo`` baseline planning with it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.core.slo import SloSpec
from autoscaler.policies.arima import (
    MIN_POINTS,
    ArimaPredictor,
    auto_arima,
    fit_arima,
    forecast_one,
    ndiffs,
)
from autoscaler.policies.base import PolicyContext
from autoscaler.policies.dynamo import DynamoPolicy


def ar1(n: int, phi: float, mean: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.empty(n)
    y[0] = mean
    for t in range(1, n):
        y[t] = mean + phi * (y[t - 1] - mean) + rng.normal()
    return y


def test_differences_follow_the_kpss_test():
    rng = np.random.default_rng(1)
    assert ndiffs(rng.normal(size=300)) == 0
    assert ndiffs(np.cumsum(rng.normal(size=300))) == 1
    assert ndiffs(np.full(20, 3.0)) == 0


def test_auto_arima_finds_an_autoregression_and_forecasts_its_mean_reversion():
    y = ar1(400, 0.7, 10.0)
    fit = auto_arima(y)
    assert fit is not None and fit.d == 0 and fit.p >= 1
    # the one-step forecast is the conditional mean, 10 + 0.7 (y[-1] - 10), within noise
    expected = 10.0 + 0.7 * (y[-1] - 10.0)
    assert forecast_one(fit, y) == pytest.approx(expected, abs=0.35)


def test_a_random_walk_with_drift_is_differenced_and_keeps_its_drift():
    y = np.cumsum(np.random.default_rng(2).normal(0.5, 1.0, 300))
    fit = auto_arima(y)
    assert fit is not None and fit.d == 1 and fit.constant
    assert forecast_one(fit, y) - y[-1] == pytest.approx(0.5, abs=0.3)


def test_an_order_too_large_for_the_series_does_not_fit():
    assert fit_arima(np.arange(6.0), 3, 0, 3, True) is None


def test_the_predictor_follows_dynamos_rules_before_it_fits():
    p = ArimaPredictor()
    assert p.predict() == 0.0
    for value in (0.0, math.nan, 0.0):  # the idle period before the first traffic is skipped
        p.add(value)
    assert p.points == []
    for value in (5.0, 0.0, 7.0):  # zeros after the first traffic count (NaN as 0)
        p.add(value)
    assert p.points == [5.0, 0.0, 7.0]
    assert p.predict() == 7.0  # fewer than 5 points: the last one
    flat = ArimaPredictor()
    for _ in range(MIN_POINTS + 3):
        flat.add(4.0)
    assert flat.predict() == 4.0 and flat.fit is None  # all equal: no fit


def test_the_order_is_chosen_once_and_the_parameters_follow_new_points():
    p = ArimaPredictor()
    rng = np.random.default_rng(3)
    for value in 100.0 + 5.0 * np.arange(40) + rng.normal(0, 1, 40):
        p.add(float(value))
        p.predict()
    assert p.fit is not None
    order = p.fit.order
    # a steady ramp: the forecast continues it
    assert p.predict() == pytest.approx(100.0 + 5.0 * 40, abs=5.0)
    for value in 300.0 - 5.0 * np.arange(20):
        p.add(float(value))
        p.predict()
    assert p.fit.order == order  # pmdarima's update() keeps the order
    assert p.predict() >= 0.0


def _snap(t: float, rate: float) -> SignalSnapshot:
    counts = ReplicaCounts(spec=4, ready=4, starting=0, pending=0, terminating=0)
    signals: dict[str, Any] = {
        "request_rate": rate,
        "mean_prompt_tokens": 1000.0,
        "mean_output_tokens": 200.0,
        "generation_tokens_rate": rate * 200.0,
        "ttft_p90_s": 2.0,
        "tpot_p90_s": 0.0625,
    }
    return SignalSnapshot(workload="w", timestamp=t, replicas=counts, **signals)


def test_dynamo_plans_for_the_forecast_not_the_last_interval():
    """On a steady ramp the ARIMA forecast runs ahead of the last interval's rate, so the
    planner asks for more replicas than the last interval alone would need."""
    policy = DynamoPolicy(PolicyContext(slo=SloSpec(), max_replicas=500))
    last = None
    for i in range(12 * 30 + 1):
        rate = 10.0 + 2.0 * (i // 12)  # +2 req/s every 180 s interval
        last = policy.recommend(_snap(i * 15.0, rate))
    assert last is not None and last.winner == "sla-planner"
    prefill = next(c for c in last.candidates if c.reason == "prefill")
    assert "forecast" in prefill.detail
    seen = policy.rate_predictor.points[-1]  # the last interval's rate, about 68
    forecast = policy.rate_predictor.predict()
    assert seen + 1.0 < forecast < seen + 6.0
    # a clean ramp differences to a constant, an ARIMA(0, 1, 0): Dynamo's predictor then refits
    # on log1p(y), so it extrapolates the ramp's (falling) relative growth
    fit = policy.rate_predictor.fit
    assert fit is not None and fit.order == (0, 1, 0) and policy.rate_predictor.log1p
    # prefill need = rate x ISL / 10,000 tok/s per replica (correction capped at 1)
    assert prefill.replicas == pytest.approx(forecast * 1000.0 / 10_000.0, rel=1e-6)
