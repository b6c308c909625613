"""Re-derive the synthetic workload's constants from a real trace (by default the shared
``traces/azure2023_conv.csv``).

:mod:`autoscaler.traces.synthetic` must run with no data files (``demo`` on a laptop), so its
parameters are constants in the code. This module is how they were obtained and how a test checks
that they still match the data: ``python -m autoscaler.traces.fitting [TRACE]`` prints them.

Two fits, both plain numpy and deterministic for a seed:

* **Lengths** (:func:`fit_lengths`): a mixture of bivariate Gaussians on ``(log prompt, log
  output)``, i.e. of bivariate lognormals, by expectation-maximisation with k-means++ starts and a
  restarts. One lognormal does not fit: the Azure conversation trace is a blend of request
  classes (prompts near 1,000 tokens answered with about 400, shorter and longer prompts with
  about 100), so its marginals are multi-modal and prompt and output lengths are dependent.
  Eight components reproduce the mean, p50 and p90 of both within ~5% (five leave the prompt p99
  40% or more too high); EM itself is plain, the number of components is the only choice.
* **Arrivals** (:func:`fit_arrivals`): the rate is modelled as ``mean x diurnal(t) x M(t)`` plus
  short request clusters. ``diurnal`` is the fundamental of the trace's span (a least-squares
  sinusoid whose period is the whole span: the hour's one rise and fall); what is left is read
  off the variance-time curve (excess variance of detrended counts over windows of 0.2 to 300 s),
  fitted as the sum of two exponentially correlated parts: a slow one (minutes), which becomes a
  log-Ornstein-Uhlenbeck modulation ``M``, and a fast one (tenths of a second), which becomes
  Neyman-Scott clusters (each request brings Poisson(``burst_extra``) follow-ups, exponentially
  spread). Both give the same count variance as an exponential covariance, which is why the
  variance-time curve identifies them (see :func:`excess_variance_model`).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from autoscaler.errors import InputError
from autoscaler.traces.records import Trace
from autoscaler.traces.synthetic import LengthMixture

FloatArray = npt.NDArray[np.float64]

VARIANCE_WINDOWS_S: tuple[float, ...] = (0.2, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300)
"""Count windows of the variance-time curve: from below the fast clusters to minutes."""
BIN_S = 0.1
"""Resolution of the detrending (counts are binned at 0.1 s, then summed into windows)."""


@dataclass(frozen=True, slots=True)
class ArrivalFit:
    """What :func:`fit_arrivals` reads off a trace's arrival times (all rates in requests/s)."""

    mean_rate_rps: float
    duration_s: float
    diurnal_amplitude: float
    """Relative amplitude of the span-long sinusoid: rate ~ mean x (1 + amplitude x cos(...))."""
    diurnal_trough_fraction: float
    """Where the fitted sinusoid has its minimum, as a fraction of the span (0 = at the start)."""
    slow_variance: float
    """Variance of the slow relative rate modulation M (its CV squared)."""
    slow_timescale_s: float
    """Correlation time of M."""
    burst_extra: float
    """Mean number of follow-up requests each request brings (cluster size 1 + Poisson(this))."""
    burst_spread_s: float
    """Mean delay of a follow-up request after the one that brought it."""
    dispersion_1s: float
    """Variance / mean of 1 s counts, as traces/README.md defines it (for comparison)."""


