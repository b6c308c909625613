"""``llm-autoscaler demo``: ours and every baseline on the embedded synthetic workload."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autoscaler.cli.flags import Subparsers, add_run_flags, positive
from autoscaler.cli.run_request import run_request
from autoscaler.cli.terminal import ProgressBar, print_table


def add_parser(sub: Subparsers) -> None:
    demo = sub.add_parser(
        "demo",
        help="run ours and every baseline on the embedded synthetic workload (no cluster)",
        description="The whole loop on an embedded synthetic workload: no cluster and no data "
        "files needed. Prints the comparison table and writes a PNG per run.",
    )
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="output directory")
    demo.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    demo.add_argument("--rate-scale", type=positive("--rate-scale"), default=1.0, metavar="K")
    add_run_flags(demo)
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autoscaler.offline.plotting import plot_replicas, require_matplotlib

    require_matplotlib("demo's replicas.png")
    from autoscaler.offline.tables import markdown
    from autoscaler.policies.registry import policy_names
    from autoscaler.simulation.results import mean_over_seeds
    from autoscaler.simulation.runner import REFERENCES, run_seed
    from autoscaler.traces.synthetic import SyntheticWorkload, generate

    workload = SyntheticWorkload()
    trace = generate(workload, seed=args.seed)
    names = ["forecast", *[n for n in policy_names() if n != "forecast"]]
    req = run_request(args, names, 1, args.rate_scale)
    print(
        f"demo: synthetic workload, {trace.requests} requests over {trace.duration_s / 60:.0f} "
        f"min, profile {req.profile.key}; simulating {len(names)} policies, the oracle and "
        "oracle-late ...",
        file=sys.stderr,
    )
    with ProgressBar(len(names) + len(REFERENCES)) as progress:
        seed_run = run_seed(trace, req, seed=args.seed, progress=progress)
    policies = {n: mean_over_seeds([seed_run.figures[n]]) for n in [*REFERENCES, *names]}
    warmup = seed_run.yardstick["warmup_s"]
    result = {
        "trace": seed_run.trace.describe(),
        "warmup_s": warmup,
        "yardstick": seed_run.yardstick,
        "policies": policies,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    png = plot_replicas(
        seed_run.outputs, args.out / "replicas.png", "Replicas and demand per policy (demo)"
    )
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    (args.out / "results.md").write_text(markdown(policies, "demo: synthetic workload") + "\n")
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        title = f"demo: synthetic workload (1 seed, scored after a {warmup:g}s warm-up)"
        print_table(result, title)
        print(f"wrote {png}, {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 0
