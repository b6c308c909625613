"""A small time-bounded, size-bounded cache for review answers.

The HPA asks for each metric every 15 s, and the aggregator checks availability every few
seconds: without a cache every one of those would cost a TokenReview or SubjectAccessReview
round trip to the API server. ``k8s.io/apiserver``'s delegating authn/authz caches answers for
10 s; we do the same, and bound the size (least recently used goes first) so a stream of
distinct tokens cannot grow memory without limit. The clock is injected so tests control it.
Only the asyncio loop touches it, so there is no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, *, ttl_s: float, max_size: int, clock: Callable[[], float]) -> None:
        if ttl_s < 0 or max_size < 0:
            raise ValueError(f"ttl_s and max_size must be >= 0, got {ttl_s} and {max_size}")
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        expires, value = hit
        if self._clock() >= expires:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.max_size == 0 or self.ttl_s == 0:
            return
        self._items[key] = (self._clock() + self.ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
