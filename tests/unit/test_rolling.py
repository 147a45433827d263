"""Rolling verification slices: complete coverage over N firings, a fair share each, stable."""

from __future__ import annotations

import hashlib

import pytest

from bbr_orchestrator.core.rolling import RollingSlice, bucket_count, bucket_of

KEYS = [f"backups/cf/20261127T0{i % 10}0000Z-{i:08x}/blobstore-{i}.tar" for i in range(5000)]


@pytest.mark.parametrize(
    ("percent", "buckets"),
    [(100, 1), (50, 2), (34, 3), (33, 4), (30, 4), (10, 10), (7, 15), (1, 100)],
)
def test_bucket_count_is_ceil_of_100_over_percent(percent: int, buckets: int) -> None:
    """N = ceil(100 / percent): everything is covered within N runs."""
    assert bucket_count(percent) == buckets


@pytest.mark.parametrize("percent", [0, -5, 101])
def test_a_percentage_outside_1_to_100_is_refused(percent: int) -> None:
    """0% would never cover anything; more than 100% means nothing."""
    with pytest.raises(ValueError, match=r"1\.\.100"):
        RollingSlice(percent, 0)


def test_a_negative_firing_number_is_refused() -> None:
    """Firing numbers count earlier firings: never negative."""
    with pytest.raises(ValueError, match="firing number"):
        RollingSlice(10, -1)


@pytest.mark.parametrize("percent", [1, 7, 10, 25, 30, 50, 100])
def test_n_consecutive_firings_check_every_object_exactly_once(percent: int) -> None:
    """Any N consecutive firings (wherever they start) partition the objects: each is checked
    once, none is missed."""
    n = bucket_count(percent)
    for start in (0, 5, 123):
        seen: dict[str, int] = dict.fromkeys(KEYS[:400], 0)
        for firing in range(start, start + n):
            slice_ = RollingSlice(percent, firing)
            for key in seen:
                seen[key] += slice_.selects(key)
        assert set(seen.values()) == {1}, (percent, start)


@pytest.mark.parametrize("percent", [5, 10, 20, 25, 50])
def test_each_firing_checks_about_its_share_of_many_objects(percent: int) -> None:
    """With many objects, each firing checks close to 1/N of them (never far above percent)."""
    n = bucket_count(percent)
    for firing in range(n):
        chosen = sum(RollingSlice(percent, firing).selects(k) for k in KEYS)
        share = 100 * chosen / len(KEYS)
        assert abs(share - 100 / n) < 2.5, (percent, firing, share)


def test_objects_added_later_are_covered_within_n_firings_of_their_arrival() -> None:
    """Backups come and go: an object stored from firing f on is checked by one of firings
    f .. f+N-1 (coverage needs no state about which objects were seen before)."""
    percent, n = 20, bucket_count(20)
    for arrival, key in enumerate(KEYS[:200]):
        checked = [f for f in range(arrival, arrival + n) if RollingSlice(percent, f).selects(key)]
        assert len(checked) == 1, key


def test_the_same_inputs_give_the_same_answer() -> None:
    """Deterministic across calls, processes and daemons: the bucket is sha256(key) mod N."""
    key = "backups/bosh-director/20261127T020000Z-3f9a2c1b/bosh-0-blobstore.tar"
    assert bucket_of(key, 10) == bucket_of(key, 10)
    assert bucket_of(key, 10) == int(hashlib.sha256(key.encode()).hexdigest(), 16) % 10
    first = [RollingSlice(10, 3).selects(k) for k in KEYS[:100]]
    assert first == [RollingSlice(10, 3).selects(k) for k in KEYS[:100]]
    assert RollingSlice(10, 3).selects(key) == RollingSlice(10, 13).selects(key)


def test_a_slice_describes_itself_for_the_log() -> None:
    """The log says which slice of how many a run checked."""
    assert RollingSlice(10, 23).describe() == "slice 4 of 10 (10% a run)"
    assert RollingSlice(100, 7).describe() == "slice 1 of 1 (100% a run)"
