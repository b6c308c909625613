"""ServeGen aggregate rate windows: a reader and an expansion into requests.

Format (``traces/servegen_aggregate_rate_10min.csv``, derived from alibaba/ServeGen): CSV with
``category,model,window_start_s,total_rate_rps,active_clients,top_client_rate_rps,
rate_weighted_cv``; one row per model and 600 s window, several models per file. It holds request
*rates*, not requests, so it is read into :class:`RateWindows` (one model at a time) and, for the
request-level simulator, turned into arrivals by :func:`expand_to_requests`.

Two readings from DESIGN.md ("Traces"):

* Missing windows. A window with rate 0 in a model that is otherwise busy is a collection gap,
  not idle time (m-mid has 84 such windows, m-small 37; ``active_clients`` is 0 there too). The
  reader marks them NaN. "Busy" is made precise as: at the model's median non-zero rate a 600 s
  window would hold at least :data:`GAP_MIN_EXPECTED_REQUESTS` requests, so a true zero count has
  probability below ``exp(-20)``. A model that is idle for real (a median of a few requests per
  window) keeps its zeros. Rows absent from the file's 600 s grid are missing too.
* Arrivals within a window. ``total_rate_rps`` is a sum over many independent clients, and a
  superposition of many independent streams is close to Poisson, so :func:`expand_to_requests`
  draws Poisson arrivals at each window's rate. The ``rate_weighted_cv`` column is a rate-weighted
  *mean of the per-client* inter-arrival CVs, NOT the CV of the summed stream: it says individual
  clients are bursty (values of 30 occur), not that the aggregate is. It is kept in
  :attr:`RateWindows.client_cv_mean` for reference and not used.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from autoscaler.errors import InputError, TraceFormatError, UnknownNameError
from autoscaler.traces._parsing import (
    PathLike,
    csv_table,
    parse_count,
    parse_real,
)
from autoscaler.traces.records import Trace
from autoscaler.traces.synthetic import AZURE_CONV_LENGTHS, LengthMixture

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FORMAT = "servegen"
WINDOW_S = 600.0
"""Length of one rate window (the file aggregates ServeGen's 10-minute client windows)."""
GAP_MIN_EXPECTED_REQUESTS = 20.0
"""A zero window is a gap when the model's median non-zero rate x 600 s is at least this."""
DEFAULT_MAX_REQUESTS = 5_000_000
"""Refuse expansions expected to exceed this (about 120 MB of columns): the 14-day language
models would need 10^8 to 10^9 requests; those run in the simulator's fluid mode instead."""

MODEL = "model"
CATEGORY = "category"
WINDOW_START = "window_start_s"
RATE = "total_rate_rps"
CLIENTS = "active_clients"
TOP_CLIENT = "top_client_rate_rps"
CLIENT_CV = "rate_weighted_cv"


class ServeGenRow(NamedTuple):
    """One row of the file, parsed; ``line`` is its 1-based line number."""

    line: int
    category: str
    model: str
    window_start_s: float
    rate_rps: float
    active_clients: int
    top_client_rate_rps: float
    client_cv_mean: float


@dataclass(frozen=True)
class RateWindows:
    """One model's request rate in consecutive windows of ``window_s`` seconds.

    Arrays are aligned, one entry per window on a regular grid from the model's first window;
    ``rate_rps`` is NaN where the window is missing (a collection gap, see the module docstring).
    """

    path: str
    category: str
    model: str
    window_start_s: FloatArray
    rate_rps: FloatArray
    active_clients: IntArray
    top_client_rate_rps: FloatArray
    client_cv_mean: FloatArray
    """Rate-weighted mean of per-client CVs (NaN when no client); not the CV of the total."""
    window_s: float = WINDOW_S

    @property
    def n_windows(self) -> int:
        return int(self.rate_rps.shape[0])

    @property
    def missing(self) -> npt.NDArray[np.bool_]:
        """True for windows with no usable rate."""
        return np.asarray(~np.isfinite(self.rate_rps), dtype=np.bool_)

    @property
    def duration_s(self) -> float:
        return self.n_windows * self.window_s

    def window_slice(self, first: int, count: int | None = None) -> RateWindows:
        """Windows ``first`` .. ``first + count - 1`` (all from ``first`` when count is None)."""
        stop = self.n_windows if count is None else first + count
        if not 0 <= first < stop <= self.n_windows:
            raise InputError(
                f"window slice [{first}, {stop}) is outside the {self.n_windows} windows of "
                f"{self.model}"
            )
        part = slice(first, stop)
        return replace(
            self,
            window_start_s=self.window_start_s[part],
            rate_rps=self.rate_rps[part],
            active_clients=self.active_clients[part],
            top_client_rate_rps=self.top_client_rate_rps[part],
            client_cv_mean=self.client_cv_mean[part],
        )


def looks_like(first_line: str) -> bool:
    """True when a header line names the ServeGen rate-window columns (format detection)."""
    names = {name.strip().lower() for name in first_line.split(",")}
    return all(column in names for column in (MODEL, WINDOW_START, RATE))


def iter_rows(path: PathLike) -> Iterator[ServeGenRow]:
    """Yield every row of the file, lazily. ``model``, ``window_start_s`` and ``total_rate_rps``
    are required columns; the others default to empty / 0 / NaN when the header lacks them.

    Raises :class:`~autoscaler.errors.TraceFormatError` for a wrong column count, a non-numeric
    or negative rate, or an unparsable client count.
    """
    with csv_table(path, (MODEL, WINDOW_START, RATE), "ServeGen") as table:
        if table is None:
            return
        name, required = table.name, table.columns
        lowered = [h.strip().lower() for h in table.header]
        optional = {
            c: lowered.index(c) for c in (CATEGORY, CLIENTS, TOP_CLIENT, CLIENT_CV) if c in lowered
        }
        for line, row in table.rows:
            rate = parse_real(row[required[RATE]], RATE, name, line)
            if rate < 0:
                raise TraceFormatError(name, line, f"column {RATE}: {rate} is negative")
            yield ServeGenRow(
                line=line,
                category=row[optional[CATEGORY]].strip() if CATEGORY in optional else "",
                model=row[required[MODEL]].strip(),
                window_start_s=parse_real(row[required[WINDOW_START]], WINDOW_START, name, line),
                rate_rps=rate,
                active_clients=_optional_count(row, optional.get(CLIENTS), name, line),
                top_client_rate_rps=_optional_real(
                    row, optional.get(TOP_CLIENT), TOP_CLIENT, name, line
                ),
                client_cv_mean=_optional_real(row, optional.get(CLIENT_CV), CLIENT_CV, name, line),
            )


def list_models(path: PathLike) -> list[str]:
    """The models in the file, in order of first appearance."""
    seen: dict[str, None] = {}
    for row in iter_rows(path):
        seen.setdefault(row.model, None)
    return list(seen)


def read_rate_windows(path: PathLike, model: str) -> RateWindows:
    """Read one model's windows onto a regular 600 s grid; gaps (absent rows, zero windows of a
    busy model) become NaN rates.

    Raises :class:`UnknownNameError` listing the file's models when ``model`` is not among them,
    and :class:`~autoscaler.errors.TraceFormatError` for a window start off the 600 s grid or a
    window given twice.
    """
    name = os.fspath(path)
    models: dict[str, None] = {}
    rows: list[ServeGenRow] = []
    for row in iter_rows(path):
        models.setdefault(row.model, None)
        if row.model == model:
            rows.append(row)
    if not rows:
        if not models:
            raise InputError(f"{name}: the ServeGen file has no rate windows")
        raise UnknownNameError("servegen model", model, list(models))

    origin = min(r.window_start_s for r in rows)
    slots: dict[int, ServeGenRow] = {}
    for r in rows:
        position = (r.window_start_s - origin) / WINDOW_S
        index = round(position)
        if abs(position - index) > 1e-6:
            raise TraceFormatError(
                name,
                r.line,
                f"column {WINDOW_START}: {r.window_start_s} is not on the "
                f"{WINDOW_S:.0f} s grid that starts at {origin}",
            )
        if index in slots:
            raise TraceFormatError(
                name,
                r.line,
                f"window {r.window_start_s} of {model} already given on line {slots[index].line}",
            )
        slots[index] = r

    n = max(slots) + 1
    rate = np.full(n, np.nan)
    clients = np.zeros(n, dtype=np.int64)
    top = np.full(n, np.nan)
    cv = np.full(n, np.nan)
    for index, r in slots.items():
        rate[index] = r.rate_rps
        clients[index] = r.active_clients
        top[index] = r.top_client_rate_rps
        cv[index] = r.client_cv_mean
    positive = rate[np.isfinite(rate) & (rate > 0)]
    if positive.size and float(np.median(positive)) * WINDOW_S >= GAP_MIN_EXPECTED_REQUESTS:
        rate[rate == 0] = np.nan
    return RateWindows(
        path=name,
        category=rows[0].category,
        model=model,
        window_start_s=origin + np.arange(n, dtype=np.float64) * WINDOW_S,
        rate_rps=rate,
        active_clients=clients,
        top_client_rate_rps=top,
        client_cv_mean=cv,
    )


def expand_to_requests(
    windows: RateWindows,
    seed: int,
    *,
    lengths: LengthMixture = AZURE_CONV_LENGTHS,
    max_requests: int = DEFAULT_MAX_REQUESTS,
) -> Trace:
    """Draw requests from the windows: Poisson counts at each window's rate, uniform arrival
    times within the window (a Poisson process given its count), lengths from ``lengths``
    (by default the synthetic workload's Azure-fitted mixture, since ServeGen publishes no
    lengths with these rates). Missing windows produce no requests.

    The time axis starts at the first window's start, so window ``i`` covers
    ``[i x 600, (i + 1) x 600)`` and ``duration_s`` is the windows' total length (a fluid
    simulation of the same windows lines up exactly). Deterministic for a seed.

    Raises :class:`InputError` when the expected number of requests exceeds ``max_requests``:
    select windows with :meth:`RateWindows.window_slice` first.
    """
    rate = windows.rate_rps
    present = np.isfinite(rate)
    expected = float(np.sum(rate[present]) * windows.window_s)
    if expected > max_requests:
        raise InputError(
            f"{windows.path}: {windows.model} would expand to about {expected:,.0f} requests "
            f"(limit {max_requests:,}); select fewer windows (RateWindows.window_slice) or use "
            "the fluid mode for multi-day rate traces"
        )
    rng = np.random.default_rng(seed)
    counts = np.zeros(windows.n_windows, dtype=np.int64)
    counts[present] = rng.poisson(rate[present] * windows.window_s)
    offsets = windows.window_start_s - windows.window_start_s[0]
    arrivals = np.repeat(offsets, counts) + rng.uniform(0.0, windows.window_s, int(counts.sum()))
    arrivals.sort(kind="stable")
    prompt, output = lengths.sample(rng, arrivals.size)
    return Trace(
        path=windows.path,
        format=FORMAT,
        arrival_s=arrivals,
        prompt_tokens=prompt,
        output_tokens=output,
        duration_s=windows.duration_s,
    )


def _optional_count(row: list[str], index: int | None, path: str, line: int) -> int:
    if index is None or not row[index].strip():
        return 0
    return parse_count(row[index], CLIENTS, path, line)


def _optional_real(row: list[str], index: int | None, column: str, path: str, line: int) -> float:
    if index is None or not row[index].strip():
        return math.nan
    return parse_real(row[index], column, path, line)
