"""Damped Holt whose smoothing constants are chosen online, per workload, by their lead-time error.

Why: how much to smooth depends on the series. A 15 s token-work series is mostly sampling noise
around a slowly moving level (heavy-tailed prompt sizes on top of Poisson arrivals), where a
smoothing constant near 0.2 is best and a trend only adds noise; a 10-minute aggregate of many
clients is smooth and follows the clock, where a fast level and a trend win. One fixed
``DampedHolt(alpha=0.5, beta=0.1)`` is right for the second and 11% worse than necessary on the
first. Fitting the constants by likelihood would need a refit; instead every pair on a small grid
runs side by side (a vectorised bank: one numpy operation updates them all), each member's
forecast ``horizon`` steps ahead is scored when that step arrives, and the forecast combines the
members by their recent mean absolute error at that step:

* ``combine="inverse-loss"`` (default): weights proportional to ``loss ** -power``. With
  ``power=2`` these are Bates & Granger's (1969) inverse-variance weights, optimal for independent
  errors; the members here see the same series and their errors are strongly correlated, so
  those weights spread too much on the slow members: on the 10-minute ServeGen models the bank
  then trails the plain ``DampedHolt`` by up to 6%. ``power=4`` (the default) concentrates the
  weight on the best few and still averages near-equal ones instead of flipping between them on
  noise; it was chosen on every shared trace and horizon together (Azure and Mooncake at 15 s,
  ServeGen at 10 min), not on one (power 2 is 0.5% better on Azure, 2-4% worse on ServeGen);
* ``combine="best"``: the member with the lowest loss (ties to the earlier one): the sharpest
  choice, and the noisiest (13% worse than ``inverse-loss`` on the 68-point Mooncake series).

Before any member has been scored (the first ``horizon`` points) the first member forecasts alone;
the grid puts ``alpha=0.5`` first, which follows a ramp at start-up.

The recursion of each member is ``DampedHolt``'s (Hyndman & Athanasopoulos, FPP §8.2)::

    level_t = alpha y_t + (1 - alpha) (level_{t-1} + phi trend_{t-1})
    trend_t = beta (level_t - level_{t-1}) + (1 - beta) phi trend_{t-1}

with ``beta = 0`` meaning no trend (simple exponential smoothing). Member losses forget with
weight ``max(1 / window, 1 / n)`` per scored point. The band is normal around the combined path,
with a sigma per step from the exponentially weighted mean absolute error of the combined path's
own past forecasts at that step (``forecasting._errors.HorizonMae``): the band describes what is
actually forecast, switches and blends included. (Empirical error quantiles were tried: worse
on every shared trace but the 68-point Mooncake one, as a few hundred errors pin a 5% tail down
poorly and carry the bias of a level that has just turned.)

Limit: a member's merit is learnt ``horizon`` points late, averaged over up to ``window``
scores. After a long flat spell the slow members lead, and when demand then ramps up they keep
weight until the ramp has shown in their lead-time errors: on the 17-minute Mooncake token work
(flat for 7 minutes, then doubling) the bank's 240 s forecasts of the 1-minute mean miss more
than ``DampedHolt``'s. The policy's latency and saturation guards are what cover that case.

* ``update``: O(members + max_horizon) per point, vectorised; gaps are dropped (a step means one
  observed point, as in ``DampedHolt``). ``forecasting.adaptive_holt_batch`` runs the same
  model for many workloads at once, at about a microsecond per workload and tick.
* ``fit(y[:k]).update(y[k:])`` predicts exactly what ``fit(y)`` predicts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forecasting._errors import HorizonMae
from forecasting.base import FloatArray, Forecaster
from forecasting.holt import normal_z

COMBINES = ("inverse-loss", "best")


class HoltBankSettings:
    """The bank's settings, one constructor for the per-series model and the batch one
    (:class:`~forecasting.adaptive_holt_batch.AdaptiveHoltBatch`), so they cannot drift apart."""

    def __init__(
        self,
        alphas: Sequence[float] = (0.5, 0.3, 0.2, 0.1, 0.05, 0.8),
        betas: Sequence[float] = (0.0, 0.1),
        phi: float = 0.9,
        horizon: int = 16,
        window: int = 96,
        combine: str = "inverse-loss",
        power: float = 4.0,
        error_alpha: float = 0.05,
        max_horizon: int = 40,
    ) -> None:
        self.alphas = alphas
        self.betas = betas
        self.phi = phi
        self.horizon = horizon
        self.window = window
        self.combine = combine
        self.power = power
        self.error_alpha = error_alpha
        self.max_horizon = max_horizon

    def _set_members(self) -> None:
        """Check the settings and lay out the bank's members: every alpha with the first beta,
        then every alpha with the next beta, and so on."""
        if self.combine not in COMBINES:
            raise ValueError(f"unknown combine {self.combine!r}; known: {', '.join(COMBINES)}")
        alphas = np.asarray(list(self.alphas), dtype=np.float64)
        betas = np.asarray(list(self.betas), dtype=np.float64)
        if alphas.size == 0 or betas.size == 0:
            raise ValueError(f"{type(self).__name__} needs at least one alpha and one beta")
        for name, values in (("alphas", alphas), ("betas", betas)):
            if not np.all((values >= 0) & (values <= 1)):
                raise ValueError(f"{name} must lie in [0, 1], got {values.tolist()}")
        self.member_alpha_ = np.tile(alphas, betas.size)
        self.member_beta_ = np.repeat(betas, alphas.size)
        self.trend_carry_ = (1.0 - self.member_beta_) * float(self.phi)


class AdaptiveHolt(HoltBankSettings, Forecaster):
    """A bank of damped-Holt recursions over ``alphas x betas``, weighted by recent error."""

    def _reset(self) -> None:
        self._set_members()
        k = self.member_alpha_.size
        self.h_ = max(1, int(self.horizon))
        big_h = max(int(self.max_horizon), self.h_)
        phi = float(self.phi)
        self.damp_ = np.cumsum(phi ** np.arange(1, big_h + 1))  # phi + ... + phi^k, k = 1..H
        self.damp_h_ = float(np.sum(phi ** np.arange(1, self.h_ + 1)))
        self.level_: FloatArray | None = None
        self.trend_ = np.zeros(k)
        self.pending_ = np.zeros((self.h_, k))  # slot i % h: forecast of point i + h
        self.n_obs_ = 0  # observed points absorbed
        self.loss_ = np.zeros(k)  # recent mean absolute error at step h, per member
        self.n_scored_ = 0
        self.weights_ = np.zeros(k)
        self.weights_[0] = 1.0
        self.band_ = HorizonMae(big_h, float(self.error_alpha))

    @property
    def members_(self) -> list[tuple[float, float]]:
        """``(alpha, beta)`` of each member, in the order of ``weights_`` and ``loss_``."""
        return list(zip(self.member_alpha_.tolist(), self.member_beta_.tolist(), strict=True))

    def _weigh(self) -> None:
        loss = self.loss_
        if self.combine == "best":
            self.weights_ = np.zeros(loss.size)
            self.weights_[int(np.argmin(loss))] = 1.0
            return
        top = float(loss.max())
        if not 0.0 < top < np.inf:  # nothing missed yet (a constant series): equal weights
            self.weights_ = np.full(loss.size, 1.0 / loss.size)
            return
        inv = loss / top
        inv += 1e-9  # a member that never missed takes (almost) all the weight
        np.power(inv, -float(self.power), out=inv)
        inv /= inv.sum()
        self.weights_ = inv

    def _update(self, y: FloatArray) -> None:
        phi, h = float(self.phi), self.h_
        a, b, carry = self.member_alpha_, self.member_beta_, self.trend_carry_
        steady_loss = max(1, int(self.window))
        band = self.band_
        for value in y[~np.isnan(y)].tolist():
            old = self.level_
            if old is None:
                self.level_ = np.full(a.size, value)
                self.pending_[0] = value
                self.n_obs_ = 1
                band.push(np.full(band.max_horizon, value))
                continue
            slot = self.n_obs_ % h
            if self.n_obs_ >= h:  # the members' forecasts made h points ago are due now
                n = self.n_scored_ = self.n_scored_ + 1
                err = np.abs(value - self.pending_[slot])
                err -= self.loss_
                err *= 1.0 / min(n, steady_loss)
                self.loss_ += err
                self._weigh()
            band.observe(value)
            trend = self.trend_
            level = trend * phi
            level += old
            level += a * (value - level)  # forecast + alpha (y - forecast)
            trend = b * (level - old) + carry * trend
            self.level_, self.trend_ = level, trend
            self.pending_[slot] = self.damp_h_ * trend + level
            self.n_obs_ += 1
            w = self.weights_
            band.push(self.damp_ * float(w @ trend) + float(w @ level))

    def _path(self, damp: FloatArray) -> FloatArray:
        assert self.level_ is not None
        w = self.weights_
        return float(w @ self.level_) + damp * float(w @ self.trend_)

    def _point_path(self, horizon: int) -> FloatArray:
        if horizon <= self.damp_.size:
            return self._path(self.damp_[:horizon])
        return self._path(np.cumsum(float(self.phi) ** np.arange(1, horizon + 1)))

    def _point_step(self, step: int) -> float:
        assert self.level_ is not None
        phi = float(self.phi)
        damp = (
            float(self.damp_[step - 1])
            if step <= self.damp_.size
            else float(np.sum(phi ** np.arange(1, step + 1)))
        )
        w = self.weights_
        return float(w @ self.level_) + damp * float(w @ self.trend_)

    def _predict(self, horizon: int, quantiles: FloatArray) -> FloatArray:
        means = self._point_path(horizon)
        return means[:, None] + self.band_.sigmas(horizon)[:, None] * normal_z(quantiles)[None, :]
