"""How far the SLO attainment read from histogram buckets is from the exact per-request figure.

The capacity learner sees each window's misses only through the engine's histograms
(:mod:`autoscaler.core.attainment`: the share of TTFT observations above their budget, pairing
the TTFT and prompt-size histograms by rank, plus the share of per-request TPOT observations above
``tpot_s``, each interpolated inside its bucket as ``histogram_quantile`` does). The simulator
knows every request, so this script runs ``forecast`` on each workload (families and shared
traces, as ``benchmarks/policies.py --families``), records every snapshot the policy receives,
and compares, window by window (the 1-minute rate window ending at the tick):

* ``ttft``: estimated (TTFT and prompt size paired by rank) vs exact share of first tokens in the
  window whose TTFT exceeded *their own* budget (which grows with their prompt); beside it, the
  alternative the learner does not use: every request held to the budget of the mean prompt;
* ``tpot``: estimated vs exact share of multi-token requests finished in the window whose time
  per output token exceeded ``tpot_s`` (bucket interpolation is the only error here);
* ``miss``: the estimate the learner uses (``ttft + tpot``, at most 1) vs the exact share of the
  window's finished requests that missed the SLO.

Windows after the warm-up with at least ``--min-requests`` requests count. Prints JSON and a
Markdown table (mean exact, mean estimate, mean error = estimate - exact, mean absolute error,
in points).

    .venv/bin/python benchmarks/attainment_error.py [--seeds 1] [--jobs 2] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields, replace

import numpy as np
from _common import emit
from policies import Spec, workload_specs, workload_trace

from autoscaler.core.attainment import observed_attainment, share_within
from autoscaler.core.recommendation import Recommendation
from autoscaler.core.signals import SignalSnapshot
from autoscaler.hpa.spec import HpaSpec
from autoscaler.perf.profiles import get_profile
from autoscaler.policies.base import Actuation, Policy, PolicyContext
from autoscaler.policies.registry import make_policy
from autoscaler.simulation.engine import SimConfig
from autoscaler.simulation.runner import RunRequest, run_seed
from autoscaler.traces.families import FAMILIES


class Recorder:
    """Passes every call to the policy and keeps the snapshots it was given."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.actuation: Actuation = inner.actuation
        self.seen: list[SignalSnapshot] = []

    def hpa_spec(self) -> HpaSpec | None:
        return self.inner.hpa_spec()

    def recommend(self, snapshot: SignalSnapshot) -> Recommendation:
        self.seen.append(snapshot)
        return self.inner.recommend(snapshot)


def measure(task: tuple[str, Spec, int, float]) -> dict[str, object]:
    label, spec, seed, min_requests = task
    t0 = time.perf_counter()
    req = RunRequest(policies=["forecast"], profile=get_profile(), seeds=1)
    recorders: list[Recorder] = []

    def make(name: str, ctx: PolicyContext) -> Policy:
        recorders.append(Recorder(make_policy(name, ctx)))
        return recorders[-1]

    run = run_seed(workload_trace(spec, seed), replace(req, rate_scale=spec[2]), seed, make=make)
    out, slo, policy = run.outputs["forecast"], req.slo, recorders[0]
    warmup = out.warmup_s
    # the window the simulated snapshots' histograms cover (the runner keeps SimConfig's default)
    window = next(float(f.default) for f in fields(SimConfig) if f.name == "rate_window_s")
    reqs = out.reqs
    arrival = reqs.arrival_arr
    first, fin = reqs.column("first_token"), reqs.column("finished")
    prompt, output = reqs.prompt_arr, reqs.output_arr
    ttft = first - arrival
    ttft_bad = ttft > slo.ttft_s + slo.ttft_per_1k_s * prompt / 1000.0
    multi = output > 1
    tpot = np.where(multi, (fin - first) / np.maximum(output - 1, 1), 0.0)
    met = slo.met(prompt, output, ttft, fin - arrival)
    rows: list[tuple[float, ...]] = []
    for snap in policy.seen:
        t = snap.timestamp
        if t < warmup:
            continue
        seen = observed_attainment(snap, slo, window)
        if seen is None or seen.requests < min_requests:
            continue
        in_ttft = (first > t - window) & (first <= t)
        done = (fin > t - window) & (fin <= t)
        done_multi = done & multi
        if not in_ttft.any() or not done_multi.any():
            continue
        tpot_ok = share_within(snap.tpot_buckets, slo.tpot_s)
        mean_budget = share_within(snap.ttft_buckets, slo.ttft_budget(snap.mean_prompt_tokens or 0))
        rows.append((
            float(ttft_bad[in_ttft].mean()), seen.ttft_miss, 1.0 - (mean_budget or 0.0),
            float((tpot[done_multi] > slo.tpot_s).mean()), 1.0 - (tpot_ok or 0.0),
            float((~met[done]).mean()), seen.miss,
        ))  # fmt: skip
    a = np.asarray(rows) if rows else np.zeros((0, 7))

    def stats(i: int, j: int | None = None) -> dict[str, float]:
        if a.shape[0] == 0:
            return {}
        exact, est = a[:, i], a[:, i + 1 if j is None else j]
        return {
            "exact_pct": round(100 * float(exact.mean()), 3),
            "estimate_pct": round(100 * float(est.mean()), 3),
            "error_pt": round(100 * float((est - exact).mean()), 3),
            "abs_error_pt": round(100 * float(np.abs(est - exact).mean()), 3),
        }

    return {
        "workload": label,
        "seed": seed,
        "windows": int(a.shape[0]),
        "ttft": stats(0),
        "ttft_mean_budget": stats(0, 2),
        "tpot": stats(3),
        "miss": stats(5),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--min-requests", type=float, default=50.0)
    ap.add_argument("--only", action="append", help="only this workload (repeat for several)")
    args = ap.parse_args()
    specs = workload_specs(tuple(FAMILIES), only=args.only)
    tasks = [(k, v, s, args.min_requests) for k, v in specs.items() for s in range(args.seeds)]
    print(f"{len(tasks)} runs, {args.jobs} process(es)", file=sys.stderr, flush=True)
    results = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for r in pool.map(measure, tasks):
            print(f"  {r['workload']} seed {r['seed']}: {r['seconds']} s", file=sys.stderr)
            results.append(r)
    lines = [
        "Observed attainment from histogram buckets vs the exact per-request share, per 1-minute "
        f"window after the warm-up (>= {args.min_requests:g} requests), `forecast` running; "
        "points of requests (estimate - exact: positive = the estimate sees more misses).\n",
        "| workload | seed | windows | TTFT miss exact / est. / err | TTFT at the mean prompt's "
        "budget: est. / err | TPOT miss exact / est. / "
        "err | SLO miss exact / est. / err (mean abs err) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = []
        for key in ("ttft", "ttft_mean_budget", "tpot", "miss"):
            s = r[key]
            assert isinstance(s, dict)
            if not s:
                cells.append("-")
                continue
            cell = f"{s['exact_pct']:.2f} / {s['estimate_pct']:.2f} / {s['error_pt']:+.2f}"
            if key == "ttft_mean_budget":
                cell = f"{s['estimate_pct']:.2f} / {s['error_pt']:+.2f}"
            if key == "miss":
                cell += f" ({s['abs_error_pt']:.2f})"
            cells.append(cell)
        lines.append(
            f"| {r['workload']} | {r['seed']} | {r['windows']} | " + " | ".join(cells) + " |"
        )
    emit("attainment_error", {"min_requests": args.min_requests, "runs": results}, "\n".join(lines))


if __name__ == "__main__":
    main()
