"""A report's history: token-work demand per interval, and what the simulator replays.

Two sources, one shape (:class:`History`):

* **a trace file** (``--trace``): a request trace is kept whole for the request-level simulator
  and its demand is :func:`autoscaler.offline.series.trace_series` of kind ``token_work`` every 15 s
  (one scrape). A ServeGen file holds rates, not requests: the chosen model's
  :class:`~autoscaler.traces.servegen.RateWindows` are replayed in fluid mode and its demand is
  the window rate times the mean token work of a request of the length mixture the fluid runner
  assumes (:data:`autoscaler.traces.synthetic.AZURE_CONV_LENGTHS`), so the forecast and the replay
  see the same load.
* **Prometheus** (``--prometheus``): the workload's range, read by the ``collect`` the caller
  passes (the CLI passes :func:`autoscaler.live.collection.collect_history`, the queries the live
  loop's start-up backfill runs; offline code never imports the live loop itself). Demand per step
  is what the ``forecast`` policy computes each tick (token work of the completions plus the queue
  growth, with the engine's documented fallbacks); the replay is fluid, on the demand in requests
  per second (:meth:`SignalSnapshot.demand_requests_per_s`), with one window per step. A step where
  the workload's data is stale is a gap (NaN), as in a ServeGen file.

An empty range and an unknown workload are told apart (both are a clear :class:`InputError`): the
first has no series at all for the engine, the second has series, only for other workloads. An
unreachable Prometheus is its own error (:class:`~autoscaler.clients.prometheus.PrometheusError`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from autoscaler.clients.prometheus import PrometheusAPI
from autoscaler.config import WorkloadConfig, format_validation_error, prom_duration_seconds
from autoscaler.core.signals import SignalSnapshot, workload_key
from autoscaler.core.slo import SloSpec
from autoscaler.engines.base import EngineProfile
from autoscaler.engines.guards import memory_guard
from autoscaler.engines.promql import GroupingLabels, build_fleet_queries
from autoscaler.errors import InputError
from autoscaler.offline.series import DEFAULT_REQUEST_INTERVAL_S, trace_series
from autoscaler.policies.base import GPU_MEMORY_PRESSURE, PolicyContext
from autoscaler.policies.fallbacks import fill_demand
from autoscaler.traces.records import Trace
from autoscaler.traces.servegen import RateWindows

FloatArray = npt.NDArray[np.float64]


HistoryCollector = Callable[..., list[tuple[float, dict[str, SignalSnapshot]]]]
"""Reads the workloads' snapshots over a range, one set per step, called as
``collect(api, [workload], start=, end=, step=, engines=, window=, gpu_memory=)``: the CLI passes
:func:`autoscaler.live.collection.collect_history`."""


MAX_POINTS_PER_SERIES = 11_000
"""Prometheus refuses a range query that would return more points per series than this."""
PROMETHEUS_WINDOW_S = 60.0
"""Steps of a Prometheus history are whole minutes: the fluid replay plans per minute."""


@dataclass(frozen=True)
class History:
    """One workload's demand history and what the simulator replays of it.

    ``demand[i]`` is token work per second over ``[i, i + 1) * interval_s`` from the start (NaN:
    missing). Exactly one of ``trace`` (request-level replay) and ``windows`` (fluid replay) is
    set. ``start_unix`` is the wall-clock time of ``demand[0]`` when the source has one.
    """

    workload: str
    source: Mapping[str, object]
    interval_s: float
    demand: FloatArray
    weights: tuple[float, float]
    trace: Trace | None = None
    windows: RateWindows | None = None
    start_unix: float | None = None
    lengths: tuple[FloatArray, FloatArray] | None = None
    """Mean prompt and output tokens per request of each window of ``windows`` (NaN: unknown),
    from the history's own prompt and generation token rates; None when it has none (the fluid
    replay then assumes the Azure length mix)."""

    @property
    def mode(self) -> str:
        """``requests`` (request-level simulator) or ``fluid``."""
        return "requests" if self.trace is not None else "fluid"

    @property
    def duration_s(self) -> float:
        return float(self.demand.size * self.interval_s)


def workload_config(text: str, engine: str = "vllm") -> WorkloadConfig:
    """``--workload NAMESPACE/NAME`` as a :class:`WorkloadConfig` of ``engine``.

    The names are checked as the service config checks them (a DNS-1123 namespace and object
    name), since they end up in the manifests; the selector is only a placeholder (the history
    is read by the ``namespace`` and ``workload`` labels, not by pod labels).
    Raises :class:`InputError` naming the flag.
    """
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise InputError(f"--workload must be NAMESPACE/NAME, got {text!r}")
    try:
        return WorkloadConfig(
            namespace=namespace, name=name, engine=engine, selector={"workload": name}
        )
    except ValidationError as e:
        raise InputError(format_validation_error("--workload", e)) from e


_RELATIVE = re.compile(r"now(?:\s*-\s*(\S+))?")


def parse_time(text: str, *, now: float) -> float:
    """A time flag as Unix seconds: ``now``, ``now-6h`` (a Prometheus duration), Unix seconds,
    or an ISO 8601 / RFC 3339 date-time (UTC when it has no offset)."""
    raw = text.strip()
    rel = _RELATIVE.fullmatch(raw)
    if rel:
        if rel.group(1) is None:
            return now
        try:
            return now - prom_duration_seconds(rel.group(1))
        except ValueError:
            raise InputError(
                f"{text!r}: expected now-<duration> such as now-6h or now-14d"
            ) from None
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise InputError(f"{text!r} is not a time")
        return value
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise InputError(
            f"{text!r} is not a time: use Unix seconds, an RFC 3339 date-time "
            "(2024-05-01T12:00:00Z) or now-<duration> (now-6h)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def default_step(start: float, end: float) -> float:
    """The smallest whole-minute step that keeps a range query under Prometheus' point limit."""
    span = max(0.0, end - start)
    minutes = max(1, math.ceil(span / PROMETHEUS_WINDOW_S / (MAX_POINTS_PER_SERIES - 1)))
    return minutes * PROMETHEUS_WINDOW_S


