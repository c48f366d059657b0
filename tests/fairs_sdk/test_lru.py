"""LRUCache: bounded, least recently used dropped first, both get and put count as a use."""

from __future__ import annotations

import pytest

from fairs_sdk.lru import LRUCache


def test_adding_past_capacity_drops_the_least_recently_used():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now more recent than "b"
    cache.put("c", 3)
    assert "b" not in cache and "a" in cache and "c" in cache, "the least recently used key ('b') must go first"
    assert len(cache) == 2, f"cache holds {len(cache)} values, capacity 2"


def test_a_missing_key_gives_none():
    assert LRUCache(1).get("nothing") is None


def test_putting_a_kept_key_replaces_its_value_without_growing():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("a", 2)
    assert cache.get("a") == 2 and len(cache) == 1, "putting an existing key must replace it"


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True])
def test_capacity_must_be_a_positive_int(capacity):
    with pytest.raises(ValueError, match="capacity"):
        LRUCache(capacity)
