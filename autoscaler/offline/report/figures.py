"""The report's plots, drawn with matplotlib's object API and written as PNG files.

``matplotlib.figure.Figure`` is used without ``pyplot``: no global figure state and no backend
switch, so drawing a report inside a notebook (or twice in one process) leaves the caller's
matplotlib alone. Each function writes one PNG and returns its path; the HTML page embeds the
bytes, the Markdown summary links the files.

The replica timelines of a request-level replay reuse
:func:`autoscaler.offline.plotting.plot_replicas`, the demo's picture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from autoscaler.offline.report.accuracy import POLICY_MODEL, Accuracy
from autoscaler.offline.report.recommend import (
    ORACLE,
    ORACLE_LATE,
    REFERENCES,
    CurvePoint,
    Settings,
)
from autoscaler.simulation.engine import RunOutput

FloatArray = npt.NDArray[np.float64]

DPI = 100
WIDTH_IN = 10.0
OURS_COLOR = "tab:blue"
ORACLE_COLOR = "tab:green"
BASELINE_STYLES = (
    ("tab:orange", "s"),
    ("tab:red", "^"),
    ("tab:purple", "D"),
    ("tab:brown", "v"),
    ("tab:pink", "P"),
    ("tab:gray", "X"),
    ("tab:olive", "<"),
    ("tab:cyan", ">"),
)
"""(colour, marker) of each baseline's front, in the order the baselines first appear."""