def _format_unix(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- trace files ---------------------------------------------------------------------------


def mean_request_work(weights: tuple[float, float]) -> float:
    """Mean token work of one request of the fluid runner's length mixture (``run_fluid``)."""
    from autoscaler.simulation.fluid_model import length_sample
    from autoscaler.traces.synthetic import AZURE_CONV_LENGTHS

    prompts, outputs = length_sample(AZURE_CONV_LENGTHS)
    return float(np.mean(prompts * weights[0] + np.maximum(outputs, 1) * weights[1]))


def from_trace(
    path: str | os.PathLike[str],
    fmt: str = "auto",
    *,
    weights: tuple[float, float],
    servegen_model: str | None = None,
    rate_scale: float = 1.0,
    workload: str = "default/llm",
) -> History:
    """Read a trace file (any format ``simulate`` reads) into a :class:`History`.

    ``rate_scale`` is applied here, once (the copies of :func:`autoscaler.traces.scaling.
    scale_rate` with seed 0, or the rates times K), so the forecast, the plots and the replay all
    see the same, scaled history. Raises :class:`InputError` for a bad file, format or model.
    """
    from autoscaler.traces import servegen
    from autoscaler.traces.readers import detect_format, read_trace
    from autoscaler.traces.scaling import scale_rate

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise InputError(f"{name}: no such file")
    resolved = detect_format(path) if fmt == "auto" else fmt
    source: dict[str, object] = {"kind": "trace", "path": name, "format": resolved}
    if rate_scale != 1.0:
        source["rate_scale"] = rate_scale
    if resolved == servegen.FORMAT:
        if servegen_model is None:
            raise InputError(
                f"{name} is a ServeGen rate file: pick a model with --servegen-model "
                f"({', '.join(servegen.list_models(path))})"
            )
        windows = servegen.read_rate_windows(path, servegen_model)
        if rate_scale != 1.0:
            windows = replace(windows, rate_rps=windows.rate_rps * rate_scale)
        source["model"] = servegen_model
        demand = np.asarray(windows.rate_rps * mean_request_work(weights), dtype=np.float64)
        return History(
            workload=workload,
            source=source,
            interval_s=windows.window_s,
            demand=demand,
            weights=weights,
            windows=windows,
        )
    trace = read_trace(path, resolved, servegen_model=servegen_model)
    if rate_scale != 1.0:
        trace = scale_rate(trace, rate_scale, seed=0)
    source["requests"] = trace.requests
    demand = trace_series(
        trace, interval_s=DEFAULT_REQUEST_INTERVAL_S, kind="token_work", weights=weights
    )
    return History(
        workload=workload,
        source=source,
        interval_s=DEFAULT_REQUEST_INTERVAL_S,
        demand=demand,
        weights=weights,
        trace=trace,
    )


# -- Prometheus ----------------------------------------------------------------------------


def _demand(snap: SignalSnapshot, weights: tuple[float, float]) -> tuple[float, float]:
    """(token work/s, requests/s) of one fresh snapshot, as the ``forecast`` policy counts it:
    completions plus queue growth, with the engine's documented fallbacks."""
    filled, _ = fill_demand(snap, PolicyContext(slo=SloSpec(), max_replicas=1))
    if filled.prompt_tokens_rate is None or filled.generation_tokens_rate is None:
        return math.nan, math.nan
    wp, wd = weights
    mean_work = (filled.mean_prompt_tokens or 0.0) * wp + (filled.mean_output_tokens or 0.0) * wd
    served = filled.prompt_tokens_rate * wp + filled.generation_tokens_rate * wd
    growth = filled.waiting_growth_rate or 0.0
    requests = filled.demand_requests_per_s()
    return max(0.0, served + growth * mean_work), math.nan if requests is None else requests


def _mean_lengths(snap: SignalSnapshot) -> tuple[float, float]:
    """(mean prompt, mean output) tokens per request of one snapshot, from the engine's own token
    counters (NaN where it exports none: no fallback to an assumed mix)."""
    rate = snap.request_rate
    if rate is None or not rate > 0.0:
        return math.nan, math.nan
    prompt = snap.prompt_tokens_rate
    output = snap.generation_tokens_rate
    return (
        prompt / rate if prompt is not None and prompt >= 0.0 else math.nan,
        output / rate if output is not None and output >= 0.0 else math.nan,
    )


def _workloads_seen(
    api: PrometheusAPI,
    workload: WorkloadConfig,
    profile: EngineProfile,
    *,
    start: float,
    end: float,
    step: float,
    window: str,
) -> list[str]:
    """``namespace/workload`` of every series the engine's request-rate query has in the range.

    Asked first, so that an unreachable Prometheus fails here with its own one-line error (the
    history's batched queries only log failures, as the live loop must), and so that an empty
    range and an unknown workload are told apart.
    """
    key = workload_key(workload.namespace, workload.name)
    labels = GroupingLabels()
    queries = build_fleet_queries({key: profile}, labels, window)[profile.name]
    core = [q for q in queries if q.field == "request_rate"] or list(queries[:1])
    seen: set[str] = set()
    for s in api.query_range(core[0].promql, start, end, step):
        ns, name = s.labels.get(labels.namespace), s.labels.get(labels.workload)
        if ns and name and bool(np.isfinite(s.values).any()):
            seen.add(workload_key(ns, name))
    return sorted(seen)


def gpu_memory_summary(
    snaps: Sequence[SignalSnapshot], profile: EngineProfile
) -> dict[str, object]:
    """The replicas' GPU memory over a history, as the report states it.

    ``steps``: steps with DCGM data joined; ``mean``: mean of the fleet means; ``max``: the
    fullest replica at any step; ``pressed_steps``: steps where that replica was at or above
    the memory-pressure share; ``guard``: whether the memory-pressure guard is live on the
    engine (:func:`autoscaler.engines.guards.memory_guard`).
    """
    pressure = GPU_MEMORY_PRESSURE
    means = [s.gpu_memory_usage for s in snaps if s.gpu_memory_usage is not None]
    peaks = [s.gpu_memory_usage_max for s in snaps if s.gpu_memory_usage_max is not None]
    return {
        "steps": len(peaks),
        "mean": float(np.mean(means)) if means else None,
        "max": max(peaks) if peaks else None,
        "pressed_steps": sum(1 for p in peaks if p >= pressure),
        "pressure": pressure,
        "guard": memory_guard(profile),
    }


def from_prometheus(
    api: PrometheusAPI,
    workload: WorkloadConfig,
    *,
    start: float,
    end: float,
    profile: EngineProfile,
    weights: tuple[float, float],
    collect: HistoryCollector,
    step: float | None = None,
    window: str = "1m",
    url: str = "",
    gpu_memory: EngineProfile | None = None,
) -> History:
    """A workload's Prometheus history from ``start`` to ``end`` (Unix seconds), read with
    ``collect`` (the live loop's backfill queries, passed in: see the module docstring).

    With ``gpu_memory`` (the dcgm-exporter profile), the source also summarises the replicas'
    GPU memory over the range (:func:`gpu_memory_summary`), which the report shows.

    ``step`` (default :func:`default_step`) must be a whole number of minutes, and the range must
    fit Prometheus' point limit. Raises :class:`InputError` when the range is empty or the
    workload unknown (with the workloads that do have data), and lets a
    :class:`~autoscaler.clients.prometheus.PrometheusError` (unreachable, bad query) through.
    """
    if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
        raise InputError(
            f"--end ({_format_unix(end) if math.isfinite(end) else end}) must be after --start "
            f"({_format_unix(start) if math.isfinite(start) else start})"
        )
    step = default_step(start, end) if step is None else step
    minutes = step / PROMETHEUS_WINDOW_S
    if not (math.isfinite(step) and step > 0 and abs(minutes - round(minutes)) < 1e-9):
        raise InputError(f"--step must be a whole number of minutes (60, 120, ...), got {step:g}")
    points = int((end - start) // step) + 1
    if points > MAX_POINTS_PER_SERIES:
        raise InputError(
            f"{points} points per series from {_format_unix(start)} to {_format_unix(end)} at "
            f"--step {step:g}: Prometheus answers at most {MAX_POINTS_PER_SERIES}; use --step "
            f"{default_step(start, end):g} or more"
        )
    key = workload_key(workload.namespace, workload.name)
    where = f"between {_format_unix(start)} and {_format_unix(end)}"
    seen = _workloads_seen(api, workload, profile, start=start, end=end, step=step, window=window)
    if not seen:
        raise InputError(
            f"Prometheus{' at ' + url if url else ''} has no {profile.name} request-rate series "
            f"{where}: the range is empty (check --start/--end, --engine, and that the "
            "engine's metrics carry namespace and workload labels)"
        )
    if key not in seen:
        shown = ", ".join(seen[:8]) + (f" and {len(seen) - 8} more" if len(seen) > 8 else "")
        raise InputError(
            f"unknown workload {key}: Prometheus has {profile.name} series {where} only for {shown}"
        )
    history = collect(
        api,
        [workload],
        start=start,
        end=end,
        step=step,
        engines={workload.engine: profile},
        window=window,
        gpu_memory=gpu_memory,
    )
    work = np.full(len(history), np.nan)
    rps = np.full(len(history), np.nan)
    prompt_len = np.full(len(history), np.nan)
    output_len = np.full(len(history), np.nan)
    for i, (_, snapshots) in enumerate(history):
        snap = snapshots[key]
        if not snap.stale:
            work[i], rps[i] = _demand(snap, weights)
            prompt_len[i], output_len[i] = _mean_lengths(snap)
    if not np.isfinite(work).any():
        raise InputError(
            f"workload {key} has {profile.name} series {where}, but no step with every demand "
            "signal the policy needs (request rate and queue growth, plus token rates or their "
            "fallbacks): nothing to report on"
        )
    first = int(np.argmax(np.isfinite(work)))
    last = int(len(work) - np.argmax(np.isfinite(work[::-1])))
    work, rps = work[first:last], rps[first:last]
    prompt_len, output_len = prompt_len[first:last], output_len[first:last]
    measured = bool(np.isfinite(prompt_len).any() and np.isfinite(output_len).any())
    times = np.asarray([t for t, _ in history[first:last]], dtype=np.float64)
    windows = RateWindows(
        path=url or "prometheus",
        category="prometheus",
        model=key,
        window_start_s=times - times[0],
        rate_rps=rps,
        active_clients=np.zeros(rps.size, dtype=np.int64),
        top_client_rate_rps=np.full(rps.size, np.nan),
        client_cv_mean=np.full(rps.size, np.nan),
        window_s=step,
    )
    source: dict[str, object] = {
        "kind": "prometheus",
        "url": url,
        "workload": key,
        "engine": profile.name,
        "start": _format_unix(float(times[0])),
        "end": _format_unix(float(times[-1]) + step),
        "step_s": step,
        "missing_steps": int(np.sum(~np.isfinite(work))),
    }
    if gpu_memory is not None:
        snaps = [snapshots[key] for _, snapshots in history[first:last]]
        source["gpu_memory"] = gpu_memory_summary(snaps, profile)
    return History(
        workload=key,
        source=source,
        interval_s=step,
        demand=np.asarray(work, dtype=np.float64),
        weights=weights,
        windows=windows,
        start_unix=float(times[0]),
        lengths=(prompt_len, output_len) if measured else None,
    )
