"""What every trace reader shares: opening a file, the row type, and value parsers that name the
file, line and column when a value is wrong.

The readers are generators so a caller can stop early or stream a large file; all I/O errors are
translated here, once, into the project's :class:`~autoscaler.errors.InputError` tree so the CLI
prints one line that points at the file (and, for a bad row, at the line) instead of a traceback.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple, TextIO

from autoscaler.errors import InputError, TraceFormatError

PathLike = str | os.PathLike[str]


class RequestRow(NamedTuple):
    """One request as a reader yields it; ``arrival_s`` is on the file's own time axis (readers
    do not shift it: :func:`autoscaler.traces.records.from_columns` sorts and moves it to 0)."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int


@contextmanager
def open_text(path: PathLike) -> Iterator[TextIO]:
    """Open ``path`` as UTF-8 text (a leading BOM is dropped) for :mod:`csv` (``newline=""``).

    A missing, unreadable or binary file becomes an :class:`InputError` naming the path; the
    ``OSError`` / ``UnicodeDecodeError`` stays attached as the cause.
    """
    name = os.fspath(path)
    try:
        handle = open(name, encoding="utf-8-sig", newline="")
    except FileNotFoundError as exc:
        raise InputError(f"trace file not found: {name}") from exc
    except IsADirectoryError as exc:
        raise InputError(f"trace path is a directory, not a file: {name}") from exc
    except OSError as exc:
        raise InputError(f"cannot open trace file {name}: {exc.strerror or exc}") from exc
    with handle:
        try:
            yield handle
        except UnicodeDecodeError as exc:
            raise InputError(f"{name}: not a UTF-8 text file ({exc.reason})") from exc


def parse_count(text: str, column: str, path: str, line: int) -> int:
    """A non-negative token count. ``"374.0"`` is accepted (tools such as pandas write integer
    columns that way once a column had a missing value); ``"abc"``, ``"3.5"``, ``"-1"`` are not."""
    try:
        value = int(text)
    except ValueError:
        integral = _integral_float(text)
        if integral is None:
            raise TraceFormatError(
                path, line, f"column {column}: {text!r} is not an integer"
            ) from None
        value = integral
    if value < 0:
        raise TraceFormatError(path, line, f"column {column}: {value} is negative")
    return value


def parse_real(text: str, column: str, path: str, line: int) -> float:
    """A finite float (timestamps, rates); NaN and infinities are rejected because every later
    step (sorting, rate windows, Poisson draws) would silently misbehave on them."""
    try:
        value = float(text)
    except ValueError:
        raise TraceFormatError(path, line, f"column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceFormatError(path, line, f"column {column}: {text!r} is not a finite number")
    return value


def column_indices(
    header: list[str], wanted: tuple[str, ...], path: str, kind: str
) -> dict[str, int]:
    """Map each wanted column name to its position in ``header`` (line 1), matching names
    case-insensitively and ignoring surrounding blanks; a missing one is a format error."""
    positions = {name.strip().lower(): i for i, name in enumerate(header)}
    found: dict[str, int] = {}
    for name in wanted:
        index = positions.get(name.lower())
        if index is None:
            raise TraceFormatError(
                path,
                1,
                f"{kind} header lacks column {name!r} (header: {','.join(header)!r})",
            )
        found[name] = index
    return found


def _integral_float(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or not value.is_integer():
        return None
    return int(value)


def csv_rows(
    reader: Iterator[list[str]], header: list[str], name: str
) -> Iterator[tuple[int, list[str]]]:
    """Data rows of a ``csv.reader`` after its header, as (1-based line, row).

    Blank lines are skipped; a row whose column count differs from the header's raises
    :class:`TraceFormatError` naming the file and line, so every CSV format reports it alike.
    """
    width = len(header)
    for row in reader:
        if not row:
            continue
        line = int(getattr(reader, "line_num", 0))
        if len(row) != width:
            raise TraceFormatError(
                name, line, f"expected {width} columns ({','.join(header)}), got {len(row)}"
            )
        yield line, row


class CsvTable(NamedTuple):
    """A CSV trace opened by :func:`csv_table`."""

    name: str
    """The file, as errors name it."""
    header: list[str]
    columns: dict[str, int]
    """The wanted columns' positions."""
    rows: Iterator[tuple[int, list[str]]]
    """The data rows, as :func:`csv_rows` yields them."""


@contextmanager
def csv_table(path: PathLike, wanted: tuple[str, ...], kind: str) -> Iterator[CsvTable | None]:
    """A CSV trace with its header read and the ``wanted`` columns found (a missing one is a
    format error naming the file); None for an empty file. Every CSV reader opens its file so."""
    name = os.fspath(path)
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            yield None
            return
        index = column_indices(header, wanted, name, kind)
        yield CsvTable(name, header, index, csv_rows(reader, header, name))
