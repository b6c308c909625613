"""Per-request state of one simulation run.

The replica model touches requests by integer id from the hot loop, so the mutable columns are
Python lists (list indexing is several times faster than numpy scalar indexing); the figures are
computed at the end from numpy views of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from heapq import heappop
from typing import Any

import numpy as np
import numpy.typing as npt

from autoscaler.traces.records import Trace

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NAN = float("nan")


class RequestTable:
    """Arrival, sizes and measured times of every request of a run (NaN = not happened)."""

    def __init__(self, trace: Trace, work_weights: tuple[float, float]) -> None:
        n = trace.requests
        self.arrival_arr: FloatArray = trace.arrival_s
        self.prompt_arr: IntArray = trace.prompt_tokens
        self.output_arr: IntArray = np.maximum(trace.output_tokens, 1)
        self.arrival: list[float] = self.arrival_arr.tolist()
        self.prompt: list[int] = self.prompt_arr.tolist()
        self.output: list[int] = self.output_arr.tolist()
        wp, wd = work_weights
        self.work: list[float] = (self.prompt_arr * wp + self.output_arr * wd).tolist()
        self.admitted: list[float] = [NAN] * n
        self.first_token: list[float] = [NAN] * n
        self.finished: list[float] = [NAN] * n
        self.rejected: list[bool] = [False] * n

    def __len__(self) -> int:
        return len(self.arrival)

    def column_at(self, name: str, ids: IntArray) -> FloatArray:
        """The measured column ``name`` at request ids ``ids``."""
        values: list[float] = getattr(self, name)
        return np.fromiter((values[i] for i in ids.tolist()), dtype=np.float64, count=ids.shape[0])

    def column(self, name: str) -> FloatArray:
        """A numpy copy of one measured column (``admitted``, ``first_token``, ``finished``)."""
        values: list[float] = getattr(self, name)
        return np.asarray(values, dtype=np.float64)


def arrivals_and_events(
    reqs: RequestTable, limit: int, heap: list[tuple[Any, ...]]
) -> Iterator[tuple[float, int, tuple[Any, ...] | None]]:
    """The order of a run: its arrivals merged with the events the caller keeps pushing onto
    ``heap``, earliest first (an arrival before an event at the same time).

    Yields ``(time, request id, None)`` for an arrival that fits and ``(time, -1, event)`` for an
    event, popped. A request whose prompt and output exceed ``limit`` tokens (the context or the
    KV of one replica) is marked rejected and not yielded. Ends when both run out. One merge for
    the aggregated and the disaggregated simulator; a generator step costs far less than the
    event it hands over.
    """
    arrivals, prompts, outputs, rejected = reqs.arrival, reqs.prompt, reqs.output, reqs.rejected
    inf = float("inf")
    i, n = 0, len(arrivals)
    while True:
        t_arr = arrivals[i] if i < n else inf
        t_ev = heap[0][0] if heap else inf
        if t_arr == inf and t_ev == inf:
            return
        if t_arr <= t_ev:
            rid = i
            i += 1
            if prompts[rid] + outputs[rid] > limit:
                rejected[rid] = True
                continue
            yield t_arr, rid, None
        else:
            event = heappop(heap)
            yield event[0], -1, event
