"""loads.idset.IdSet, alone: a set of record ids, kept small."""

import random
import tracemalloc

from loads.idset import IdSet


def test_it_answers_as_a_set_does_for_dense_and_scattered_ids():
    rng = random.Random(13)
    ids = list(range(1, 5000)) + [rng.randrange(1, 2**63) for _ in range(2000)] + [2**63 - 1, 70_000]
    got, want = IdSet(), set()
    for rid in ids + ids[:100]:  # the second time changes nothing
        got.add(rid)
        want.add(rid)
    assert len(got) == len(want) and set(got) == want
    assert all(rid in got for rid in want)
    assert not any(rid in got for rid in (0, 5000, 5001, 2**63 - 2, 69_999))


def test_it_keeps_a_million_dense_ids_in_well_under_a_megabyte():
    tracemalloc.start()
    ids = IdSet()
    for rid in range(1, 1_000_001):
        ids.add(rid)
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(ids) == 1_000_000 and size < 1_000_000
