"""Dynamo's default load predictor: auto-ARIMA, fitted once, updated with every new point.

NVIDIA Dynamo's SLA planner forecasts the next adjustment interval's request count, mean input
length and mean output length each with its own predictor; the default is ``arima``
(``SLAPlannerDefaults.load_predictor`` in ``components/src/dynamo/planner/defaults.py``), the
``ARIMAPredictor`` of ``components/src/dynamo/planner/utils/load_predictor.py``:

* points are appended once per interval; NaN counts as 0 and leading zeros (the idle period
  before the first traffic) are skipped;
* with fewer than 5 points, or when every point is equal, it predicts the last point;
* the first prediction fits ``pmdarima.auto_arima(y)`` with its defaults; if the order found is
  ``(0, d, 0)`` it refits on ``log1p(y)`` and predicts ``expm1`` of that (spiky series);
* the order is kept from then on; each later prediction updates the parameters with the new
  points (``model.update``) and forecasts one step, floored at 0.

pmdarima is not a dependency, so :func:`auto_arima` below is a small re-implementation of its
default search: ``d`` by repeated KPSS tests (level stationarity, 5%, short lag truncation, at
most 2), then Hyndman-Khandakar's stepwise search over ``p, q <= 5`` on AIC, starting from
(2, 2), (0, 0), (1, 0), (0, 1), with a constant when ``d <= 1``. Two simplifications: the
parameters are fitted by conditional sum of squares (pmdarima: exact likelihood of a state-space
model), and an update refits all points from the current parameters (pmdarima: the same, through
statsmodels). Both change the numbers a little, not what the predictor does. SciPy (optimiser,
linear filter) comes with scikit-learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize  # type: ignore[import-untyped]
from scipy.signal import lfilter  # type: ignore[import-untyped]

FloatArray = npt.NDArray[np.float64]

MIN_POINTS = 5
"""``BasePredictor(minimum_data_points=5)`` of the ARIMA predictor."""
MAX_P = MAX_Q = 5
MAX_D = 2
KPSS_CRITICAL_5PCT = 0.463
"""KPSS level-stationarity critical value at 5% (Kwiatkowski et al. 1992, table 1)."""
MAX_MODELS = 100
MAX_ITER = 50
COEF_BOUND = 1.5
"""Box for the AR and MA coefficients while optimising (the fit is then checked for
stationarity and invertibility)."""
UPDATE_WINDOW = 720
"""Points an update refits on: the last 36 h of 180 s intervals (pmdarima refits all; the cap
keeps a 14-day replay's cost linear)."""


@dataclass(frozen=True, slots=True)
class ArimaFit:
    """An ARIMA(p, d, q) model with or without a constant, fitted by conditional least squares."""

    p: int
    d: int
    q: int
    constant: bool
    params: FloatArray
    """AR coefficients, then MA coefficients, then the mean of the differenced series."""
    aic: float

    @property
    def order(self) -> tuple[int, int, int]:
        return self.p, self.d, self.q


def kpss_statistic(y: FloatArray) -> float:
    """KPSS statistic for level stationarity, Bartlett long-run variance, ``int(3 sqrt(n) / 13)``
    lags (pmdarima's ``KPSSTest`` with ``lshort=True``)."""
    n = y.size
    e = y - y.mean()
    s = np.cumsum(e)
    lags = int(3.0 * math.sqrt(n) / 13.0)
    var = float(e @ e) / n
    for k in range(1, lags + 1):
        var += 2.0 * (1.0 - k / (lags + 1.0)) * float(e[k:] @ e[:-k]) / n
    if var <= 0.0:
        return 0.0
    return float(s @ s) / (n * n * var)


def ndiffs(y: FloatArray) -> int:
    """Differences needed for KPSS stationarity at 5% (pmdarima ``ndiffs``), at most 2."""
    d = 0
    z = y
    while d < MAX_D and z.size > 2 and np.ptp(z) > 0 and kpss_statistic(z) > KPSS_CRITICAL_5PCT:
        d += 1
        z = np.diff(z)
    return d


def _residuals(z: FloatArray, p: int, q: int, constant: bool, x: FloatArray) -> FloatArray:
    """One-step errors of ARMA(p, q) on ``z``, conditional on pre-sample values at the mean and
    errors at zero (every order is scored on the same ``z.size`` errors, so AICs compare)."""
    mu = x[p + q] if constant else 0.0
    ar = np.concatenate(([1.0], -x[:p]))
    ma = np.concatenate(([1.0], x[p : p + q]))
    return np.asarray(lfilter(ar, ma, z - mu), dtype=np.float64)


def _admissible(x: FloatArray, p: int, q: int) -> bool:
    """Stationary AR and invertible MA polynomials (roots outside the unit circle)."""
    for coefs, sign in ((x[:p], -1.0), (x[p : p + q], 1.0)):
        if coefs.size and np.any(
            np.abs(np.roots(np.concatenate(([1.0], sign * coefs))[::-1])) <= 1.0001
        ):
            return False
    return True


def fit_arima(
    y: FloatArray, p: int, d: int, q: int, constant: bool, start: FloatArray | None = None
) -> ArimaFit | None:
    """Fit ARIMA(p, d, q) to ``y`` by conditional sum of squares; None when the series is too
    short for the order or the optimum is not stationary and invertible."""
    z = np.diff(y, d) if d else y
    k = p + q + int(constant)
    n = z.size
    if n <= p + k + 1:
        return None
    x0 = np.zeros(k) if start is None else start.copy()
    if constant and start is None:
        x0[-1] = float(z.mean())

    def css(x: FloatArray) -> float:
        with np.errstate(all="ignore"):
            e = _residuals(z, p, q, constant, x)
            value = float(e @ e)
        return value if math.isfinite(value) else 1e300

    if constant and p + q == 0:
        x = np.asarray([z.mean()], dtype=np.float64)
    elif k:
        bounds = [(-COEF_BOUND, COEF_BOUND)] * (p + q) + [(None, None)] * int(constant)
        res = minimize(css, x0, method="L-BFGS-B", bounds=bounds, options={"maxiter": MAX_ITER})
        x = np.asarray(res.x, dtype=np.float64)
    else:
        x = x0
    if not np.all(np.isfinite(x)) or not _admissible(x, p, q):
        return None
    sigma2 = css(x) / n
    if not sigma2 > 0.0:
        sigma2 = 1e-12
    loglik = -0.5 * n * (math.log(2.0 * math.pi * sigma2) + 1.0)
    return ArimaFit(p, d, q, constant, x, -2.0 * loglik + 2.0 * (k + 1))


def auto_arima(y: FloatArray) -> ArimaFit | None:
    """pmdarima's default ``auto_arima`` (non-seasonal, stepwise, AIC), by least squares."""
    d = ndiffs(y)
    tried: dict[tuple[int, int, bool], ArimaFit | None] = {}

    def get(p: int, q: int, c: bool) -> ArimaFit | None:
        key = (p, q, c)
        if key not in tried and 0 <= p <= MAX_P and 0 <= q <= MAX_Q and len(tried) < MAX_MODELS:
            tried[key] = fit_arima(y, p, d, q, c)
        return tried.get(key)

    with_constant = d <= 1
    starts = [(2, 2, with_constant), (0, 0, with_constant), (1, 0, with_constant)]
    starts += [(0, 1, with_constant)] + ([(0, 0, False)] if with_constant else [])
    fits = [f for f in (get(*s) for s in starts) if f is not None]
    if not fits:
        return None
    best = min(fits, key=lambda f: f.aic)
    improved = True
    while improved:
        improved = False
        p, q, c = best.p, best.q, best.constant
        moves = [(p - 1, q, c), (p + 1, q, c), (p, q - 1, c), (p, q + 1, c), (p - 1, q - 1, c),
                 (p + 1, q + 1, c), (p - 1, q + 1, c), (p + 1, q - 1, c)]  # fmt: skip
        if d <= 1:
            moves.append((p, q, not c))
        for move in moves:
            fit = get(*move)
            if fit is not None and fit.aic < best.aic - 1e-9:
                best, improved = fit, True
                break
    return best


def forecast_one(fit: ArimaFit, y: FloatArray) -> float:
    """The one-step-ahead forecast of ``y`` under ``fit``."""
    p, d, q = fit.order
    z = np.diff(y, d) if d else y
    x = fit.params
    mu = x[p + q] if fit.constant else 0.0
    e = _residuals(z, p, q, fit.constant, x)
    nxt = mu
    for i in range(p):
        nxt += x[i] * (z[-1 - i] - mu)
    for j in range(q):
        nxt += x[p + j] * e[-1 - j]
    # undo the differences: y[n+1] = z[n+1] + sum_k (-1)^(k+1) C(d, k) y[n+1-k]
    for k in range(1, d + 1):
        nxt += (-1) ** (k + 1) * math.comb(d, k) * y[-k]
    return float(nxt)


class ArimaPredictor:
    """Dynamo's ``ARIMAPredictor``: add one point per interval, predict the next."""

    def __init__(self) -> None:
        self.points: list[float] = []
        self.fit: ArimaFit | None = None
        self.log1p = False
        self._seen_nonzero = False
        self._varied = False

    def add(self, value: float) -> None:
        """``add_data_point``: NaN counts as 0; zeros before the first non-zero are skipped."""
        if math.isnan(value):
            value = 0.0
        if value == 0.0 and not self._seen_nonzero:
            return
        self._seen_nonzero = self._seen_nonzero or value != 0.0
        value = max(0.0, float(value))
        self._varied = self._varied or (bool(self.points) and value != self.points[0])
        self.points.append(value)

    def last(self) -> float:
        return self.points[-1] if self.points else 0.0

    def predict(self) -> float:
        """``predict_next``: the last point until 5 points that are not all equal, then ARIMA."""
        if len(self.points) < MIN_POINTS:
            return self.last()
        if not self._varied:
            return self.points[0]
        if self.fit is None:
            raw = np.asarray(self.points, dtype=np.float64)
            fit = auto_arima(raw)
            if fit is not None and fit.p == 0 and fit.q == 0:
                log_fit = auto_arima(np.log1p(raw))
                if log_fit is not None:
                    fit, self.log1p = log_fit, True
            if fit is None:
                # pmdarima raises; Dynamo logs the failure and returns the last value
                return self.last()
            self.fit = fit
        else:
            fit = self.fit
            raw = np.asarray(self.points[-UPDATE_WINDOW:], dtype=np.float64)
            updated = fit_arima(self._series(raw), fit.p, fit.d, fit.q, fit.constant, fit.params)
            if updated is not None:
                self.fit = updated
        value = forecast_one(self.fit, self._series(raw))
        return max(0.0, math.expm1(value) if self.log1p else value)

    def _series(self, raw: FloatArray) -> FloatArray:
        return np.log1p(raw) if self.log1p else raw
