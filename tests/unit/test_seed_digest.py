"""The seed digest of the trace identities (``pipeline.identities.seed_digest``): a set's digest,
whatever the order and the repeats, in memory that does not grow with the seeds."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from pipeline.identities import seed_digest


def ids(count: int, start: int = 0) -> list[str]:
    return [f"GA26{n:08d}-{n % 97:02d}" for n in range(start, start + count)]


@pytest.mark.parametrize("memory_ids", [1, 7, 1000, 50_000])
def test_the_digest_is_the_sets_whatever_the_order_repeats_and_where_repeats_are_kept(
    memory_ids: int,
) -> None:
    # Given 3,000 distinct ids, and the same ids shuffled with a third of them repeated
    distinct = ids(3000)
    shuffled = distinct + distinct[::3]
    random.Random(7).shuffle(shuffled)
    # When both are digested, keeping at most memory_ids ids in memory
    # Then the digests are equal to each other and to the all-in-memory one, and count 3,000
    expected = seed_digest(distinct, memory_ids=10**9)
    assert expected.startswith("3000:")
    assert seed_digest(shuffled, memory_ids=memory_ids) == expected
    assert seed_digest(iter(distinct), memory_ids=memory_ids) == expected
    # And another set gives another digest
    assert seed_digest(ids(3000, start=1), memory_ids=memory_ids) != expected


def test_the_digest_of_many_seeds_holds_no_more_than_its_memory_ids() -> None:
    # Given 300,000 distinct seed ids streamed one at a time (a 1M-CID trace has 744K)
    def stream() -> object:
        return (f"GA26{n:08d}-{n % 97:02d}" for n in range(300_000))

    # When they are digested keeping at most 10,000 ids in memory
    tracemalloc.start()
    try:
        digest = seed_digest(stream(), memory_ids=10_000)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then the Python heap peaked under 8 MB (a set of all of them: ~30 MB) and all were counted
    assert digest.startswith("300000:")
    assert peak < 8 * 2**20, peak
