"""The in-memory form of a request trace: three aligned numpy columns.

Columns rather than objects because the simulator replays hundreds of thousands of requests and
rate scaling, sorting and slicing are then single numpy operations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Trace:
    """Requests sorted by arrival; ``arrival_s`` starts at 0 (seconds since the first request)."""

    path: str
    format: str
    arrival_s: npt.NDArray[np.float64]
    prompt_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]
    duration_s: float
    rate_scale: float = 1.0

    @property
    def requests(self) -> int:
        return int(self.arrival_s.shape[0])

    def head(self, seconds: float) -> Trace:
        """The first ``seconds`` of the trace (for quick runs and tests)."""
        n = int(np.searchsorted(self.arrival_s, seconds, side="left"))
        return replace(
            self,
            arrival_s=self.arrival_s[:n],
            prompt_tokens=self.prompt_tokens[:n],
            output_tokens=self.output_tokens[:n],
            duration_s=min(self.duration_s, seconds),
        )

    def arriving_from(self, start_s: float) -> Trace:
        """The requests arriving at or after ``start_s``, times unchanged (what a run scores
        after its warm-up)."""
        n = int(np.searchsorted(self.arrival_s, start_s, side="left"))
        return replace(
            self,
            arrival_s=self.arrival_s[n:],
            prompt_tokens=self.prompt_tokens[n:],
            output_tokens=self.output_tokens[n:],
        )

    def describe(self) -> dict[str, object]:
        """The ``trace`` object of the ``simulate --json`` contract."""
        return {
            "path": self.path,
            "format": self.format,
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rate_scale": self.rate_scale,
        }


def from_columns(
    path: str,
    fmt: str,
    arrival_s: npt.ArrayLike,
    prompt_tokens: npt.ArrayLike,
    output_tokens: npt.ArrayLike,
    duration_s: float | None = None,
) -> Trace:
    """Build a :class:`Trace`, sorting by arrival and shifting the first arrival to 0."""
    arr = np.asarray(arrival_s, dtype=np.float64)
    order = np.argsort(arr, kind="stable")
    arr = arr[order]
    if arr.size:
        arr = arr - arr[0]
    dur = float(arr[-1]) if duration_s is None and arr.size else float(duration_s or 0.0)
    return Trace(
        path=path,
        format=fmt,
        arrival_s=arr,
        prompt_tokens=np.asarray(prompt_tokens, dtype=np.int64)[order],
        output_tokens=np.asarray(output_tokens, dtype=np.int64)[order],
        duration_s=dur,
    )
