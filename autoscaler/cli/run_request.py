"""The simulation request the run flags describe (profile, SLO, lifecycle, seeds, cache)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from autoscaler.errors import InputError


def slo_from_flags(args: argparse.Namespace) -> Any:
    from autoscaler.core.slo import SloSpec

    if not 0 < args.slo_target < 1:
        raise InputError(f"--slo-target must be between 0 and 1, got {args.slo_target}")
    return SloSpec(
        ttft_s=args.ttft_slo,
        ttft_per_1k_s=args.ttft_slo_per_1k,
        tpot_s=args.tpot_slo,
        attainment_target=args.slo_target,
    )


def run_request(
    args: argparse.Namespace, policies: list[str], seeds: int, rate_scale: float
) -> Any:
    from autoscaler.simulation.lifecycle import LifecycleConfig
    from autoscaler.simulation.runner import RunRequest

    if seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {seeds}")
    if args.max_replicas is not None and args.max_replicas < 1:
        raise InputError(f"--max-replicas must be >= 1, got {args.max_replicas}")
    if not -0.9 <= args.capacity_seed_error <= 5:
        raise InputError("--capacity-seed-error must be between -0.9 and 5")
    return RunRequest(
        policies=policies,
        profile=profile_from_flags(args),
        slo=slo_from_flags(args),
        lifecycle=LifecycleConfig(
            pull_s=args.pull_s, init_s=args.init_s, provision_s=args.provision_s
        ),
        seeds=seeds,
        rate_scale=rate_scale,
        max_replicas=args.max_replicas,
        capacity_seed_error=args.capacity_seed_error,
        oracle_cache=oracle_cache_dir(getattr(args, "oracle_cache", None)),
        warmup_s=getattr(args, "warmup_s", None),
    )


def profile_from_flags(args: argparse.Namespace) -> Any:
    """The replica profile of ``--model/--gpu/--tp`` with the engine-setting flags applied."""
    from autoscaler.perf.profiles import get_profile, with_engine_settings

    tokens, seqs = args.max_batched_tokens, args.max_num_seqs
    profile = get_profile(args.model, args.gpu, args.tp)
    try:
        return with_engine_settings(profile, max_batched_tokens=tokens, max_num_seqs=seqs)
    except InputError:
        tokens = profile.max_batched_tokens if tokens is None else tokens
        seqs = profile.max_num_seqs if seqs is None else seqs
        raise InputError(
            f"--max-batched-tokens ({tokens}) must be >= --max-num-seqs ({seqs}): every running "
            "sequence takes one token of the step's budget"
        ) from None


def oracle_cache_dir(flag: str | None) -> Path | None:
    from autoscaler.simulation.fleet_oracle import default_cache_dir

    if flag == "off":
        return None
    return Path(flag) if flag else default_cache_dir()
