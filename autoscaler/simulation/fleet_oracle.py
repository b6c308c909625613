"""The fleet oracle: the cheapest clairvoyant per-minute plan that meets the SLO as a fleet.

The single-replica C* (:func:`~autoscaler.simulation.oracle.replica_capacity`) feeds one replica
Poisson arrivals, so it cannot see what a fleet behind a least-work router does with the trace's
own arrivals: long prompts spread over many replicas, bursts inside a minute absorbed by the
others. On a long-context trace a plan of ``ceil(work / C*)`` kept its attainment when every
minute was halved, so "GPU-hours / oracle" flattered every policy there. The fleet oracle fixes
the yardstick (DESIGN.md, "Oracle", revised):

* one fleet capacity C, bisected (on a log scale, starting from C*) so that the per-minute plan
  ``ceil(work / C)``, simulated with zero start time, meets the attainment target on the requests
  that can meet the SLO at all (:func:`~autoscaler.simulation.oracle.feasible_on_idle_replica`);
  ``oracle_gpu_hours`` is that plan's cost;
* ``slo_ceiling``: the share of requests that can meet the SLO on any fleet (the feasible share),
  so a policy's attainment is read against ``min(target, slo_ceiling)``;
* C* stays in the figures as ``replica_capacity``.

Attainment falls as C grows (the plan never gains replicas), up to the router's noise, which a
bisection tolerates. The result is cached on disk per (trace, profile, SLO, weights, tick,
procedure version), because sweeps run the same yardstick for every policy and seed: pass
``cache_dir=None`` to compute without a cache (tests).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoscaler.core.slo import SloSpec
from autoscaler.perf.model import PerfProfile
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.oracle import (
    INSTANT,
    OraclePlan,
    PlanPolicy,
    feasible_on_idle_replica,
    oracle_plan,
)
from autoscaler.simulation.results import requests_met
from autoscaler.traces.records import Trace

log = logging.getLogger(__name__)

PROCEDURE_VERSION = 1
"""Bumped whenever the bisection changes, so cached results of an older procedure are not read."""
SEARCH_FACTORS = 6
"""Doublings (or halvings) of C* tried to bracket C: 64x either way covers every trace seen."""
ITERATIONS = 7
"""Log-scale bisection steps inside a factor-2 bracket: C to within 2^(1/128), about 0.5%."""


@dataclass(frozen=True, slots=True)
class FleetOracle:
    """The fleet yardstick of one trace (one seed)."""

    plan: OraclePlan
    """The per-minute plan at the fleet capacity C (``plan.capacity``) and its GPU-hours."""
    replica_capacity: float
    """C*, the single-replica capacity the search starts from."""
    attainment_feasible: float
    """The plan's simulated attainment on the feasible requests (>= the target when met)."""
    slo_ceiling: float
    """Share of all requests that can meet the SLO on any fleet."""
    target_met: bool
    """False when even C* / 64 misses the target (the plan is then that most generous one)."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/llm-autoscaler/fleet-oracle`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llm-autoscaler" / "fleet-oracle"


def cache_key(
    trace: Trace, profile: PerfProfile, slo: SloSpec, weights: tuple[float, float], tick_s: float
) -> str:
    """A digest of everything the bisection's answer depends on."""
    digest = hashlib.sha256()
    for array in (trace.arrival_s, trace.prompt_tokens, trace.output_tokens):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(
        repr((trace.duration_s, profile, slo, weights, tick_s, PROCEDURE_VERSION)).encode()
    )
    return digest.hexdigest()[:32]


def fleet_oracle(
    trace: Trace,
    profile: PerfProfile,
    slo: SloSpec,
    weights: tuple[float, float],
    *,
    replica_capacity: float,
    tick_s: float = 15.0,
    cache_dir: Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> FleetOracle:
    """Bisect the fleet capacity C (or read it from the cache); see the module docstring."""
    feasible = feasible_on_idle_replica(trace, profile, slo)
    ceiling = float(feasible.mean()) if trace.requests else 1.0
    path = None
    if cache_dir is not None:
        path = cache_dir / f"{cache_key(trace, profile, slo, weights, tick_s)}.json"
    found = _read_cache(path)
    if found is None:
        steps = 2 * SEARCH_FACTORS + ITERATIONS
        done = 0

        def attainment_at(capacity: float) -> float:
            nonlocal done
            plan = oracle_plan(trace, capacity, weights, profile.tp)
            config = SimConfig(
                max_replicas=max(plan.replicas_per_minute),
                start_replicas=plan.replicas_per_minute[0],
                tick_s=tick_s,
                lifecycle=INSTANT,
                work_weights=weights,
            )
            out = simulate(trace, PlanPolicy("fleet-oracle", plan.replicas_per_minute),
                           profile=profile, config=config)  # fmt: skip
            done += 1
            if progress is not None:
                progress(min(1.0, done / steps))
            return float(requests_met(out, slo)[feasible].mean()) if feasible.any() else 1.0

        found = _bisect(attainment_at, replica_capacity, slo.attainment_target)
        _write_cache(path, found)
    capacity, attainment, met = found
    plan = oracle_plan(trace, capacity, weights, profile.tp)
    return FleetOracle(plan, replica_capacity, attainment, ceiling, met)


def _bisect(
    attainment_at: Callable[[float], float], start: float, target: float
) -> tuple[float, float, bool]:
    """(C, the plan's attainment at C, whether it meets ``target``): bracket from ``start`` by
    doubling or halving, then bisect on a log scale. Attainment falls as C grows."""
    first = attainment_at(start)
    if first >= target:  # C* is enough: how much more can the fleet carry?
        lo, lo_att, hi = start, first, start * 2.0
        for _ in range(SEARCH_FACTORS):
            att = attainment_at(hi)
            if att < target:
                break
            lo, lo_att, hi = hi, att, hi * 2.0
        else:
            return lo, lo_att, True
    else:  # the fleet needs more than C* suggests
        hi, lo, lo_att = start, start / 2.0, first
        for _ in range(SEARCH_FACTORS):
            lo_att = attainment_at(lo)
            if lo_att >= target:
                break
            hi, lo = lo, lo / 2.0
        else:
            return lo * 2.0, lo_att, False
    for _ in range(ITERATIONS):
        mid = math.sqrt(lo * hi)
        att = attainment_at(mid)
        if att >= target:
            lo, lo_att = mid, att
        else:
            hi = mid
    return lo, lo_att, True


def _write_cache(path: Path | None, found: tuple[float, float, bool]) -> None:
    if path is None:
        return
    capacity, attainment, met = found
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"capacity": capacity, "attainment": attainment, "met": met}))
    except OSError as exc:  # a cache is an optimisation: say so and go on
        log.warning("fleet oracle: cannot write the cache %s: %s", path, exc)


def _read_cache(path: Path | None) -> tuple[float, float, bool] | None:
    if path is None:
        return None
    try:
        body = json.loads(path.read_text())
        capacity, attainment, met = body["capacity"], body["attainment"], body["met"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("fleet oracle: ignoring the unreadable cache entry %s: %s", path, exc)
        return None
    if not (isinstance(capacity, float) and capacity > 0 and isinstance(attainment, float)):
        log.warning("fleet oracle: ignoring the malformed cache entry %s", path)
        return None
    return capacity, attainment, bool(met)
