"""Simulator speed: simulated requests per second of wall time, and peak memory.

Workload (issue acceptance): ``azure2023_conv.csv`` at rate-scale 20 (about 390,000 requests),
policy ``forecast``, one seed. The oracle/capacity computation is timed separately from the
policy's run. Peak memory is the process' maximum resident set size (``ru_maxrss``), which does
not slow the run down the way tracemalloc would.

    .venv/bin/python benchmarks/simulator_speed.py [--rate-scale 20] [--policy forecast]
"""

from __future__ import annotations

import argparse
import resource
import time

from _common import emit, shared_or_exit

from autoscaler.core.slo import SloSpec
from autoscaler.perf.profiles import get_profile
from autoscaler.policies.base import PolicyContext
from autoscaler.policies.registry import make_policy
from autoscaler.simulation.engine import SimConfig, simulate
from autoscaler.simulation.oracle import (
    oracle_plan,
    replica_capacity,
    seed_capacity,
    work_weights,
)
from autoscaler.traces.readers import read_trace
from autoscaler.traces.scaling import scale_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate-scale", type=float, default=20.0)
    ap.add_argument("--policy", default="forecast")
    args = ap.parse_args()

    path = shared_or_exit("traces/azure2023_conv.csv")
    t0 = time.perf_counter()
    trace = scale_rate(read_trace(path), args.rate_scale, seed=0)
    t_read = time.perf_counter() - t0

    profile, slo = get_profile(), SloSpec()
    weights = work_weights(profile, slo)
    t0 = time.perf_counter()
    cap = replica_capacity(trace, profile, slo, weights)
    plan = oracle_plan(trace, cap, weights, profile.tp)
    t_oracle = time.perf_counter() - t0
    peak = max(plan.replicas_per_minute)
    ctx = PolicyContext(
        slo=slo,
        max_replicas=2 * peak,
        replica_token_capacity=seed_capacity(profile, slo),
        prefill_weight=weights[0],
        decode_weight=weights[1],
        gpus_per_replica=profile.tp,
        peak_replicas=peak,
    )
    config = SimConfig(
        max_replicas=2 * peak, start_replicas=plan.replicas_per_minute[0], work_weights=weights
    )
    policy = make_policy(args.policy, ctx)
    t0 = time.perf_counter()
    out = simulate(trace, policy, profile=profile, config=config)
    t_sim = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    finished = int(sum(1 for f in out.reqs.finished if f == f))
    result = {
        "trace": str(path.name),
        "rate_scale": args.rate_scale,
        "policy": args.policy,
        "requests": trace.requests,
        "finished": finished,
        "read_and_scale_s": round(t_read, 3),
        "oracle_capacity_s": round(t_oracle, 3),
        "simulate_s": round(t_sim, 3),
        "simulated_requests_per_s": round(trace.requests / t_sim),
        "peak_rss_mb": round(rss_mb, 1),
        "max_replicas": out.max_replicas,
    }
    md = "\n".join(
        [
            "| trace | rate-scale | policy | requests | simulate s | req/s (wall) | peak RSS MB |",
            "|---|---|---|---|---|---|---|",
            f"| {path.name} | {args.rate_scale:g} | {args.policy} | {trace.requests:,} | "
            f"{t_sim:.2f} | {trace.requests / t_sim:,.0f} | {rss_mb:.0f} |",
        ]
    )
    emit("simulator_speed", result, md)


if __name__ == "__main__":
    main()