def _figure(height_in: float, rows: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def time_axis(
    n: int, interval_s: float, start_unix: float | None
) -> tuple[FloatArray | list[datetime], str]:
    """x values for ``n`` intervals and the axis label: UTC dates when the start is known, else
    minutes, hours or days since the start (whichever keeps the numbers readable)."""
    t = np.arange(n, dtype=np.float64) * interval_s
    if start_unix is not None:
        return [datetime.fromtimestamp(start_unix + x, UTC) for x in t], "time (UTC)"
    span = n * interval_s
    if span <= 3 * 3600:
        return t / 60.0, "minutes since the start"
    if span <= 3 * 86_400:
        return t / 3600.0, "hours since the start"
    return t / 86_400.0, "days since the start"


def demand_figure(
    demand: FloatArray,
    *,
    interval_s: float,
    accuracy: Accuracy | None,
    start_unix: float | None,
    path: Path,
    title: str,
) -> Path:
    """Demand over time with the policy's forecast made one lead time earlier and its 90% band."""
    fig, (ax,) = _figure(3.8)
    x, label = time_axis(demand.size, interval_s, start_unix)
    scale, unit = _unit(demand)
    ax.plot(x, demand / scale, color="black", linewidth=0.9, label="demand (token work/s)")
    if accuracy is not None and accuracy.path_index.size:
        idx = accuracy.path_index
        xs = [x[i] for i in idx] if isinstance(x, list) else x[idx]
        lo, mid, hi = accuracy.path[:, 0], accuracy.path[:, 2], accuracy.path[:, -1]
        ax.fill_between(
            xs,
            lo / scale,
            hi / scale,
            color=OURS_COLOR,
            alpha=0.25,
            linewidth=0,
            label="forecast 5-95% band",
        )
        ax.plot(
            xs,
            mid / scale,
            color=OURS_COLOR,
            linewidth=1.0,
            label=f"forecast median, made {accuracy.lead_steps * interval_s:.0f} s ahead",
        )
    ax.set_xlabel(label)
    ax.set_ylabel(f"token work/s{unit}")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _unit(values: FloatArray) -> tuple[float, str]:
    peak = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
    if peak >= 1e6:
        return 1e6, " (millions)"
    if peak >= 1e3:
        return 1e3, " (thousands)"
    return 1.0, ""


def accuracy_figure(accuracy: Accuracy, *, warm_lead_s: float | None, path: Path) -> Path:
    """Weighted quantile loss and 90%-interval coverage against the forecast horizon."""
    fig, (top, bottom) = _figure(5.2, rows=2)
    h = np.asarray([s.horizon_s for s in accuracy.by_horizon])
    for model, color in ((POLICY_MODEL, OURS_COLOR), (accuracy.reference, "tab:gray")):
        name = "policy's forecaster" if model == POLICY_MODEL else f"{model} (reference)"
        wql = [_nan(s.figures[model].get("wql")) for s in accuracy.by_horizon]
        cov = [_nan(s.figures[model].get("coverage_90")) for s in accuracy.by_horizon]
        top.plot(h, wql, marker="o", markersize=3, color=color, label=name)
        bottom.plot(h, cov, marker="o", markersize=3, color=color, label=name)
    bottom.axhline(0.9, color="black", linestyle=":", linewidth=1, label="nominal 0.9")
    for ax in (top, bottom):
        ax.axvline(
            accuracy.lead_time_s, color="tab:red", linestyle="--", linewidth=1, label="cold start"
        )
        if warm_lead_s is not None and warm_lead_s < accuracy.lead_time_s:
            ax.axvline(
                warm_lead_s, color="tab:purple", linestyle="--", linewidth=1, label="warm start"
            )
        ax.grid(alpha=0.3)
    top.set_ylabel("weighted quantile loss")
    top.set_ylim(bottom=0)
    top.set_title("Forecast accuracy by horizon (rolling-origin backtest)", fontsize=10, loc="left")
    top.legend(fontsize=8, loc="upper left")
    bottom.set_ylabel("90% interval coverage")
    bottom.set_ylim(0, 1.02)
    bottom.set_xlabel("horizon (s)")
    bottom.legend(fontsize=8, loc="lower left")
    return _save(fig, path)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _clip(x: float) -> float:
    """Keep an attainment inside the logit scale's open interval."""
    return min(max(x, 1e-4), 1.0 - 1e-5)


def curve_figure(
    points: Sequence[CurvePoint], *, settings: Settings | None, target: float, path: Path
) -> Path:
    """SLO attainment (logit scale: 90%, 99%, 99.9% equally spaced) against GPU-hours: ours as a
    line over the head-room settings, each baseline's sweep as a connected front (one colour and
    marker per baseline, each point annotated with its setting), the references as points."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    fig, (ax,) = _figure(4.6)
    ours = sorted(
        (p for p in points if p.ours and p.gpu_hours and p.slo_attainment is not None),
        key=lambda p: p.setting or 0.0,
    )
    if ours:
        ax.plot(
            [p.gpu_hours for p in ours],
            [_clip(p.slo_attainment or 0.0) for p in ours],
            marker="o",
            color=OURS_COLOR,
            label="forecast (ours), by head-room setting",
        )
        for p in ours:
            ax.annotate(
                f"@{p.setting:g}",
                (p.gpu_hours or 0.0, _clip(p.slo_attainment or 0.0)),
                textcoords="offset points",
                xytext=(4, 5),
                fontsize=8,
                color=OURS_COLOR,
            )
    others = [p for p in points if not p.ours and p.gpu_hours and p.slo_attainment is not None]
    for p in others:
        if p.policy not in REFERENCES:
            continue
        ax.scatter(
            [p.gpu_hours],
            [_clip(p.slo_attainment or 0.0)],
            marker="*" if p.policy == ORACLE else "P",
            s=90,
            color=ORACLE_COLOR,
            zorder=3,
        )
        ax.annotate(
            p.label,
            (p.gpu_hours or 0.0, _clip(p.slo_attainment or 0.0)),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=8,
        )
    fronts: dict[str, list[CurvePoint]] = {}
    for p in others:
        if p.policy not in REFERENCES:
            fronts.setdefault(p.policy, []).append(p)
    for i, (policy, front) in enumerate(fronts.items()):
        color, marker = BASELINE_STYLES[i % len(BASELINE_STYLES)]
        # in the order of the setting, so the line shows where the knob moves the point
        front.sort(key=lambda p: p.setting or 0.0)
        ax.plot(
            [p.gpu_hours for p in front],
            [_clip(p.slo_attainment or 0.0) for p in front],
            marker=marker,
            markersize=5,
            linewidth=1.0,
            color=color,
            zorder=3,
            label=policy if len(front) == 1 else f"{policy}, by setting",
        )
        for p in front:
            ax.annotate(
                policy if p.setting is None else f"@{p.setting:g}",
                (p.gpu_hours or 0.0, _clip(p.slo_attainment or 0.0)),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color=color,
            )
    if settings is not None:
        chosen = next((p for p in ours if p.label == settings.policy), None)
        if chosen is not None:
            ax.scatter(
                [chosen.gpu_hours],
                [_clip(chosen.slo_attainment or 0.0)],
                s=220,
                facecolors="none",
                edgecolors="tab:red",
                linewidths=1.5,
                zorder=4,
                label=f"recommended: {chosen.label}",
            )
    ax.scatter([], [], marker="*", color=ORACLE_COLOR, s=90, label="oracle (clairvoyant)")
    if any(p.policy == ORACLE_LATE for p in others):
        ax.scatter([], [], marker="P", color=ORACLE_COLOR, s=90,
                   label="oracle-late (its plan, real start-up)")  # fmt: skip
    ax.axhline(_clip(target), color="black", linestyle=":", linewidth=1, label="SLO target")
    ax.set_yscale("logit")
    values = [_clip(p.slo_attainment or 0.0) for p in (*ours, *others)] + [_clip(target)]
    # pad by 0.4 logit units each way, so the extreme points and their labels stay inside
    low, high = _expit(_logit(min(values)) - 0.4), _expit(_logit(max(values)) + 0.4)
    ticks = [t for t in (0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999, 0.9999) if low <= t <= high]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(low, high)
    xs = [p.gpu_hours or 0.0 for p in (*ours, *others)]
    if xs:
        span = max(xs) - min(xs) or max(xs) or 1.0
        ax.set_xlim(min(xs) - 0.05 * span, max(xs) + 0.12 * span)
    ax.set_xlabel("GPU-hours over the history")
    ax.set_ylabel("SLO attainment")
    ax.set_title("SLO attainment vs GPU-hours (replayed history)", fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)


def replicas_figure(outputs: Mapping[str, RunOutput], *, path: Path, title: str) -> Path:
    """Replicas (desired and ready) and observed demand over time per run, as in the demo."""
    from autoscaler.offline.plotting import plot_replicas

    return plot_replicas(outputs, path, title)
