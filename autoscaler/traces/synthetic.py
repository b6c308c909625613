"""The embedded default workload: a synthetic trace for ``demo`` that needs no data files.

What it is. Arrivals follow a rate ``mean x diurnal(t) x M(t)`` with short request clusters on
top, and each request draws its (prompt, output) lengths jointly from a mixture of bivariate
lognormals. Every shape parameter was fitted to the shared Azure conversation trace
(``traces/azure2023_conv.csv``, one hour, 19,366 requests) by
:mod:`autoscaler.traces.fitting`; only the mean rate and the duration are chosen for the demo.
``docs/synthetic-workload.md`` has the numbers and the checks.

* ``diurnal(t) = 1 - A cos(2 pi t / P)``: a day's rise and fall compressed into ``P`` (by default
  the whole run), starting at the trough. ``A`` is the Azure hour's own rise and fall (its
  least-squares sinusoid over the span has its trough at the start, as here).
* ``M(t) = exp(X(t) - s^2 / 2)`` with ``X`` an Ornstein-Uhlenbeck process: minute-scale swings of
  the whole service's rate, common to all clients, so their absolute size grows with the rate.
* clusters: each request brings Poisson(``burst_extra``) follow-ups, each an exponential delay
  (mean ``burst_spread_s``) later: sub-second bursts of one client (retries, parallel calls). They
  do *not* grow with the rate, since more traffic means more independent clients.

How the burstiness of one trace should scale to another rate cannot be identified from one trace
at one rate; the split above is an assumption, stated so it can be argued with. At the Azure
trace's own mean rate the generator reproduces its 1 s dispersion (1.39); at the default
20 req/s the same shapes give a larger one (~2.2), as the Azure trace rate-scaled to 20 req/s
has (~2.4).

What it does not capture: multi-turn sessions and prefix reuse, the exact repeated lengths of
templated requests (the trace has spikes such as 419 prompts of exactly 181 tokens), weekly
patterns, and any dependence of lengths on the time of day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from autoscaler.errors import InputError
from autoscaler.traces.records import Trace

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FORMAT = "synthetic"


@dataclass(frozen=True, slots=True)
class LengthMixture:
    """Joint distribution of (prompt, output) token counts: a mixture of bivariate lognormals,
    rounded and clipped to the observed ranges.

    Stored as tuples (not arrays) so a module-level instance is truly immutable.
    ``log_covariances`` holds ``(var log prompt, cov, var log output)`` per component.
    """

    weights: tuple[float, ...]
    log_means: tuple[tuple[float, float], ...]
    log_covariances: tuple[tuple[float, float, float], ...]
    prompt_range: tuple[int, int]
    output_range: tuple[int, int]

    def __post_init__(self) -> None:
        k = len(self.weights)
        if k == 0 or len(self.log_means) != k or len(self.log_covariances) != k:
            raise InputError(
                "length mixture: weights, means and covariances must have one entry per component"
            )
        if any(w < 0 for w in self.weights) or not math.isclose(
            sum(self.weights), 1.0, abs_tol=1e-3
        ):
            raise InputError(
                f"length mixture: weights must be >= 0 and sum to 1, got {self.weights}"
            )
        for a, b, d in self.log_covariances:
            if a <= 0 or d <= 0 or a * d - b * b <= 0:
                raise InputError(f"length mixture: covariance {(a, b, d)} is not positive definite")
        for name, (lo, hi) in (("prompt", self.prompt_range), ("output", self.output_range)):
            if not 0 <= lo <= hi:
                raise InputError(f"length mixture: {name} range {(lo, hi)} is not 0 <= low <= high")

    def sample(self, rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
        """Draw ``n`` (prompt, output) pairs."""
        weights = np.asarray(self.weights, dtype=np.float64)
        comp = rng.choice(weights.size, size=n, p=weights / weights.sum())
        means = np.asarray(self.log_means, dtype=np.float64)[comp]
        a, b, d = np.asarray(self.log_covariances, dtype=np.float64)[comp].T
        # Cholesky factor of [[a, b], [b, d]] per request
        l11 = np.sqrt(a)
        l21 = b / l11
        l22 = np.sqrt(d - l21 * l21)
        z = rng.standard_normal((2, n))
        log_prompt = means[:, 0] + l11 * z[0]
        log_output = means[:, 1] + l21 * z[0] + l22 * z[1]
        prompt = np.clip(np.rint(np.exp(log_prompt)), *self.prompt_range).astype(np.int64)
        output = np.clip(np.rint(np.exp(log_output)), *self.output_range).astype(np.int64)
        return prompt, output


# Fitted by autoscaler.traces.fitting.fit_lengths on traces/azure2023_conv.csv (19,366 rows):
# 8-component EM on (log ContextTokens, log GeneratedTokens), k-means++ starts from seed 0, best
# log-likelihood of 10 restarts; clip ranges are the trace's min/max; 4 significant digits.
# Near-zero variances are real: they sit on templated spikes (e.g. prompts of ~4,100 tokens, the
# old 4k context limit; ~400-token prompts answered with ~90, ~1,070-token ones with ~400).
# Re-derive with `python -m autoscaler.traces.fitting`; tests/test_synthetic.py checks that a
# fresh fit still agrees.
AZURE_CONV_LENGTHS = LengthMixture(
    weights=(0.02605, 0.09815, 0.02048, 0.2422, 0.2768, 0.08756, 0.1789, 0.06982),
    log_means=(
        (3.861, 4.991),
        (5.294, 4.959),
        (5.331, 2.746),
        (5.988, 4.538),
        (6.973, 6.006),
        (7.077, 5.84),
        (7.394, 4.425),
        (8.315, 4.026),
    ),
    log_covariances=(
        (1.369, 0.1422, 0.1339),
        (0.007902, -0.01078, 0.1806),
        (0.2537, 0.03967, 0.04016),
        (0.001642, 0.004347, 0.0646),
        (0.004322, -5.152e-05, 0.002384),
        (0.01218, -0.05051, 0.3188),
        (0.3592, 0.004588, 0.1747),
        (6.632e-06, 0.000101, 0.2527),
    ),
    prompt_range=(2, 14050),
    output_range=(7, 1000),
)

# Fitted by autoscaler.traces.fitting.fit_arrivals on traces/azure2023_conv.csv: the hour's
# least-squares sinusoid (period = span) and a two-time-scale fit of its variance-time curve
# (windows 0.2-300 s), 3 significant digits. The trace's own mean rate is 5.53 req/s and its
# fitted trough is at 0.3% of the span, i.e. at the start, where generate() puts it too.
AZURE_DIURNAL_AMPLITUDE = 0.267
AZURE_SLOW_VARIANCE = 0.0154
AZURE_SLOW_TIMESCALE_S = 61.9
AZURE_BURST_EXTRA = 0.0748
AZURE_BURST_SPREAD_S = 0.324


@dataclass(frozen=True, slots=True)
class SyntheticWorkload:
    """Parameters of :func:`generate`; the defaults are the demo's workload.

    The default mean rate, 20 req/s (trough ~15, peak ~25 before the slow swings), keeps a 70B
    TP4 H100 fleet between roughly 5 and 12 replicas at ``rate_scale`` 1: an Azure-like request
    is ~1,370 prompt + output tokens and such a replica serves very roughly 3,000-8,000 tokens/s
    at the SLO (the simulator's oracle runs 11 at the peak minute of seed 0). 45 minutes keep
    ``demo`` quick while a rise and fall still takes longer than a replica's ~4 min cold start.
    """

    duration_s: float = 2700.0
    mean_rate_rps: float = 20.0
    diurnal_amplitude: float = AZURE_DIURNAL_AMPLITUDE
    diurnal_period_s: float | None = None
    """Length of one compressed "day"; None means the whole run (one rise and fall)."""
    slow_variance: float = AZURE_SLOW_VARIANCE
    slow_timescale_s: float = AZURE_SLOW_TIMESCALE_S
    burst_extra: float = AZURE_BURST_EXTRA
    burst_spread_s: float = AZURE_BURST_SPREAD_S
    lengths: LengthMixture = field(default=AZURE_CONV_LENGTHS)

    def __post_init__(self) -> None:
        checks = (
            ("duration_s", self.duration_s, self.duration_s > 0),
            ("mean_rate_rps", self.mean_rate_rps, self.mean_rate_rps > 0),
            ("diurnal_amplitude", self.diurnal_amplitude, 0 <= self.diurnal_amplitude < 1),
            ("slow_variance", self.slow_variance, self.slow_variance >= 0),
            ("slow_timescale_s", self.slow_timescale_s, self.slow_timescale_s > 0),
            ("burst_extra", self.burst_extra, self.burst_extra >= 0),
            ("burst_spread_s", self.burst_spread_s, self.burst_spread_s > 0),
        )
        for name, value, ok in checks:
            if not (ok and math.isfinite(value)):
                raise InputError(f"synthetic workload: {name} = {value} is out of range")
        if self.diurnal_period_s is not None and not self.diurnal_period_s > 0:
            raise InputError(
                f"synthetic workload: diurnal_period_s = {self.diurnal_period_s} must be > 0"
            )

    @property
    def period_s(self) -> float:
        """The compressed day's length actually used."""
        return self.duration_s if self.diurnal_period_s is None else self.diurnal_period_s

    def diurnal_rate(self, t_s: npt.ArrayLike) -> FloatArray:
        """The mean rate times the diurnal shape at ``t_s`` (no noise, no clusters)."""
        t = np.asarray(t_s, dtype=np.float64)
        shape = 1.0 - self.diurnal_amplitude * np.cos(2.0 * math.pi * t / self.period_s)
        return np.asarray(self.mean_rate_rps * shape, dtype=np.float64)


DEFAULT_WORKLOAD = SyntheticWorkload()

_STEP_S = 1.0  # grid of the rate modulation; well below the 65 s slow time scale


def generate(params: SyntheticWorkload, seed: int = 0) -> Trace:
    """Draw one trace from ``params``; the same seed gives the same trace.

    Arrivals are exact for the piecewise-constant rate on a 1 s grid: Poisson counts per step,
    uniform positions within it, then each arrival's cluster follow-ups. Follow-ups that would
    land after ``duration_s`` are dropped (a loss of ~``burst_spread_s x rate`` requests).
    Arrival times are seconds from the start of the run (the first request is near, not at, 0).
    """
    rng = np.random.default_rng(seed)
    n_steps = math.ceil(params.duration_s / _STEP_S)
    starts = np.arange(n_steps, dtype=np.float64) * _STEP_S
    widths = np.minimum(_STEP_S, params.duration_s - starts)

    modulation = _log_ou(rng, n_steps, params.slow_variance, params.slow_timescale_s)
    # clusters add burst_extra follow-ups per seed request: thin seeds so the mean rate holds
    seed_rate = params.diurnal_rate(starts + widths / 2) * modulation / (1.0 + params.burst_extra)
    counts = rng.poisson(seed_rate * widths)
    seeds = np.repeat(starts, counts) + rng.uniform(0.0, 1.0, counts.sum()) * np.repeat(
        widths, counts
    )
    follow = rng.poisson(params.burst_extra, seeds.size)
    followers = np.repeat(seeds, follow) + rng.exponential(params.burst_spread_s, follow.sum())
    arrivals = np.concatenate([seeds, followers[followers < params.duration_s]])
    arrivals.sort(kind="stable")

    prompt, output = params.lengths.sample(rng, arrivals.size)
    return Trace(
        path=f"synthetic(seed={seed})",
        format=FORMAT,
        arrival_s=arrivals,
        prompt_tokens=prompt,
        output_tokens=output,
        duration_s=float(params.duration_s),
    )


def _log_ou(rng: np.random.Generator, n: int, variance: float, timescale_s: float) -> FloatArray:
    """``exp(X - s^2/2)`` for a stationary OU process ``X`` sampled every step: mean 1, variance
    ``variance``, correlation ``exp(-lag / timescale_s)`` (exact AR(1) update)."""
    if variance == 0.0:
        return np.ones(n, dtype=np.float64)
    s2 = math.log1p(variance)
    a = math.exp(-_STEP_S / timescale_s)
    shocks = rng.standard_normal(n) * math.sqrt(s2 * (1.0 - a * a))
    shocks[0] = rng.standard_normal() * math.sqrt(s2)
    x = np.empty(n, dtype=np.float64)
    level = 0.0
    for i, shock in enumerate(shocks.tolist()):
        level = a * level + shock
        x[i] = level
    return np.asarray(np.exp(x - s2 / 2.0), dtype=np.float64)
