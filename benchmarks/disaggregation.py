"""Aggregated vs disaggregated fleets per workload family, and ours vs ``dynamo-pd``'s front.

For each family (:data:`autoscaler.traces.families.FAMILIES`) and seed, a disaggregated run
(``simulate --disaggregate``: a prefill and a decode pool, KV over a 400 Gb/s link) scores
ours (``forecast`` per role), ``dynamo-pd`` at each point of its sweep, and the two-pool
references (``oracle``: the cheapest pair of per-minute plans meeting the SLO, zero start time;
``oracle-late``); next to them the aggregated fleet oracle's GPU-hours over the same scored span
(the best aggregated plan, with zero start time).

Goals (issue 21), checked on the long-prompt families (mean prompt >= 4k tokens):

* ``beats aggregated oracle``: ours meets the SLO (attainment >= the target, or >= the
  two-pool oracle's own where the trace caps it lower) at fewer GPU-hours than the aggregated
  fleet oracle;
* ``undominated``: no point of ``dynamo-pd``'s swept front has attainment >= ours and GPU-hours
  <= ours, one of them strictly.

    .venv/bin/python benchmarks/disaggregation.py [--seeds 2] [--families a,b] [--link-gbps 400]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from _common import emit

from autoscaler.core.slo import SloSpec
from autoscaler.perf.profiles import get_profile
from autoscaler.policies.dynamo_pd import SWEEP
from autoscaler.simulation.pd_runner import PdRequest, run_pd_seed
from autoscaler.simulation.runner import RunRequest
from autoscaler.traces.families import FAMILIES
from autoscaler.traces.families import generate as generate_family

LONG_PROMPT = 4000.0
OURS = "forecast"
DYNAMO = [f"dynamo-pd@{s:g}" for s in SWEEP]


def _dominates(a: dict[str, float], b: dict[str, float]) -> bool:
    sa, sb, ga, gb = a["slo_attainment"], b["slo_attainment"], a["gpu_hours"], b["gpu_hours"]
    return sa >= sb - 1e-9 and ga <= gb * (1 + 1e-9) and (sa > sb + 1e-9 or ga < gb * (1 - 1e-9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--families", default="ramp-longctx,rag-longprompt-shortout,"
                        "poisson-chat,diurnal-reasoning")  # fmt: skip
    parser.add_argument("--link-gbps", type=float, default=400.0)
    args = parser.parse_args()
    names = [n for n in args.families.split(",") if n]
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        raise SystemExit(f"--families: unknown {unknown}; known: {sorted(FAMILIES)}")
    profile = get_profile()
    slo = SloSpec()
    policies = [OURS, *DYNAMO]
    req = RunRequest(policies=policies, profile=profile, slo=slo, seeds=1)
    pd = PdRequest(link_gbps=args.link_gbps)
    results: dict[str, object] = {}
    lines = [
        "| family | mean prompt | row | SLO attainment | GPU-h (prefill + decode) | "
        "vs aggregated oracle | max P/D |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    goals = [
        "| family | long prompt | ours SLO | ours GPU-h | aggregated oracle GPU-h | "
        "beats aggregated oracle | undominated by dynamo-pd |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        t0 = time.perf_counter()
        per_seed = []
        prompts = []
        for seed in range(args.seeds):
            trace = generate_family(FAMILIES[name], seed)
            prompts.append(float(np.mean(trace.prompt_tokens)))
            per_seed.append(run_pd_seed(trace, req, pd, seed))
        rows: dict[str, dict[str, float]] = {}
        for row in ["oracle", "oracle-late", *policies]:
            keys = per_seed[0][0][row].keys()
            rows[row] = {
                k: float(np.mean([float(f[row][k] or 0.0) for f, _ in per_seed])) for k in keys
            }
        agg = float(np.mean([y["aggregated_oracle_gpu_hours"] for _, y in per_seed]))
        mean_prompt = float(np.mean(prompts))
        long_prompt = mean_prompt >= LONG_PROMPT
        ours = rows[OURS]
        target = min(slo.attainment_target, rows["oracle"]["slo_attainment"])
        meets = ours["slo_attainment"] >= target - 1e-9
        beats = meets and ours["gpu_hours"] < agg
        dominated_by = [d for d in DYNAMO if _dominates(rows[d], ours)]
        results[name] = {
            "mean_prompt_tokens": mean_prompt,
            "long_prompt": long_prompt,
            "aggregated_oracle_gpu_hours": agg,
            "rows": rows,
            "goals": {
                "meets_slo": meets,
                "beats_aggregated_oracle": beats,
                "dominated_by": dominated_by,
            },
            "seconds": time.perf_counter() - t0,
        }
        for row, figs in rows.items():
            ratio = figs["gpu_hours"] / agg if agg > 0 else math.nan
            lines.append(
                f"| {name} | {mean_prompt:,.0f} | {row} | {figs['slo_attainment']:.2%} | "
                f"{figs['gpu_hours']:.1f} ({figs['gpu_hours_prefill']:.1f} + "
                f"{figs['gpu_hours_decode']:.1f}) | {ratio:.2f}x | "
                f"{figs['max_replicas_prefill']:.0f}/{figs['max_replicas_decode']:.0f} |"
            )
        lines.append(f"| {name} | | aggregated oracle | | {agg:.1f} | 1.00x | |")
        goals.append(
            f"| {name} | {'yes' if long_prompt else 'no'} | {ours['slo_attainment']:.2%} | "
            f"{ours['gpu_hours']:.1f} | {agg:.1f} | {'yes' if beats else 'NO'} | "
            f"{'yes' if not dominated_by else 'NO: ' + ', '.join(dominated_by)} |"
        )
    payload = {
        "seeds": args.seeds,
        "link_gbps": args.link_gbps,
        "profile": profile.key,
        "families": results,
    }
    markdown = "\n".join(lines) + "\n\nGoals:\n\n" + "\n".join(goals)
    emit("disaggregation", payload, markdown)


if __name__ == "__main__":
    main()
