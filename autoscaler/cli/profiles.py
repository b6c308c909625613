"""``llm-autoscaler profiles``: list the replica performance profiles."""

from __future__ import annotations

import argparse

from autoscaler.cli.flags import Subparsers


def add_parser(sub: Subparsers) -> None:
    prof = sub.add_parser("profiles", help="list the replica performance profiles")
    prof.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autoscaler.perf.profiles import available_profiles, get_profile

    for model, gpu, tp in available_profiles():
        p = get_profile(model, gpu, tp)
        print(f"{model:12s} {gpu:16s} tp{tp}  kv {p.kv_capacity_tokens:>9,d} tokens")
    return 0
