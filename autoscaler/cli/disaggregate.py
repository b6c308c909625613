"""``simulate --disaggregate``: validate the policy names, run both pools, print the result.

``autoscaler/cli/simulate.py`` adds the flags and calls :func:`simulate_disaggregated`, so the
disaggregated path has one entry point of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from autoscaler.errors import InputError, UnknownNameError
from autoscaler.policies.dynamo_pd import SWEEP
from autoscaler.policies.registry import expand_sweep, parse_policy_name
from autoscaler.simulation.pd_runner import PdRequest, run_pd

ROLE_ONLY = ("forecast-agg", "dynamo-pd")
"""Names only the disaggregated path knows (the rest are the registry's, one per pool)."""


def role_policy_names(names: list[str], sweep: bool) -> list[str]:
    """Validate and (with ``sweep``) expand the names; one clear error for a bad one."""
    out: list[str] = []
    for spec in names:
        name, _, raw = spec.partition("@")
        if name == "dynamo-pd":
            if raw:
                try:
                    value = float(raw)
                except ValueError:
                    raise InputError(
                        f"--policy {spec}: the setting must be a number (a throughput scale)"
                    ) from None
                if not 0 < value <= 10:
                    raise InputError(f"--policy {spec}: the throughput scale must be in (0, 10]")
                out.append(spec)
            else:
                out.extend([f"dynamo-pd@{s:g}" for s in SWEEP] if sweep else [spec])
        elif name == "forecast-agg":
            if raw:
                parse_policy_name(f"forecast@{raw}")
            out.append(spec)
        else:
            try:
                parse_policy_name(spec)
            except UnknownNameError as exc:  # say that the role-only names exist too
                raise UnknownNameError(
                    exc.kind, exc.name, sorted((*exc.known, *ROLE_ONLY))
                ) from None
            out.extend(expand_sweep([spec]) if sweep else [spec])
    return list(dict.fromkeys(out))


def simulate_disaggregated(
    args: argparse.Namespace, names: list[str], request: Callable[[list[str]], Any]
) -> int:
    """Run ``names`` on a disaggregated fleet over the trace of ``args``; print JSON or a table."""
    from autoscaler.traces.readers import detect_format, read_trace

    policies = role_policy_names(names, args.sweep)
    if args.prefetch == "on":
        raise InputError("--disaggregate: --prefetch is not simulated for two pools yet")
    fmt = args.format if args.format != "auto" else detect_format(args.trace)
    if fmt == "servegen":
        raise InputError(
            f"--disaggregate: {args.trace} is a ServeGen rate file; the disaggregated simulator "
            "replays requests (fluid mode has one pool)"
        )
    req = request(policies)
    trace = read_trace(args.trace, fmt, servegen_model=args.servegen_model)
    result = run_pd(trace, req, PdRequest(link_gbps=args.kv_link_gbps,
                                          oracle_cache=req.oracle_cache))  # fmt: skip
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(format_table(result))
    return 0


def format_table(result: dict[str, Any]) -> str:
    """The per-row figures, both pools' GPU-hours and the aggregated oracle's, as Markdown."""
    yard = result["yardstick"]
    agg = yard.get("aggregated_oracle_gpu_hours")
    lines = [
        f"disaggregated: KV link {result['disaggregated']['link_gbps']:g} Gb/s, "
        f"{result['seeds']} seed(s); aggregated fleet oracle: "
        + (f"{agg:.2f} GPU-h" if isinstance(agg, float) else "not computed"),
        "",
        "| row | SLO attainment | GPU-h | prefill GPU-h | decode GPU-h | TTFT p90 s | "
        "TPOT p90 s | max prefill/decode |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in result["policies"].items():
        ttft, tpot = row.get("ttft_p90_s"), row.get("tpot_p90_s")
        lines.append(
            f"| {name} | {row['slo_attainment']:.2%} | {row['gpu_hours']:.2f} | "
            f"{row['gpu_hours_prefill']:.2f} | {row['gpu_hours_decode']:.2f} | "
            f"{'-' if ttft is None else f'{ttft:.2f}'} | {'-' if tpot is None else f'{tpot:.3f}'}"
            f" | {row['max_replicas_prefill']:.0f}/{row['max_replicas_decode']:.0f} |"
        )
    return "\n".join(lines)
