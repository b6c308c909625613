"""Run the report's steps in order and write its directory.

:func:`build_report` gathers nothing itself (the caller hands it a
:class:`~autoscaler.offline.report.history.History`) and writes nothing; :func:`write_report` draws
the plots and writes every file. Progress is reported through the runner's ``(name, fraction)``
callback, one named step after another, so the CLI's rich bar (or nothing, in a pipe) follows
it; :func:`step_count` says how many steps to expect.

What is written to ``--out``:

| file | holds |
| --- | --- |
| ``report.html`` | everything, one self-contained page (plots embedded as PNG data URIs) |
| ``report.md`` | the same, as Markdown linking ``plots/*.png`` |
| ``report.json`` | the figures: ``simulate --json``, accuracy by horizon, settings, token budgets |
| ``hpa.yaml`` | the HorizontalPodAutoscaler |
| ``keda-scaledobject.yaml`` | the ScaledObject and its TriggerAuthentication |
| ``pd-roles-*.yaml`` | with ``--disaggregation``: an HPA and a ScaledObject per role |
| ``plots/*.png`` | curve, demand, accuracy (and replicas, for a request trace) |
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from autoscaler.errors import InputError
from autoscaler.offline.report import manifests
from autoscaler.offline.report.accuracy import Accuracy, backtest
from autoscaler.offline.report.contents import Report
from autoscaler.offline.report.disaggregation import disaggregation
from autoscaler.offline.report.engine_settings import EngineSettings, compare_budgets
from autoscaler.offline.report.history import History
from autoscaler.offline.report.recommend import (
    Evidence,
    curve_points,
    recommend,
)
from autoscaler.offline.report.replay import replay, replica_timelines
from autoscaler.simulation.runner import REFERENCES, RunRequest

Progress = Callable[[str, float], None]

BACKTEST = "backtesting the forecast"
TIMELINES = "replica timelines"
ENGINE = "engine settings"
NO_ENGINE_SETTINGS = (
    "The token-budget comparison needs a request-level history (a request trace): the budget "
    "changes how each prompt is chunked, which a rate history cannot show."
)
WRITING = "writing the report"

PLOTS = ("curve", "demand", "accuracy", "replicas")
"""Plot names in page order (``replicas`` only for a request-level replay)."""


def step_count(mode: str, request: RunRequest) -> int:
    """How many progress steps :func:`build_report` and :func:`write_report` take for a history
    of ``mode`` (:attr:`History.mode`)."""
    runs = (len(request.policies) + len(REFERENCES)) * (request.seeds if mode == "requests" else 1)
    timelines = 1 + len(REFERENCES) if mode == "requests" else 0  # the chosen policy + references
    return 1 + runs + timelines + 1 + 1  # backtest, runs, timelines, engine settings, writing


def build_report(
    history: History,
    request: RunRequest,
    *,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.perf_counter,
    disaggregated: bool = False,
) -> Report:
    """Backtest, replay, recommend and render the manifests for ``history``; with
    ``disaggregated``, also compare it with a prefill/decode fleet (:mod:`.disaggregation`).

    ``request.policies`` are the policies to replay (``forecast@SETTING``s and baselines, see
    :func:`autoscaler.offline.report.replay.policy_labels`). A history too short to backtest still
    gets a report, without the accuracy section (``accuracy_note`` says why).
    """

    def step(name: str, frac: float) -> None:
        if progress is not None:
            progress(name, frac)

    timings: dict[str, float] = {}
    started = clock()
    step(BACKTEST, 0.0)
    from autoscaler.policies.forecast import default_forecaster

    lifecycle = request.lifecycle
    accuracy: Accuracy | None
    note: str | None = None
    try:
        accuracy = backtest(
            history.demand,
            interval_s=history.interval_s,
            lead_time_s=lifecycle.cold_s if lifecycle.cold_s > 0 else history.interval_s,
            policy_forecaster=default_forecaster(),
        )
    except InputError as exc:
        accuracy, note = None, str(exc)
    step(BACKTEST, 1.0)
    timings["backtest"] = clock() - started

    started = clock()
    simulation = replay(history, request, progress)
    timings["replay"] = clock() - started
    policies = simulation["policies"]
    assert isinstance(policies, Mapping)
    points = curve_points(policies)
    namespace, _, name = history.workload.partition("/")
    trace_info = simulation.get("trace")
    duration = history.duration_s
    if isinstance(trace_info, Mapping) and isinstance(trace_info.get("duration_s"), int | float):
        duration = float(trace_info["duration_s"])
    settings = recommend(
        Evidence(
            namespace=namespace,
            name=name,
            points=points,
            slo=request.slo,
            demand=history.demand,
            interval_s=history.interval_s,
            duration_s=duration,
            gpus_per_replica=request.profile.tp,
            lifecycle=lifecycle,
            accuracy=accuracy,
            replica_cap=request.max_replicas,
        )
    )
    started = clock()
    timelines = replica_timelines(history, request, settings.policy, progress)
    timings["timelines"] = clock() - started
    started = clock()
    engine, engine_note = engine_settings(history, request, progress)
    timings["engine_settings"] = clock() - started
    pd, pd_note = None, None
    if disaggregated:
        started = clock()
        pd, why = disaggregation(history, request)
        pd_note = why or None
        timings["disaggregation"] = clock() - started
    return Report(
        history=history,
        request=request,
        accuracy=accuracy,
        accuracy_note=note,
        simulation=simulation,
        points=points,
        settings=settings,
        hpa_yaml=manifests.hpa_yaml(settings),
        keda_yaml=manifests.keda_yaml(settings),
        timelines=timelines,
        timings_s=timings,
        engine_settings=engine,
        engine_settings_note=engine_note,
        disaggregation=pd,
        disaggregation_note=pd_note,
    )


def engine_settings(
    history: History, request: RunRequest, progress: Progress | None = None
) -> tuple[EngineSettings | None, str | None]:
    """The token-budget comparison on a request-level history, or None and the reason."""

    def step(frac: float) -> None:
        if progress is not None:
            progress(ENGINE, frac)

    step(0.0)
    if history.trace is None:
        step(1.0)
        return None, NO_ENGINE_SETTINGS
    result = compare_budgets(
        history.trace,
        request.profile,
        request.slo,
        tick_s=request.tick_s,
        cache_dir=request.oracle_cache,
        progress=lambda frac: step(min(frac, 0.999)),
    )
    step(1.0)
    return result, None


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    html: Path
    markdown: Path
    json: Path
    hpa: Path
    keda: Path
    plots: Mapping[str, Path]
    roles: tuple[Path, ...] = ()
    """``pd-roles-hpa.yaml`` and ``pd-roles-keda.yaml``, with ``--disaggregation``."""


def draw_plots(report: Report, plots_dir: Path) -> dict[str, Path]:
    """Every plot of the report as ``plots_dir/<name>.png``, in page order."""
    from autoscaler.offline.report import figures

    h = report.history
    out: dict[str, Path] = {}
    out["curve"] = figures.curve_figure(
        report.points,
        settings=report.settings,
        target=report.request.slo.attainment_target,
        path=plots_dir / "curve.png",
    )
    out["demand"] = figures.demand_figure(
        h.demand,
        interval_s=h.interval_s,
        accuracy=report.accuracy,
        start_unix=h.start_unix,
        path=plots_dir / "demand.png",
        title=f"Demand of {h.workload} and the policy's forecast",
    )
    if report.accuracy is not None:
        out["accuracy"] = figures.accuracy_figure(
            report.accuracy,
            warm_lead_s=report.settings.warm_lead_time_s,
            path=plots_dir / "accuracy.png",
        )
    if report.timelines is not None:
        out["replicas"] = figures.replicas_figure(
            report.timelines,
            path=plots_dir / "replicas.png",
            title=f"Replicas over time: {report.settings.policy} and the oracle (seed 0)",
        )
    return out


def write_report(
    report: Report,
    out_dir: Path,
    *,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> ReportFiles:
    """Draw the plots and write every file of the report into ``out_dir`` (created)."""
    from autoscaler.offline.report.document import build_document
    from autoscaler.offline.report.html_page import render_html
    from autoscaler.offline.report.markdown_summary import render_markdown

    if progress is not None:
        progress(WRITING, 0.0)
    started = clock()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot create the directory: {exc}") from None
    plots = draw_plots(report, out_dir / "plots")
    images = {name: path.read_bytes() for name, path in plots.items()}
    report.timings_s["render"] = clock() - started
    doc = build_document(report, available=tuple(plots))
    files = ReportFiles(
        html=out_dir / "report.html",
        markdown=out_dir / "report.md",
        json=out_dir / "report.json",
        hpa=out_dir / "hpa.yaml",
        keda=out_dir / "keda-scaledobject.yaml",
        plots=plots,
    )
    files.html.write_text(render_html(doc, images), encoding="utf-8")
    files.markdown.write_text(
        render_markdown(doc, {name: f"plots/{p.name}" for name, p in plots.items()}),
        encoding="utf-8",
    )
    files.hpa.write_text(report.hpa_yaml, encoding="utf-8")
    files.keda.write_text(report.keda_yaml, encoding="utf-8")
    if report.disaggregation is not None:
        roles = (out_dir / "pd-roles-hpa.yaml", out_dir / "pd-roles-keda.yaml")
        roles[0].write_text(report.disaggregation.hpa_yaml, encoding="utf-8")
        roles[1].write_text(report.disaggregation.keda_yaml, encoding="utf-8")
        files = dataclasses.replace(files, roles=roles)
    files.json.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if progress is not None:
        progress(WRITING, 1.0)
    return files
