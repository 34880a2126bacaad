"""The byte-budgeted LRU behind model residency and prefix KV."""

from __future__ import annotations

from airflow_fate.runtime.lru import BudgetLru


def test_put_evicts_least_recently_used_first() -> None:
    lru: BudgetLru[str, int] = BudgetLru(10)
    assert lru.put("a", 1, 4) == []
    assert lru.put("b", 2, 4) == []
    assert lru.get("a") == 1  # a is now most recent
    assert lru.put("c", 3, 4) == ["b"]
    assert lru.keys() == ["a", "c"]
    assert lru.used == 8


def test_make_room_keeps_the_protected_key() -> None:
    lru: BudgetLru[str, int] = BudgetLru(10)
    lru.put("a", 1, 5)
    lru.put("b", 2, 5)
    assert lru.make_room(5, keep="a") == ["b"]
    assert "a" in lru and "b" not in lru


def test_oversized_value_is_not_kept_and_evicts_nothing() -> None:
    lru: BudgetLru[str, int] = BudgetLru(10)
    lru.put("a", 1, 6)
    assert lru.put("big", 2, 11) == []
    assert lru.keys() == ["a"]


def test_replacing_a_key_updates_its_size() -> None:
    lru: BudgetLru[tuple[str, str], str] = BudgetLru(10)
    lru.put(("m", "p"), "v1", 3)
    lru.put(("m", "p"), "v2", 7)
    assert lru.used == 7 and lru.get(("m", "p")) == "v2" and len(lru) == 1
    assert lru.pop(("m", "p")) == "v2" and lru.used == 0
