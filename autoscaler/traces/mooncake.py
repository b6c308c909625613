"""Reader for Mooncake JSONL traces (kvcache-ai/Mooncake ``traces/*.jsonl``).

One JSON object per line: ``{"timestamp": 0, "input_length": 40160, "output_length": 6,
"hash_ids": [...]}``. ``timestamp`` is in milliseconds relative to the trace start; ``hash_ids``
(512-token prefix blocks, for KV-cache reuse studies) is ignored because the simulator does not
model prefix caching. Other keys are ignored too, so the tool-agent and arXiv traces read as well.

Caution: the Qwen/Bailian traces use the same key names but a ``timestamp`` in *seconds*; they are
not this format and would be read 1,000 times too dense.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator

from autoscaler.errors import TraceFormatError
from autoscaler.traces._parsing import PathLike, RequestRow, open_text

FORMAT = "mooncake"
TIMESTAMP = "timestamp"
PROMPT = "input_length"
OUTPUT = "output_length"


def looks_like(first_line: str) -> bool:
    """True when the first line is a JSON object with Mooncake's keys (format detection)."""
    text = first_line.strip()
    if not text.startswith("{"):
        return False
    try:
        obj = json.loads(text)
    except ValueError:
        return False
    return isinstance(obj, dict) and all(k in obj for k in (TIMESTAMP, PROMPT, OUTPUT))


def iter_requests(path: PathLike) -> Iterator[RequestRow]:
    """Yield one :class:`RequestRow` per non-blank line, lazily; arrival in seconds.

    Raises :class:`~autoscaler.errors.TraceFormatError` for a line that is not a JSON object, a
    missing key, a timestamp that is not a finite number, or a length that is not a non-negative
    integer.
    """
    name = os.fspath(path)
    with open_text(path) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                raise TraceFormatError(name, line, f"not valid JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise TraceFormatError(
                    name, line, f"expected a JSON object, got {type(obj).__name__}"
                )
            yield RequestRow(
                _timestamp_ms(obj, name, line) / 1000.0,
                _length(obj, PROMPT, name, line),
                _length(obj, OUTPUT, name, line),
            )


def _field(obj: dict[str, object], key: str, path: str, line: int) -> object:
    try:
        return obj[key]
    except KeyError:
        raise TraceFormatError(path, line, f"missing key {key!r}") from None


def _timestamp_ms(obj: dict[str, object], path: str, line: int) -> float:
    value = _field(obj, TIMESTAMP, path, line)
    # bool is an int subclass; true/false in a timestamp is a data error, not 1/0 ms
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TraceFormatError(path, line, f"key {TIMESTAMP}: {value!r} is not a finite number")
    return float(value)


def _length(obj: dict[str, object], key: str, path: str, line: int) -> int:
    value = _field(obj, key, path, line)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TraceFormatError(path, line, f"key {key}: {value!r} is not an integer")
    if value < 0:
        raise TraceFormatError(path, line, f"key {key}: {value} is negative")
    return value
