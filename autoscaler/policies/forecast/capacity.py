"""The capacity learner of the ``forecast`` policy: per-replica token-work capacity at the SLO."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import isotonic_regression  # type: ignore[import-untyped]


class CapacityLearner:
    """Per-replica token-work capacity at the SLO, learned from what was observed.

    Observations are steady (load per replica, latency) pairs, kept in bins of load (2.5% wide,
    on a log scale around the seed) as exponentially weighted means that fade over ``memory``
    observations (12 h of 15 s ticks), so a changed workload is relearned. Two statistics, the
    first once ``min_evidence`` requests were observed (a 1% tail cannot be estimated from a few
    hundred requests; a p90 can), the second until then and where the engine lacks the
    histograms:

    * **Observed attainment** (``miss``: the share of the window's requests outside the TTFT or
      TPOT budget, read from the histogram buckets by :mod:`autoscaler.core.attainment`), weighted
      by the requests it covers. The SLO's own statistic: the limit is the load where the
      fitted miss share reaches what the attainment target allows (``1 - attainment_target``)
      on top of the misses no capacity removes. Those are the misses that do not fall with load
      (a prompt whose prefill alone outlasts its budget): the fitted share at the lowest load
      observed, credited once the observations span ``1 + trust_margin`` in load (so one narrow
      band of overloaded windows cannot pass for a floor; misses that capacity causes rise
      with load, and the isotonic fit shows the rise).
    * **p90 latency ratios** (the worst observed p90 over its budget: TTFT, queue time, TPOT),
      for engines without the two histograms. ``target_ratio`` is the p90 ratio taken to mark
      the limit: p90 at 75% of its budget. It was read off the simulator on the shared traces
      (TPOT p90 at 0.73 of its budget at C*), and it is wrong where the tail is not the p90's
      shape (issue 17: a replica at 11% busy passes the p90 test while 1.75% of its requests
      miss TPOT behind long prefill chunks); the attainment statistic replaces it where the
      engine exports the histograms.

    An isotonic (monotone) fit of the statistic against load pools noisy windows and cannot
    invent a dip the data do not show; beyond twice the budget (or a miss share of 1) a value
    only says "over", so one overload cannot outweigh hours of steady observations.

    * **Rising above the seed needs evidence.** Provisioning above demand keeps the load per
      replica below capacity, so a load *at* capacity is rarely observed. The capacity probes
      upward by ``probe_step`` per observation while the window is comfortably within the SLO
      (fewer than ``comfortable_share`` of the allowed misses, half by default: the window
      would still be within the target with as many misses again; without histograms: p90
      ratio below ``probe_below``)
      at a load of at least ``probe_near`` x the capacity, never past the fitted limit and never
      beyond ``1 + trust_margin`` x the largest load observed within the target (or the seed,
      whichever is more). The margin must exceed the policy's head-room, or the probe could
      never raise the capacity past the loads the head-room lets it see (a seed 30% low would
      then stay low).
    * **Falling needs no patience, but a fit.** A window over the target at a load of at least
      half the capacity lowers the capacity to the fitted limit at once. The fit includes that
      window: alone (or with only worse windows at lower loads) it puts the limit below the
      load that broke, by at most 20%; pooled with steady windows within the target at that
      load and above, it may leave no limit at all, and then nothing drops (one slow window
      among nine cut the capacity 25% for a whole run before the fit was pooled).
    * Bounded to [``floor``, ``ceiling``] x the seed, so a broken signal cannot run away.
    """

    def __init__(
        self,
        seed: float,
        target_ratio: float = 0.75,
        probe_below: float = 0.55,
        probe_near: float = 0.6,
        probe_step: float = 0.01,
        trust_margin: float = 0.5,
        memory: float = 2880.0,
        floor: float = 0.2,
        ceiling: float = 5.0,
        attainment_target: float = 0.99,
        comfortable_share: float = 0.5,
    ) -> None:
        self.seed = seed
        self.target_ratio = target_ratio
        self.probe_below = probe_below
        self.probe_near = probe_near
        self.probe_step = probe_step
        self.trust_margin = trust_margin
        self.memory = memory
        self.floor = floor
        self.ceiling = ceiling
        self.allowed_miss = max(1.0 - attainment_target, 1e-6)
        self.comfortable_share = comfortable_share
        p = self.allowed_miss
        self.min_evidence = 1.96**2 * (1.0 - p) / (p * 0.5**2)
        """Requests at and above a load before its misses may set a limit: the sample that
        estimates a miss share of ``1 - attainment_target`` within +-50% at 95% confidence
        (binomial: z^2 (1 - p) / (p r^2); 1,521 at 99%). One burst window of a few hundred
        requests (3.5% missed at 441) once cut a capacity to a third, for good."""
        self.capacity_ = seed
        self.limit_ = math.inf
        """Load at which the fitted statistic crosses its target (inf: not seen)."""
        self.trusted_ = seed
        """Largest load observed with the fitted statistic within the target (at least the
        seed)."""
        self.miss_floor_ = 0.0
        """Misses credited as independent of load (see the class docstring)."""
        self.basis_ = "seed"
        """What the capacity was last learned from: ``seed`` (nothing yet), ``attainment`` or
        ``p90 latency`` (shown in the recommendation's reason)."""
        self._log_lo = math.log(max(seed, 1e-9) * floor / 2.0)
        self._step = math.log(1.025)
        n = int(math.ceil((math.log(ceiling * 2.0) - math.log(floor / 2.0)) / self._step)) + 1
        self.centers_ = np.exp(self._log_lo + self._step * (np.arange(n) + 0.5))
        self.weight_ = np.zeros(n)
        self.ratio_ = np.zeros(n)
        self.requests_ = np.zeros(n)
        self.miss_ = np.zeros(n)
        self._dirty = False

    def _bin(self, load: float) -> int:
        i = int((math.log(load) - self._log_lo) / self._step)
        return min(max(i, 0), self.weight_.size - 1)

    def _record(self, load: float, ratio: float) -> None:
        self.weight_ *= 1.0 - 1.0 / self.memory
        i = self._bin(load)
        w = self.weight_[i] + 1.0
        self.ratio_[i] += (min(ratio, 2.0) - self.ratio_[i]) / w
        self.weight_[i] = w
        self._dirty = True

    def _record_miss(self, load: float, miss: float, requests: float) -> None:
        self.requests_ *= 1.0 - 1.0 / self.memory
        i = self._bin(load)
        n = self.requests_[i] + requests
        self.miss_[i] += (min(max(miss, 0.0), 1.0) - self.miss_[i]) * requests / n
        self.requests_[i] = n
        self._dirty = True

    def _fit(self, by_attainment: bool) -> None:
        """Isotonic fit over bins with data; updates ``limit_``, ``trusted_``, ``miss_floor_``."""
        self._dirty = False
        if by_attainment:
            seen = self.requests_ > 0.5
            values, weights = self.miss_[seen], self.requests_[seen]
        else:
            seen = self.weight_ > 0.05
            values, weights = self.ratio_[seen], self.weight_[seen]
        if not seen.any():
            self.limit_, self.trusted_ = math.inf, self.seed
            return
        x = self.centers_[seen]
        # scipy's, which scikit-learn's isotonic_regression calls after validating its input
        # (same result; the validation was 95% of a fit's time, and a steady learner fits every
        # tick: 3.6 s a tick at 10,000 workloads)
        fitted = np.asarray(isotonic_regression(values, weights=weights).x, dtype=float)
        if by_attainment:
            spans = float(x[-1]) >= (1.0 + self.trust_margin) * float(x[0])
            self.miss_floor_ = float(fitted[0]) if spans else 0.0
            target = self.miss_floor_ + self.allowed_miss
        else:
            target = self.target_ratio
        over = np.flatnonzero(fitted > target + 1e-12)
        if by_attainment and over.size and weights[over[0] :].sum() < self.min_evidence:
            over = over[:0]  # not enough requests at those loads yet to say they miss
        if over.size == 0:
            self.limit_ = math.inf
            within = np.flatnonzero(fitted <= target + 1e-12)
            self.trusted_ = max(self.seed, float(x[within[-1]]) if within.size else 0.0)
            return
        k = int(over[0])
        if k == 0:
            # every load seen is over the target: the limit is below the lowest one
            shrink = 0.8 if by_attainment else max(0.8, target / float(fitted[0]))
            self.limit_ = float(x[0]) * shrink
            self.trusted_ = self.seed
            return
        x0, x1, y0, y1 = float(x[k - 1]), float(x[k]), float(fitted[k - 1]), float(fitted[k])
        self.limit_ = x0 + (x1 - x0) * (target - y0) / max(y1 - y0, 1e-12)
        self.trusted_ = max(self.seed, x0)

    def observe(
        self,
        load_per_replica: float,
        latency_ratio: float | None,
        miss: float | None = None,
        requests: float = 0.0,
    ) -> float:
        """Fold in one steady observation and return the capacity.

        ``miss`` is the window's estimated share of requests outside the SLO over ``requests``
        requests (None: the engine's histograms are missing, and ``latency_ratio``, the worst
        observed p90 over its budget, is used instead; None too: nothing is learned).
        """
        if not load_per_replica > 0:
            return self.capacity_
        has_miss = miss is not None and requests > 0 and math.isfinite(miss)
        has_ratio = latency_ratio is not None and math.isfinite(latency_ratio)
        if has_miss:
            assert miss is not None
            self._record_miss(load_per_replica, miss, requests)
        if has_ratio:
            assert latency_ratio is not None
            self._record(load_per_replica, latency_ratio)
        # the SLO's own statistic once enough requests were seen to estimate a 1% tail; the
        # p90s (robust with few requests) until then
        by_attainment = has_miss and float(self.requests_.sum()) >= self.min_evidence
        if by_attainment:
            assert miss is not None
            self.basis_ = "attainment"
            over = miss > self.miss_floor_ + self.allowed_miss
            comfortable = miss < self.miss_floor_ + self.comfortable_share * self.allowed_miss
        elif has_ratio:
            assert latency_ratio is not None
            self.basis_ = "p90 latency"
            over = latency_ratio > self.target_ratio
            comfortable = latency_ratio < self.probe_below
        else:
            return self.capacity_
        near = load_per_replica >= self.probe_near * self.capacity_
        if over and load_per_replica >= 0.5 * self.capacity_:
            # the fit pools this window with every other at similar loads: when they keep the
            # fitted statistic within the target (no finite limit), one bad window is a burst
            # the head-room absorbs, not a smaller replica
            self._fit(by_attainment)
            self.capacity_ = min(self.capacity_, self.limit_)
        elif comfortable and near:
            if self._dirty:
                self._fit(by_attainment)
            bound = min(self.limit_, (1.0 + self.trust_margin) * self.trusted_)
            if self.capacity_ < bound:
                self.capacity_ = min(bound, self.capacity_ * (1.0 + self.probe_step))
        self.capacity_ = min(self.ceiling * self.seed, max(self.floor * self.seed, self.capacity_))
        return self.capacity_
