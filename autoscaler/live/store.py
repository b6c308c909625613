"""The recommendation store: the last good recommendation per workload, and how fresh it is.

The control loop is the only writer; the servers (External Metrics API, KEDA gRPC, JSON API) only
read, and never compute on a request (DESIGN.md, "Data flow"). Reads and writes come from the
asyncio loop and from gRPC worker threads. Readers take no lock: the entries live in a dict that
is never changed once published; a write builds the next dict and swaps the reference (one
atomic assignment), so a reader sees the whole previous tick or the whole new one, and a tick of
10,000 workloads (:meth:`RecommendationStore.put_many`) never keeps a request waiting. The lock
only orders writers.

Fail static lives here as much as in the policy: a workload whose last tick held (stale or
missing data) or whose last good value is older than ``staleness_s`` is *not fresh*, and every
server then answers 503 / ``UNAVAILABLE`` instead of a value. The last good value is still kept
and shown on the JSON API with its age, so people can see what was last known.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from autoscaler.core.current_autoscaler import CurrentAutoscaler
from autoscaler.core.recommendation import Recommendation
from autoscaler.core.signals import SignalSnapshot


class Freshness(Enum):
    """What a reader may do with a workload's entry."""

    FRESH = "fresh"
    """A good recommendation from within the staleness bound: serve its values."""
    STALE = "stale"
    """The last tick held, or the last good value is too old: answer 503, never a value."""
    NO_DATA = "no-data"
    """Known workload, no good recommendation yet (just started, or never any data): 503."""


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """Static facts of a configured workload that the servers need to find and label it."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    """``metricLabels`` of its external metrics; a label selector matches against these."""
    shadow: bool = False
    engine: str = ""
    """The engine profile's name (``WorkloadConfig.engine``)."""
    guards: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """What each guard of the policy reads on that engine (:mod:`autoscaler.engines.guards`;
    an empty tuple: the guard is idle), shown on ``/v1`` so an operator sees what is live."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One workload's state as readers see it."""

    info: WorkloadInfo
    last_good: Recommendation | None = None
    """The newest recommendation that did not hold (what the APIs serve while fresh)."""
    latest: Recommendation | None = None
    """The newest recommendation of any kind (a hold says why data is missing)."""
    snapshot: SignalSnapshot | None = None
    """The signals behind ``latest``."""
    updated_at: float = -math.inf
    """Wall-clock time of ``last_good``."""
    current: CurrentAutoscaler | None = None

    def freshness(self, now: float, staleness_s: float) -> Freshness:
        """Fresh only when the newest tick produced a value and that value is recent."""
        if self.last_good is None:
            return Freshness.NO_DATA
        if self.latest is not None and self.latest.holds:
            return Freshness.STALE
        if now - self.updated_at > staleness_s:
            return Freshness.STALE
        return Freshness.FRESH

    def age_s(self, now: float) -> float:
        """Seconds since the last good recommendation (``inf`` when there is none)."""
        return now - self.updated_at

    def metric(self, name: str) -> float | None:
        """A published metric of the last good recommendation, or None."""
        if self.last_good is None:
            return None
        for m in self.last_good.metrics:
            if m.name == name:
                return m.value
        return None


class RecommendationStore:
    """Thread-safe map ``namespace/name`` -> :class:`Entry`; unknown workloads raise KeyError.

    ``clock`` (wall time, seconds) and ``staleness_s`` are injected so tests control them.
    """

    def __init__(
        self,
        workloads: list[WorkloadInfo],
        *,
        staleness_s: float,
        clock: Callable[[], float],
        metric_names: tuple[str, ...] = (),
    ) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {w.key: Entry(info=w) for w in workloads}
        self.staleness_s = staleness_s
        self.clock = clock
        self.metric_names = metric_names
        """Names of the external metrics every workload publishes (the APIResourceList)."""
        self._listeners: list[Callable[[str], None]] = []
        self._version = 0

    @property
    def version(self) -> int:
        """Bumped by every write: a copy of the store (an API process) is behind while its
        version is lower."""
        return self._version

    def published(self) -> tuple[int, dict[str, Entry]]:
        """The current version and entries, as one consistent pair (the dict is never mutated:
        every write swaps in a new one), for copying the store into another process."""
        with self._lock:
            return self._version, self._entries

    def load(self, version: int, entries: Mapping[str, Entry]) -> None:
        """Replace every entry by another store's :meth:`published` ones (API processes keep
        such a copy); the workloads must be the same, so a config mismatch is an error."""
        if entries.keys() != self._entries.keys():
            missing = sorted(self._entries.keys() ^ entries.keys())[:3]
            raise ValueError(f"store copy with other workloads than this one's: {missing}")
        with self._lock:
            self._entries = dict(entries)
            self._version = version

    def keys(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        entries = self._entries  # one published dict for the whole answer
        return [entries[k] for k in sorted(entries)]

    def get(self, key: str) -> Entry:
        """The entry of ``namespace/name``; KeyError for a workload not in the config."""
        return self._entries[key]

    def freshness(self, key: str) -> Freshness:
        return self.get(key).freshness(self.clock(), self.staleness_s)

    def put(self, rec: Recommendation, snapshot: SignalSnapshot | None = None) -> Entry:
        """Record a tick's recommendation; a hold keeps the last good value but marks it stale."""
        return self.put_many([(rec, snapshot)])[0]

    def put_many(
        self, items: Sequence[tuple[Recommendation, SignalSnapshot | None]]
    ) -> list[Entry]:
        """Record a whole tick at once: readers see either none of it or all of it."""
        now = self.clock()
        with self._lock:
            entries = dict(self._entries)
            out = [_updated(entries[rec.workload], rec, snapshot, now) for rec, snapshot in items]
            for entry in out:
                entries[entry.info.key] = entry
            self._entries = entries
            self._version += 1
            listeners = list(self._listeners)
        for listener in listeners:
            for rec, _ in items:
                listener(rec.workload)
        return out

    def set_current(self, key: str, current: CurrentAutoscaler | None) -> None:
        """Record what the workload's existing autoscaler decided (shadow mode)."""
        self.set_current_many({key: current})

    def set_current_many(self, currents: Mapping[str, CurrentAutoscaler | None]) -> None:
        """:meth:`set_current` for a whole tick's shadow workloads, in one swap."""
        with self._lock:
            entries = dict(self._entries)
            for key, current in currents.items():
                entries[key] = replace(entries[key], current=current)
            self._entries = entries
            self._version += 1

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener(key)`` after every put (from the writer's thread); returns unsubscribe.

        The KEDA push stream uses it to push when activity changes; listeners must not block.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe


def _updated(old: Entry, rec: Recommendation, snapshot: SignalSnapshot | None, now: float) -> Entry:
    """``old`` after ``rec``: a hold keeps the last good value (and its time) but not its
    freshness."""
    if rec.holds:
        return Entry(old.info, old.last_good, rec, snapshot, old.updated_at, old.current)
    return Entry(old.info, rec, rec, snapshot, now, old.current)