def dispersion(arrival_s: npt.ArrayLike, window_s: float = 1.0) -> float:
    """Variance / mean of the counts in fixed windows from the first arrival, empty windows
    included (traces/README.md's definition; 1.0 for a Poisson process)."""
    arr = np.asarray(arrival_s, dtype=np.float64)
    if arr.size < 2:
        return float("nan")
    counts = np.bincount(((arr - arr[0]) // window_s).astype(np.int64))
    return float(counts.var() / counts.mean())


def excess_variance_model(window_s: FloatArray, timescale_s: float) -> FloatArray:
    """Count variance in a window of length ``w`` contributed by a unit-variance relative rate
    modulation with exponential correlation ``exp(-|lag| / tau)``, per squared mean rate:
    ``2 tau^2 (w / tau - 1 + exp(-w / tau))``.

    A cluster process whose pair distances are exponential with mean ``tau`` has the same shape,
    which is what lets :func:`fit_arrivals` translate the fast part into clusters."""
    ratio = window_s / timescale_s
    return np.asarray(2.0 * timescale_s**2 * (ratio - 1.0 + np.exp(-ratio)), dtype=np.float64)


def fit_arrivals(arrival_s: npt.ArrayLike) -> ArrivalFit:
    """Fit the arrival model described in the module docstring to sorted arrival times."""
    arr = np.sort(np.asarray(arrival_s, dtype=np.float64))
    if arr.size < 100:
        raise InputError(f"need at least 100 arrivals to fit, got {arr.size}")
    arr = arr - arr[0]
    span = float(arr[-1])
    n_bins = math.ceil(span / BIN_S)
    counts = np.bincount(np.minimum((arr / BIN_S).astype(np.int64), n_bins - 1), minlength=n_bins)
    centres = (np.arange(n_bins) + 0.5) * BIN_S
    omega = 2.0 * math.pi / span
    design = np.column_stack([np.ones(n_bins), np.sin(omega * centres), np.cos(omega * centres)])
    coef = np.linalg.lstsq(design, counts.astype(np.float64), rcond=None)[0]
    expected = design @ coef
    amplitude = float(math.hypot(coef[1], coef[2]) / coef[0])
    # a + b sin + c cos = a + R cos(omega t - phi) with phi = atan2(b, c); minimum at phi + pi
    trough = ((math.atan2(coef[1], coef[2]) + math.pi) / (2.0 * math.pi)) % 1.0
    mean_rate = arr.size / span

    windows = np.asarray(VARIANCE_WINDOWS_S, dtype=np.float64)
    excess = np.empty_like(windows)
    for i, w in enumerate(windows):
        k = round(w / BIN_S)
        m = n_bins // k
        got = counts[: m * k].reshape(m, k).sum(axis=1)
        want = expected[: m * k].reshape(m, k).sum(axis=1)
        excess[i] = (np.mean((got - want) ** 2) - np.mean(want)) / mean_rate**2
    v_fast, tau_fast, v_slow, tau_slow = _two_timescales(windows, excess, mean_rate)

    # Neyman-Scott: (2 mu + mu^2) / (1 + mu) = 2 * rate * v * tau (same pair-count variance)
    x = 2.0 * mean_rate * v_fast * tau_fast
    burst_extra = (-(2.0 - x) + math.sqrt((2.0 - x) ** 2 + 4.0 * x)) / 2.0
    return ArrivalFit(
        mean_rate_rps=mean_rate,
        duration_s=span,
        diurnal_amplitude=amplitude,
        diurnal_trough_fraction=trough,
        slow_variance=v_slow,
        slow_timescale_s=tau_slow,
        burst_extra=burst_extra,
        burst_spread_s=tau_fast,
        dispersion_1s=dispersion(arr),
    )


def _two_timescales(
    windows: FloatArray, excess: FloatArray, mean_rate: float
) -> tuple[float, float, float, float]:
    """Least squares of ``excess`` by ``v_f g(w, tau_f) + v_s g(w, tau_s)`` with ``v >= 0``: a
    grid over the two time scales, the two variances solved exactly for each pair.

    Errors are relative to the observed excess (it spans five decades from 0.2 s to 300 s), but
    never to less than 2% of the Poisson variance ``w / rate``, so a trace that is Poisson at
    some scale (excess near 0 or negative, as Mooncake's synthetic arrivals) is fitted as such
    instead of dividing by noise.
    """
    scale = np.maximum(excess, 0.02 * windows / mean_rate)
    target = excess / scale
    fast_grid = np.geomspace(0.05, 30.0, 90)
    slow_grid = np.geomspace(5.0, 3000.0, 90)
    best = (float(np.sum(target**2)), 0.0, float(fast_grid[0]), 0.0, float(slow_grid[-1]))
    for tau_f in fast_grid:
        g_fast = excess_variance_model(windows, float(tau_f)) / scale
        for tau_s in slow_grid[slow_grid > 3.0 * tau_f]:
            g_slow = excess_variance_model(windows, float(tau_s)) / scale
            for v_f, v_s in _nonnegative_pair(g_fast, g_slow, target):
                err = float(np.sum((v_f * g_fast + v_s * g_slow - target) ** 2))
                if err < best[0]:
                    best = (err, v_f, float(tau_f), v_s, float(tau_s))
    return best[1], best[2], best[3], best[4]


def _nonnegative_pair(a: FloatArray, b: FloatArray, y: FloatArray) -> list[tuple[float, float]]:
    """Candidate non-negative least-squares solutions of ``y ~ u a + v b``: the unconstrained one
    when feasible, else each one-term fit (the optimum of a 2-variable NNLS is among these)."""
    u, v = np.linalg.lstsq(np.column_stack([a, b]), y, rcond=None)[0]
    if u >= 0 and v >= 0:
        return [(float(u), float(v))]
    return [
        (max(float(a @ y / (a @ a)), 0.0), 0.0),
        (0.0, max(float(b @ y / (b @ b)), 0.0)),
    ]


def fit_lengths(
    prompt_tokens: npt.ArrayLike,
    output_tokens: npt.ArrayLike,
    *,
    components: int = 8,
    restarts: int = 10,
    seed: int = 0,
    max_iter: int = 500,
    tol: float = 1e-7,
) -> LengthMixture:
    """Fit a ``components``-part mixture of bivariate lognormals to (prompt, output) lengths.

    EM on the logs (lengths below 1 are raised to 1 first), k-means++ starts from a seeded
    generator, best log-likelihood of ``restarts``; components are ordered by mean log prompt so
    two fits compare element by element. The clip ranges are the observed minima and maxima.
    """
    prompt = np.asarray(prompt_tokens, dtype=np.int64)
    output = np.asarray(output_tokens, dtype=np.int64)
    if prompt.size < 10 * components:
        raise InputError(
            f"need at least {10 * components} requests to fit {components} components, "
            f"got {prompt.size}"
        )
    data = _log_lengths(prompt, output)
    centre = data.mean(axis=0)  # EM on centred logs: smaller numbers in x^2 - mean^2
    data = data - centre
    rng = np.random.default_rng(seed)
    best: tuple[float, FloatArray, FloatArray, FloatArray] | None = None
    for _ in range(restarts):
        result = _em(data, _kmeans_pp(data, components, rng), max_iter, tol)
        if best is None or result[0] > best[0]:
            best = result
    assert best is not None
    _, weights, means, covs = best
    means = means + centre
    order = np.lexsort((means[:, 1], means[:, 0]))
    return LengthMixture(
        weights=tuple(float(w) for w in weights[order]),
        log_means=tuple((float(m[0]), float(m[1])) for m in means[order]),
        log_covariances=tuple(
            (float(c[0, 0]), float(c[0, 1]), float(c[1, 1])) for c in covs[order]
        ),
        prompt_range=(int(prompt.min()), int(prompt.max())),
        output_range=(int(output.min()), int(output.max())),
    )


_REG = 1e-6  # added to covariance diagonals so a component on one repeated value stays proper


def _kmeans_pp(data: FloatArray, k: int, rng: np.random.Generator) -> FloatArray:
    centres = [data[rng.integers(data.shape[0])]]
    for _ in range(1, k):
        d2 = np.min([np.sum((data - c) ** 2, axis=1) for c in centres], axis=0)
        centres.append(data[rng.choice(data.shape[0], p=d2 / d2.sum())])
    return np.asarray(centres, dtype=np.float64)


def _em(
    data: FloatArray, means: FloatArray, max_iter: int, tol: float
) -> tuple[float, FloatArray, FloatArray, FloatArray]:
    """EM for a 2-D Gaussian mixture, written with sufficient statistics so both steps are one
    matrix product each (about 1 ms per iteration on the 19k-row Azure trace)."""
    n, k = data.shape[0], means.shape[0]
    x, y = data[:, 0], data[:, 1]
    # x^2, xy, y^2, x, y, 1: log densities are linear in these, and so are the M-step sums
    feats = np.column_stack([x * x, x * y, y * y, x, y, np.ones(n)])
    weights = np.full(k, 1.0 / k)
    covs = np.repeat(np.cov(data.T)[None, :, :], k, axis=0)
    previous = -np.inf
    loglik = -np.inf
    for _ in range(max_iter):
        log_dens = feats @ _quadratic_form(weights, means, covs)
        top = log_dens.max(axis=1)
        resp = np.exp(log_dens - top[:, None])
        total = resp.sum(axis=1)
        loglik = float(np.sum(top + np.log(total)))
        resp /= total[:, None]
        sums = resp.T @ feats[:, :5]
        mass = resp.sum(axis=0) + 1e-12
        weights = mass / n
        means = sums[:, 3:5] / mass[:, None]
        second = sums[:, 0:3] / mass[:, None]
        covs = np.empty((k, 2, 2))
        covs[:, 0, 0] = second[:, 0] - means[:, 0] ** 2 + _REG
        covs[:, 0, 1] = covs[:, 1, 0] = second[:, 1] - means[:, 0] * means[:, 1]
        covs[:, 1, 1] = second[:, 2] - means[:, 1] ** 2 + _REG
        if loglik - previous < tol * n:
            break
        previous = loglik
    return loglik, weights, means, covs


def _quadratic_form(weights: FloatArray, means: FloatArray, covs: FloatArray) -> FloatArray:
    """Coefficients (6 x k) on ``[x^2, xy, y^2, x, y, 1]`` of ``log(w_j N(mean_j, cov_j))``."""
    a, b, d = covs[:, 0, 0], covs[:, 0, 1], covs[:, 1, 1]
    det = a * d - b * b
    p11, p12, p22 = d / det, -b / det, a / det  # precision matrix
    mx, my = means[:, 0], means[:, 1]
    const = (
        np.log(weights)
        - 0.5 * np.log(det)
        - math.log(2.0 * math.pi)
        - 0.5 * (p11 * mx * mx + 2.0 * p12 * mx * my + p22 * my * my)
    )
    return np.asarray(
        np.stack(
            [
                -0.5 * p11,
                -p12,
                -0.5 * p22,
                p11 * mx + p12 * my,
                p12 * mx + p22 * my,
                const,
            ]
        ),
        dtype=np.float64,
    )


def mixture_log_likelihood(
    mixture: LengthMixture, prompt_tokens: npt.ArrayLike, output_tokens: npt.ArrayLike
) -> float:
    """Log-likelihood of (log) lengths under ``mixture`` (ignoring rounding and clipping); the
    criterion :func:`fit_lengths` maximises, exposed so fits can be compared."""
    data = _log_lengths(prompt_tokens, output_tokens)
    feats = np.column_stack(
        [
            data[:, 0] ** 2,
            data[:, 0] * data[:, 1],
            data[:, 1] ** 2,
            data[:, 0],
            data[:, 1],
            np.ones(data.shape[0]),
        ]
    )
    covs = np.array([[[a, b], [b, d]] for a, b, d in mixture.log_covariances], dtype=np.float64)
    log_dens = feats @ _quadratic_form(
        np.asarray(mixture.weights, dtype=np.float64),
        np.asarray(mixture.log_means, dtype=np.float64),
        covs,
    )
    top = log_dens.max(axis=1)
    return float(np.sum(top + np.log(np.exp(log_dens - top[:, None]).sum(axis=1))))


def _log_lengths(prompt_tokens: npt.ArrayLike, output_tokens: npt.ArrayLike) -> FloatArray:
    prompt = np.asarray(prompt_tokens, dtype=np.float64)
    output = np.asarray(output_tokens, dtype=np.float64)
    return np.asarray(np.log(np.maximum(np.column_stack([prompt, output]), 1.0)), dtype=np.float64)


def fit_trace(trace: Trace) -> tuple[LengthMixture, ArrivalFit]:
    """Both fits on one trace."""
    return (
        fit_lengths(trace.prompt_tokens, trace.output_tokens),
        fit_arrivals(trace.arrival_s),
    )


def format_constants(lengths: LengthMixture, arrivals: ArrivalFit) -> str:
    """The fit as Python source, in the layout of the constants in :mod:`.synthetic`: lengths to
    4 significant digits (some log variances are ~1e-5, so fixed decimals would zero them),
    arrival parameters to 3."""

    def g4(x: float) -> str:
        return f"{x:.4g}"

    lines = ["AZURE_CONV_LENGTHS = LengthMixture("]
    lines.append(f"    weights=({', '.join(g4(w) for w in lengths.weights)}),")
    lines.append("    log_means=(")
    lines += [f"        ({g4(a)}, {g4(b)})," for a, b in lengths.log_means]
    lines.append("    ),")
    lines.append("    log_covariances=(")
    lines += [f"        ({g4(a)}, {g4(b)}, {g4(d)})," for a, b, d in lengths.log_covariances]
    lines.append("    ),")
    lines.append(f"    prompt_range={lengths.prompt_range},")
    lines.append(f"    output_range={lengths.output_range},")
    lines.append(")")
    lines.append(f"AZURE_DIURNAL_AMPLITUDE = {arrivals.diurnal_amplitude:.3g}")
    lines.append(f"AZURE_SLOW_VARIANCE = {arrivals.slow_variance:.3g}")
    lines.append(f"AZURE_SLOW_TIMESCALE_S = {arrivals.slow_timescale_s:.3g}")
    lines.append(f"AZURE_BURST_EXTRA = {arrivals.burst_extra:.3g}")
    lines.append(f"AZURE_BURST_SPREAD_S = {arrivals.burst_spread_s:.3g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the fitted constants for a trace (default: the shared Azure conversation trace)."""
    from autoscaler.shared_data import shared_path
    from autoscaler.traces.readers import read_trace

    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else str(shared_path("traces/azure2023_conv.csv"))
    lengths, arrivals = fit_trace(read_trace(path))
    print(f"# fitted from {path}")
    print(format_constants(lengths, arrivals))
    print(f"# {arrivals!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
