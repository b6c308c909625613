"""Per-tick forecaster cost: one ``update`` per workload, for 10,000 independent workloads.

For every registered forecaster, ``--templates`` models are fitted on different synthetic
workloads (3 days of 10-minute windows, a daily season of 144 steps, level, amplitude and noise
drawn per workload), then copied (``copy.deepcopy``: independent objects) up to ``--workloads``.
Each workload then absorbs one new point through the public ``update``, timed one by one; the
policy's ``predict`` at the default lead time (16 steps, 3 quantiles) is timed the same way.

The quantile regression refits every ``refit_every`` steps; a timed tick never lands on a refit
here (the copies were just fitted), so the refit is timed on its own and reported amortised over
``refit_every`` (and so for a selector that holds one). The headline column, "µs per
workload-update", is the mean update plus that amortised refit: what one more workload adds to
a tick. "state KiB" is the pickled size of one fitted model (what 10,000 of them hold in memory,
roughly). The last row is ``AdaptiveHoltBatch``: the same model as "adaptive-holt", every
workload a row of one set of arrays, so a tick is one ``update`` for all of them; its figures
are that tick divided by the number of workloads. Timings are wall-clock on a shared machine:
run it alone for stable figures.

Run: ``.venv/bin/python benchmarks/forecaster_update_cost.py [--workloads N]``. Prints JSON and
a Markdown table (microseconds per workload), and keeps both under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import copy
import pickle
import platform
import time

import numpy as np
from _common import emit

from forecasting.adaptive_holt_batch import AdaptiveHoltBatch
from forecasting.quantile_regression import QuantileRegression
from forecasting.registry import forecaster_names, make_forecaster
from forecasting.selector import OnlineSelector

SEASON = 144
HISTORY = 3 * SEASON
HORIZON = 16
QUANTILES = (0.5, 0.9, 0.99)


def workload(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n)
    level = rng.uniform(10, 1e5)
    amp = rng.uniform(0.1, 0.6) * level
    y = level + amp * np.sin(2 * np.pi * (t + rng.integers(SEASON)) / SEASON)
    y = y + rng.normal(0, rng.uniform(0.02, 0.2) * level, n)
    y[rng.random(n) < 0.01] = np.nan  # the odd missing window
    return np.maximum(y, 0.0)


def _qr_of(model: object) -> QuantileRegression | None:
    if isinstance(model, QuantileRegression):
        return model
    if isinstance(model, OnlineSelector):
        for _, candidate in model.candidates:
            if isinstance(candidate, QuantileRegression):
                return candidate
    return None


def measure(name: str, workloads: int, templates: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    series = [workload(rng, HISTORY + 1) for _ in range(templates)]
    t0 = time.perf_counter()
    fitted = [
        make_forecaster(name, season_length=SEASON, horizon=HORIZON).fit(s[:-1]) for s in series
    ]
    fit_s = (time.perf_counter() - t0) / templates
    models = [copy.deepcopy(fitted[i % templates]) for i in range(workloads)]
    points = [series[i % templates][-1:] * rng.uniform(0.9, 1.1) for i in range(workloads)]
    update_ns = np.empty(workloads)
    predict_ns = np.empty(workloads)
    clock = time.perf_counter_ns
    for i, (model, point) in enumerate(zip(models, points, strict=True)):
        start = clock()
        model.update(point)
        update_ns[i] = clock() - start
    for i, model in enumerate(models):
        start = clock()
        model.predict(HORIZON, QUANTILES)
        predict_ns[i] = clock() - start
    refit_us = 0.0
    qr = _qr_of(fitted[0])
    if qr is not None:
        start = clock()
        qr._refit()
        refit_us = (clock() - start) / 1e3 / qr.refit_every
    per_update_us = float(update_ns.mean() / 1e3) + refit_us
    return {
        "per_workload_update_us": per_update_us,
        "update_mean_us": float(update_ns.mean() / 1e3),
        "update_p50_us": float(np.median(update_ns) / 1e3),
        "update_p99_us": float(np.quantile(update_ns, 0.99) / 1e3),
        "refit_amortised_us": refit_us,
        "predict_mean_us": float(predict_ns.mean() / 1e3),
        "tick_all_workloads_s": float(
            (update_ns.sum() + predict_ns.sum()) / 1e9 + refit_us * workloads / 1e6
        ),
        "state_kib": len(pickle.dumps(fitted[0])) / 1024.0,
        "fit_s": fit_s,
    }


def measure_batch(workloads: int, seed: int, ticks: int = 10) -> dict[str, float]:
    """``AdaptiveHoltBatch`` over all workloads: per tick, one ``update`` of every row at once.

    Per-workload figures are a tick's time divided by the number of workloads; p50/p99 are over
    ``ticks`` ticks. Each tick brings every workload a point (the batch's steady path)."""
    rng = np.random.default_rng(seed)
    # the same synthetic workloads, without the odd gap (gaps take the batch's general path)
    y = np.stack([workload(rng, HISTORY + ticks) for _ in range(workloads)])
    y = np.where(np.isnan(y), np.nanmean(y, axis=1, keepdims=True), y)
    model = AdaptiveHoltBatch(horizon=HORIZON, max_horizon=max(40, HORIZON))
    t0 = time.perf_counter()
    model.fit(y[:, :HISTORY])
    fit_s = (time.perf_counter() - t0) / workloads
    update_ns = np.empty(ticks)
    clock = time.perf_counter_ns
    for j in range(ticks):
        start = clock()
        model.update(y[:, HISTORY + j])
        update_ns[j] = clock() - start
    start = clock()
    model.predict(HORIZON, QUANTILES)
    predict_ns = clock() - start
    per = update_ns / workloads / 1e3
    return {
        "per_workload_update_us": float(per.mean()),
        "update_mean_us": float(per.mean()),
        "update_p50_us": float(np.median(per)),
        "update_p99_us": float(np.quantile(per, 0.99)),
        "refit_amortised_us": 0.0,
        "predict_mean_us": predict_ns / workloads / 1e3,
        "tick_all_workloads_s": float((np.median(update_ns) + predict_ns) / 1e9),
        "state_kib": len(pickle.dumps(model)) / 1024.0 / workloads,
        "fit_s": fit_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=10_000)
    parser.add_argument("--templates", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {
        name: measure(name, args.workloads, args.templates, args.seed)
        for name in forecaster_names()
    }
    results["adaptive-holt, batched (AdaptiveHoltBatch)"] = measure_batch(args.workloads, args.seed)
    payload = {
        "workloads": args.workloads,
        "season_length": SEASON,
        "history_steps": HISTORY,
        "horizon_steps": HORIZON,
        "quantiles": list(QUANTILES),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "models": results,
    }
    rows = [
        "| model | µs per workload-update | update p50 µs | update p99 µs "
        "| of which refit, amortised µs | predict mean µs "
        f"| update+predict, {args.workloads} workloads, s | state KiB | fit s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        rows.append(
            f"| {name} | {r['per_workload_update_us']:.1f} | {r['update_p50_us']:.1f} "
            f"| {r['update_p99_us']:.1f} | {r['refit_amortised_us']:.1f} "
            f"| {r['predict_mean_us']:.1f} | {r['tick_all_workloads_s']:.2f} "
            f"| {r['state_kib']:.1f} | {r['fit_s']:.3f} |"
        )
    title = (
        f"Per-tick forecaster cost, {args.workloads} workloads "
        f"(season {SEASON}, horizon {HORIZON}, quantiles {list(QUANTILES)})"
    )
    emit("forecaster_update_cost", payload, "\n".join([f"**{title}**", "", *rows]))


if __name__ == "__main__":
    main()
