"""A byte-budgeted LRU map: resident models and prefix-KV entries of one worker.

It follows the rules `ClusterState` applies to its model of the same device, so the
planner's view and the worker's reality agree: making room evicts least recently used
entries until the newcomer fits; an entry larger than the whole budget is not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BudgetLru(Generic[K, V]):
    """Values with byte sizes, least recently used first, within ``budget`` bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def used(self) -> int:
        return sum(size for _, size in self._items.values())

    def keys(self) -> list[K]:
        """Keys, least recently used first."""
        return list(self._items)

    def get(self, key: K) -> V | None:
        """The value (marked most recently used), or None."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def make_room(self, nbytes: int, keep: K | None = None) -> list[K]:
        """Evict LRU entries (never ``keep``) until ``nbytes`` more fit; return them."""
        evicted: list[K] = []
        for key in list(self._items):
            if self.used + nbytes <= self.budget:
                break
            if key == keep:
                continue
            del self._items[key]
            evicted.append(key)
        return evicted

    def put(self, key: K, value: V, nbytes: int) -> list[K]:
        """Insert or replace ``key`` as most recent, evicting to fit; return the evicted.

        A value larger than the whole budget is not stored (nothing is evicted for it).
        """
        self._items.pop(key, None)
        if nbytes > self.budget:
            return []
        evicted = self.make_room(nbytes)
        self._items[key] = (value, nbytes)
        return evicted

    def pop(self, key: K) -> V | None:
        item = self._items.pop(key, None)
        return None if item is None else item[0]

    def clear(self) -> None:
        self._items.clear()
