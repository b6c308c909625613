"""One entry point for every trace format: :func:`read_trace` (and :func:`detect_format`).

Each format has its own module with a lazy row generator (:mod:`~autoscaler.traces.azure`,
:mod:`~autoscaler.traces.mooncake`, :mod:`~autoscaler.traces.burstgpt`) or, for ServeGen's rate
windows, a reader plus a Poisson expansion (:mod:`~autoscaler.traces.servegen`). This module picks
the format, collects the rows into numpy columns in one pass and enforces what every consumer
needs: at least one request, arrivals sorted and starting at 0.

Adding a format: write ``<name>.py`` with ``FORMAT``, ``looks_like(first_line)`` and
``iter_requests(path)``, then add it to ``_ROW_READERS`` (alphabetical) below.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np

from autoscaler.errors import InputError, UnknownNameError
from autoscaler.traces import azure, burstgpt, mooncake, servegen
from autoscaler.traces._parsing import PathLike, RequestRow, open_text
from autoscaler.traces.records import Trace, from_columns

_ROW_READERS: dict[str, Callable[[PathLike], Iterator[RequestRow]]] = {
    azure.FORMAT: azure.iter_requests,
    burstgpt.FORMAT: burstgpt.iter_requests,
    mooncake.FORMAT: mooncake.iter_requests,
}
_DETECTORS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    (azure.FORMAT, azure.looks_like),
    (burstgpt.FORMAT, burstgpt.looks_like),
    (mooncake.FORMAT, mooncake.looks_like),
    (servegen.FORMAT, servegen.looks_like),
)
FORMATS: tuple[str, ...] = ("auto", *sorted([*_ROW_READERS, servegen.FORMAT]))
"""The values ``--format`` accepts."""

_ROW_DTYPE = np.dtype([("arrival_s", np.float64), ("prompt", np.int64), ("output", np.int64)])


def detect_format(path: PathLike) -> str:
    """The format of ``path`` judged from its first non-blank line (a CSV header or a JSON
    object). Raises :class:`InputError` when the file is missing, empty or unrecognised."""
    name = os.fspath(path)
    first = ""
    with open_text(path) as handle:
        for text in handle:
            if text.strip():
                first = text.strip()
                break
    if not first:
        raise InputError(f"{name}: the file is empty, so its trace format cannot be detected")
    for fmt, looks_like in _DETECTORS:
        if looks_like(first):
            return fmt
    shown = first if len(first) <= 120 else first[:117] + "..."
    raise InputError(
        f"{name}: cannot detect the trace format from the first line {shown!r}; "
        f"pass a format explicitly ({', '.join(FORMATS[1:])})"
    )


def read_trace(
    path: PathLike,
    fmt: str = "auto",
    *,
    servegen_model: str | None = None,
    seed: int = 0,
) -> Trace:
    """Read a request trace into a :class:`Trace` (arrivals sorted, first one at 0).

    ``fmt`` is one of :data:`FORMATS`. A ServeGen file holds request *rates*, not requests: pick
    one model with ``servegen_model`` and the windows are expanded into Poisson arrivals drawn
    with ``seed`` (:func:`autoscaler.traces.servegen.expand_to_requests`; the time axis then
    starts at the first window, not at the first request). ``seed`` is unused by other formats.

    Raises :class:`UnknownNameError` for an unknown format,
    :class:`~autoscaler.errors.TraceFormatError` for a malformed row (with path and line), and
    :class:`InputError` for a missing file, an empty trace, or a missing ServeGen model.
    """
    if fmt not in FORMATS:
        raise UnknownNameError("trace format", fmt, FORMATS)
    name = os.fspath(path)
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == servegen.FORMAT:
        return _read_servegen(path, servegen_model, seed)
    if servegen_model is not None:
        raise InputError(f"{name}: servegen_model applies to ServeGen traces, not {fmt} ones")
    rows = np.fromiter(_ROW_READERS[fmt](path), dtype=_ROW_DTYPE)
    if rows.size == 0:
        raise InputError(f"{name}: the {fmt} trace has no requests")
    return from_columns(name, fmt, rows["arrival_s"], rows["prompt"], rows["output"])


def _read_servegen(path: PathLike, model: str | None, seed: int) -> Trace:
    name = os.fspath(path)
    if model is None:
        models = servegen.list_models(path)
        raise InputError(
            f"{name} holds rate windows of several models; choose one with servegen_model "
            f"(--servegen-model): {', '.join(models)}"
        )
    windows = servegen.read_rate_windows(path, model)
    trace = servegen.expand_to_requests(windows, seed)
    if trace.requests == 0:
        raise InputError(f"{name}: model {model!r} has no requests in its rate windows")
    return trace
