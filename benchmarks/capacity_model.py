"""How well the capacity model follows the request mix: the seed vs ``mix_capacity``, per workload.

The fleet oracle's capacity (the one per-replica token-work rate at which its clairvoyant
per-minute plan meets the SLO) is the yardstick. For every workload family and shared trace this
prints that capacity, the constant profile seed (``seed_capacity``), ``mix_capacity`` from the
workload's own mean and p90 prompt and mean output (what the live histograms give), the error of
each, and the **prefill share** each workload implies: the share of a replica's time in prefill at
the oracle's capacity, where prefill is what binds. ``PREFILL_SHARE`` is the median of the
families' implied shares, and the leave-one-out column is that median taken without the
workload. If it moved much when one family was left out, the constant would be tuned to that
family.

    .venv/bin/python benchmarks/capacity_model.py [--seed 0] [--only NAME ...] [--no-shared]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from _common import emit
from policies import workload_specs, workload_trace

from autoscaler.core.slo import SloSpec
from autoscaler.perf.capacity import (
    PREFILL_SHARE,
    decode_batch_at_slo,
    mix_capacity,
    prompt_second_moment,
    seed_capacity,
    work_weights,
)
from autoscaler.perf.profiles import get_profile
from autoscaler.simulation.fleet_oracle import default_cache_dir, fleet_oracle
from autoscaler.simulation.oracle import replica_capacity
from autoscaler.traces.families import FAMILIES
from autoscaler.traces.scaling import scale_rate


def measure(label: str, spec: tuple[object, ...], seed: int) -> dict[str, object]:
    t0 = time.perf_counter()
    profile, slo = get_profile(), SloSpec()
    trace = workload_trace(spec, seed)  # type: ignore[arg-type]
    rate_scale = float(spec[2])  # type: ignore[arg-type]
    if rate_scale != 1.0:
        trace = scale_rate(trace, rate_scale, seed=seed)
    weights = work_weights(profile, slo)
    single = replica_capacity(trace, profile, slo, weights, seed=seed)
    oracle = fleet_oracle(trace, profile, slo, weights, replica_capacity=single,
                          cache_dir=default_cache_dir()).plan.capacity  # fmt: skip
    prompts = trace.prompt_tokens.astype(float)
    outputs = trace.output_tokens.astype(float)
    mean_p, p90_p, mean_o = (
        float(prompts.mean()),
        float(np.quantile(prompts, 0.9)),
        float(outputs.mean()),
    )
    model = mix_capacity(profile, slo, mean_p, p90_p, mean_o)
    # the prefill share at the oracle's capacity (the model's own prefill seconds per request)
    prefill_s = profile.prefill_per_token_s * mean_p + profile.prefill_attn_s * (
        prompt_second_moment(mean_p, p90_p)
    )
    work = mean_p * weights[0] + mean_o * weights[1]
    context = mean_p + mean_o / 2.0
    batch = decode_batch_at_slo(profile, slo, context)
    decode_s = mean_o * profile.decode_step_s(batch, batch * context) / batch
    rate = oracle / work
    return {
        "workload": label,
        "requests": trace.requests,
        "mean_prompt": round(mean_p),
        "p90_prompt": round(p90_p),
        "mean_output": round(mean_o),
        "oracle_capacity": oracle,
        "seed_capacity": seed_capacity(profile, slo),
        "mix_capacity": model,
        "prefill_share": rate * prefill_s,
        "decode_share": rate * decode_s,
        "prefill_binds": PREFILL_SHARE / prefill_s <= 1.0 / decode_s,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def table(rows: list[dict[str, object]]) -> str:
    bound = [r for r in rows if r["prefill_binds"]]
    shares = {str(r["workload"]): float(r["prefill_share"]) for r in bound}  # type: ignore[arg-type]
    lines = [
        "| workload | prompt mean / p90 | output mean | oracle C | seed (error) "
        "| mix model (error) "
        "| binding | implied prefill share | median share without it |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        oracle = float(r["oracle_capacity"])  # type: ignore[arg-type]
        seed, model = float(r["seed_capacity"]), float(r["mix_capacity"])  # type: ignore[arg-type]
        name = str(r["workload"])
        others = [v for k, v in shares.items() if k != name]
        loo = f"{statistics.median(others):.3f}" if others else "-"
        lines.append(
            f"| {name} | {r['mean_prompt']:,} / {r['p90_prompt']:,} | {r['mean_output']:,} | "
            f"{oracle:,.0f} | {seed:,.0f} ({seed / oracle - 1:+.0%}) | "
            f"{model:,.0f} ({model / oracle - 1:+.0%}) | "
            f"{'prefill' if r['prefill_binds'] else 'decode'} | "
            f"{float(r['prefill_share']):.3f} | {loo} |"  # type: ignore[arg-type]
        )
    if shares:
        lines.append(
            f"\nMedian implied prefill share over the {len(shares)} prefill-bound workloads: "
            f"{statistics.median(shares.values()):.3f} (shipped PREFILL_SHARE = {PREFILL_SHARE})"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", action="append", help="only this workload (repeat for several)")
    ap.add_argument("--no-shared", action="store_true", help="families only")
    args = ap.parse_args()
    specs = workload_specs(tuple(FAMILIES), only=args.only, shared=not args.no_shared)
    rows = []
    for label, spec in specs.items():
        row = measure(label, spec, args.seed)
        print(f"  {label}: {row['seconds']} s", file=sys.stderr, flush=True)
        rows.append(row)
    emit("capacity_model", {"seed": args.seed, "rows": rows}, table(rows))


if __name__ == "__main__":
    main()
