"""Pre-serialised answers of the two hot reads, per store entry: unchanged data is encoded once.

The HPA asks for every external metric of every workload each sync period, and KEDA's
``metrics-api`` trigger polls ``/v1/workloads/{ns}/{name}``; between two control-loop ticks the
answers are the same bytes, yet building them (selector parsing, index lookup, the Quantity's
``Decimal`` rounding, ``strftime``, ``json.dumps``) was a fifth of the server's CPU per request.
This cache keeps those bytes and hands them out again for as long as they are exactly what the
uncached code would produce:

- **Which workload a selector names** is memoised per ``(namespace, raw query string)``: the
  workloads and their labels are fixed by the configuration (the store never adds one, and the
  :class:`~external_metrics.lookup.WorkloadIndex` is built once), so the answer never changes.
  Only successful lookups are kept, in a least-recently-used map of at most ``max_selectors``
  entries, so a stream of distinct (or junk) selectors costs work but never memory.
- **A 200 body** is kept with the :class:`~autoscaler.live.store.Entry` it was made from. The store
  replaces the entry object on every ``put`` and ``set_current`` (a hold too), and entries are
  frozen, so ``cached.entry is store.get(key)`` means "nothing this body was made from has
  changed"; the cache holds a reference to that entry, so its identity cannot be reused by a
  newer one. Freshness is the other input: it depends on the time, so every hit re-asks
  ``Entry.freshness`` (the same rule the uncached code applies) and a body whose entry has gone
  stale is never served. At most one body per ``(workload, metric)`` and one per workload is
  kept, the newest; both are bounded by the configuration (with a hard cap as a safety net).
- **The /v1 document's ``age_s``** is the one field that moves with the clock in a 200 answer
  (``freshness`` is always ``"fresh"`` there), so the cache keeps the serialised document cut
  around that value and splices the current age in: the wire format is unchanged, byte for byte.

Errors (400/404/503) are never cached: they are rare, and their messages carry ages and hints.
Only the asyncio loop touches a cache (handlers run there), so there is no lock. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from autoscaler.live.store import Entry, Freshness
from external_metrics.status import json_bytes

DEFAULT_MAX_SELECTORS = 4096
"""Distinct ``(namespace, query)`` pairs remembered: far above what a fleet's HPAs send."""
DEFAULT_MAX_BODIES = 65536
"""Safety net only: the configuration already bounds bodies to workloads x metric names."""


def split_around(doc: Mapping[str, Any], field: str) -> tuple[bytes, bytes]:
    """``json_bytes(doc)`` cut around ``doc[field]``'s value: ``prefix + value + suffix``.

    Serialises the members before and after ``field`` as two objects and joins them the way
    the encoder would (``{`` ... ``,"field":`` / ``,`` ... ``}``), so splicing
    ``json_bytes(doc[field])`` back in gives exactly ``json_bytes(doc)``.
    """
    keys = list(doc)
    at = keys.index(field)
    before = json_bytes({k: doc[k] for k in keys[:at]})
    after = json_bytes({k: doc[k] for k in keys[at + 1 :]})
    prefix = before[:-1] + (b"," if at else b"") + json_bytes(field) + b":"
    suffix = b"," + after[1:] if at + 1 < len(keys) else b"}"
    return prefix, suffix


def age_json(age: float) -> bytes:
    """``age`` as the /v1 document writes it: the JSON number, or ``null`` when not finite."""
    if type(age) is float and math.isfinite(age):
        return float.__repr__(age).encode()  # what json.dumps writes for a float
    return json_bytes(age if math.isfinite(age) else None)


class ResponseCache:
    """Selector lookups and 200 bodies of the External Metrics and ``/v1`` reads (module doc).

    ``enabled=False`` keeps nothing, so the handlers take their uncached path on every request
    (tests compare the two byte for byte).
    """

    def __init__(
        self,
        *,
        max_selectors: int = DEFAULT_MAX_SELECTORS,
        max_bodies: int = DEFAULT_MAX_BODIES,
        enabled: bool = True,
    ) -> None:
        if max_selectors < 0 or max_bodies < 0:
            raise ValueError(f"cache sizes must be >= 0, got {max_selectors} and {max_bodies}")
        self.max_selectors = max_selectors if enabled else 0
        self.max_bodies = max_bodies if enabled else 0
        self._selections: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._metric_bodies: dict[tuple[str, str], tuple[Entry, bytes]] = {}
        self._workload_parts: dict[str, tuple[Entry, bytes, bytes]] = {}

    # --- which workload a selector names ---------------------------------------------------

    def selection(self, namespace: str, query: str) -> str | None:
        """The workload key a request's raw query string was found to name, or None."""
        key = self._selections.get((namespace, query))
        if key is not None:
            self._selections.move_to_end((namespace, query))
        return key

    def remember_selection(self, namespace: str, query: str, workload_key: str) -> None:
        """Remember a *successful* lookup (an error is recomputed: its message may change)."""
        if self.max_selectors == 0:
            return
        self._selections[(namespace, query)] = workload_key
        self._selections.move_to_end((namespace, query))
        while len(self._selections) > self.max_selectors:
            self._selections.popitem(last=False)

    # --- External Metrics values -----------------------------------------------------------

    def metric_body(
        self, workload_key: str, entry: Entry, metric: str, *, now: float, staleness_s: float
    ) -> bytes | None:
        """The cached 200 body for ``metric`` of this very entry while it is fresh, else None."""
        hit = self._metric_bodies.get((workload_key, metric))
        if hit is None or hit[0] is not entry:
            return None
        if entry.freshness(now, staleness_s) is not Freshness.FRESH:
            return None
        return hit[1]

    def put_metric_body(self, workload_key: str, entry: Entry, metric: str, body: bytes) -> None:
        """Keep the 200 body made from ``entry`` (replacing the one of an older entry)."""
        self._bounded_put(self._metric_bodies, (workload_key, metric), (entry, body))

    # --- /v1 workload documents --------------------------------------------------------------

    def workload_body(
        self, workload_key: str, entry: Entry, *, now: float, staleness_s: float
    ) -> bytes | None:
        """The 200 document of this very entry with the current ``age_s``, or None."""
        hit = self._workload_parts.get(workload_key)
        if hit is None or hit[0] is not entry:
            return None
        if entry.freshness(now, staleness_s) is not Freshness.FRESH:
            return None
        return hit[1] + age_json(entry.age_s(now)) + hit[2]

    def put_workload_parts(
        self, workload_key: str, entry: Entry, prefix: bytes, suffix: bytes
    ) -> None:
        """Keep a 200 document made from ``entry``, cut around ``age_s`` (:func:`split_around`)."""
        self._bounded_put(self._workload_parts, workload_key, (entry, prefix, suffix))

    # --- sizes -------------------------------------------------------------------------------

    def sizes(self) -> dict[str, int]:
        """How many selections, metric bodies and workload documents are kept (tests, debugging)."""
        return {
            "selections": len(self._selections),
            "metric_bodies": len(self._metric_bodies),
            "workload_documents": len(self._workload_parts),
        }

    def _bounded_put(self, items: dict[Any, Any], key: object, value: object) -> None:
        if self.max_bodies == 0:
            return
        if key not in items:
            while len(items) >= self.max_bodies:
                del items[next(iter(items))]  # oldest first: dicts keep insertion order
        items[key] = value
