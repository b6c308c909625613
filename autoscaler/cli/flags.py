"""The flags and argparse value types several verbs share (one definition, one help text)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias, TypeVar

PROG = "llm-autoscaler"
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What each verb's ``add_parser`` adds its subcommand to."""
_N = TypeVar("_N", int, float)


def number(
    cast: Callable[[str], _N], ok: Callable[[_N], bool], need: str, kind: str = ""
) -> Callable[[str], _N]:
    """An argparse ``type``: ``cast`` the text, then ``ok`` or a message saying what it must be
    (argparse prefixes the flag; ``kind`` names it again where the message stands alone)."""
    noun = "an integer" if cast is int else "a number"
    prefix = f"{kind} " if kind else ""

    def parse(text: str) -> _N:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{prefix}must be {noun}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{prefix}must be {need}, got {text}")
        return value

    return parse


def positive(kind: str) -> Callable[[str], float]:
    return number(float, lambda v: v > 0, "> 0", kind)


non_negative = number(float, lambda v: v >= 0, ">= 0")


def int_at_least(floor: int) -> Callable[[str], int]:
    return number(int, lambda v: v >= floor, f">= {floor}")


def add_trace_flags(p: argparse.ArgumentParser, servegen_help: str) -> None:
    """The trace flags every trace-reading subcommand shares."""
    p.add_argument("--trace", required=True, type=Path, help="trace file")
    p.add_argument(
        "--format", default="auto", help="auto (default), azure, mooncake, burstgpt or servegen"
    )
    p.add_argument("--servegen-model", default=None, help=servegen_help)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("replica profile")
    g.add_argument("--model", default="llama2-70b", help="llama2-70b (default) or bloom-176b")
    g.add_argument("--gpu", default="h100", help="h100 (default) or a100")
    g.add_argument("--tp", type=int, default=4, help="tensor parallelism: 2, 4 or 8 (default 4)")
    g.add_argument(
        "--max-batched-tokens",
        type=int_at_least(64),
        default=None,
        metavar="N",
        help="engine's token budget per step, vLLM's --max-num-batched-tokens (default 8192)",
    )
    g.add_argument(
        "--max-num-seqs",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="engine's cap on running sequences, vLLM's --max-num-seqs (default 256)",
    )
    s = p.add_argument_group("SLO")
    s.add_argument(
        "--ttft-slo",
        type=positive("--ttft-slo"),
        default=1.0,
        metavar="S",
        help="TTFT budget base, seconds (default 1.0)",
    )
    s.add_argument(
        "--ttft-slo-per-1k",
        type=non_negative,
        default=0.2,
        metavar="S",
        help="extra TTFT budget per 1,000 prompt tokens (default 0.2)",
    )
    s.add_argument(
        "--tpot-slo",
        type=positive("--tpot-slo"),
        default=0.1,
        metavar="S",
        help="time-per-output-token budget, seconds (default 0.1)",
    )
    s.add_argument(
        "--slo-target",
        type=positive("--slo-target"),
        default=0.99,
        metavar="F",
        help="SLO-attainment target (default 0.99)",
    )
    lc = p.add_argument_group("replica start-up")
    lc.add_argument("--pull-s", type=non_negative, default=180.0, help="image pull (default 180)")
    lc.add_argument("--init-s", type=non_negative, default=60.0, help="engine init (default 60)")
    lc.add_argument(
        "--provision-s", type=non_negative, default=0.0, help="node provisioning (default 0)"
    )
    p.add_argument(
        "--max-replicas",
        type=int,
        default=None,
        help="replica cap for every policy (default: 2x the oracle's peak)",
    )
    p.add_argument(
        "--capacity-seed-error",
        type=float,
        default=0.0,
        metavar="F",
        help="relative error injected into the policies' capacity seed, e.g. 0.3",
    )
    p.add_argument(
        "--warmup-s",
        type=non_negative,
        default=None,
        metavar="S",
        help="seconds during which the fleet follows the oracle's plan (ready) while every "
        "policy only observes; figures score what comes after (default max(600, 2 x the "
        "lead time), at most half the trace; 0 scores the whole run from a cold start)",
    )
    p.add_argument(
        "--oracle-cache",
        default=None,
        metavar="DIR",
        help="where the fleet oracle's bisection is cached (default "
        "$XDG_CACHE_HOME/llm-autoscaler/fleet-oracle; 'off' computes it every run)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON contract instead of a table")
