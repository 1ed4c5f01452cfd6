"""UUIDv7 ids: layout, and string order = creation order even within one millisecond."""

from __future__ import annotations

import threading
import uuid

from store_helpers import ManualClock, make

from edge.store import EntityStore
from edge.store.ids import UuidV7Generator, format_uuid7, uuid7_unix_ms


def test_layout_is_uuid_version_7_rfc_variant() -> None:
    u = uuid.UUID(UuidV7Generator().next(1_767_225_600_123))
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert uuid7_unix_ms(str(u)) == 1_767_225_600_123


def test_strictly_increasing_within_one_millisecond_and_when_clock_steps_back() -> None:
    gen = UuidV7Generator()
    ms = 1_767_225_600_000
    ids = [gen.next(ms) for _ in range(5000)]
    ids += [gen.next(ms - 10_000) for _ in range(100)]  # wall clock stepped back
    ids += [gen.next(ms + 1) for _ in range(100)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)


def test_counter_overflow_moves_to_next_millisecond() -> None:
    gen = UuidV7Generator()
    gen.next(1000)
    gen._counter = (1 << 74) - 1  # force the edge: the next id cannot fit in this ms
    nxt = gen.next(1000)
    assert uuid7_unix_ms(nxt) == 1001
    assert nxt > format_uuid7(1000, (1 << 74) - 1)


def test_thread_safe_unique_and_ordered_per_thread() -> None:
    gen = UuidV7Generator()
    out: list[list[str]] = [[] for _ in range(4)]

    def work(i: int) -> None:
        out[i].extend(gen.next(5000) for _ in range(2000))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [u for part in out for u in part]
    assert len(set(flat)) == len(flat)
    assert all(part == sorted(part) for part in out)


def test_store_ids_sort_in_creation_order_with_a_frozen_clock(
    store: EntityStore, clock: ManualClock
) -> None:
    made = [make(store).uuid for _ in range(50)]  # the clock never moves
    assert made == sorted(made)
    assert {uuid7_unix_ms(u) for u in made} == {int(clock.now.timestamp() * 1000)}
