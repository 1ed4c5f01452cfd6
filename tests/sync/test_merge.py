"""The merge is a join: order, grouping and repetition of delivery cannot change the result,
a delete wins for ever, and vectors of one model fingerprint never leak into another's."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.store.hlc import ClockSkewError, Hlc, HybridClock
from edge.sync.record import (
    Meta,
    Record,
    Vector,
    Versioned,
    for_fingerprint,
    merge,
    merge_all,
    tombstone,
)
from tests.sync.strategies import FINGERPRINTS, INSTANCE, UUID, records, stamps


@given(records(), records())
def test_merge_is_commutative(a: Record, b: Record) -> None:
    assert merge(a, b) == merge(b, a)


@given(records(), records(), records())
def test_merge_is_associative(a: Record, b: Record, c: Record) -> None:
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@given(records(), records())
def test_merge_is_idempotent(a: Record, b: Record) -> None:
    ab = merge(a, b)
    assert merge(a, a) == a
    assert merge(ab, b) == ab
    assert merge(ab, a) == ab


@given(st.lists(records(), min_size=1, max_size=6), st.randoms())
def test_any_delivery_order_gives_the_same_record(rs: list[Record], rnd: object) -> None:
    shuffled = list(rs)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert merge_all(rs) == merge_all(shuffled)


@given(st.lists(records(), min_size=1, max_size=5), stamps, records())
def test_a_delete_wins_over_every_write_for_ever(
    before: list[Record], stamp: Hlc, later: Record
) -> None:
    dead = merge(merge_all(before), tombstone(UUID, INSTANCE, stamp))
    # Even a write stamped after the delete (a stale box with a fast clock) cannot revive it.
    revived = merge(dead, later)
    assert revived.deleted is not None and revived.deleted >= stamp
    assert revived.meta is None and revived.vectors == () and revived.expiry is None
    assert not revived.live(0)


@given(records(), records(), st.sampled_from(FINGERPRINTS))
def test_fingerprint_isolation(a: Record, b: Record, fp: str) -> None:
    """A replica of model `fp` receives only `fp` vectors (deletes always), and what it
    merges from successive hub states is exactly the `fp` view of the newest one."""
    s1, s2 = a, merge(a, b)  # the hub's state only grows
    p1, p2 = for_fingerprint(s1, fp), for_fingerprint(s2, fp)
    for p in (p1, p2):
        assert p is None or set(p.fingerprints) <= {fp}
    if s2.deleted is not None:
        assert p2 is not None and p2.deleted == s2.deleted  # deletes reach every model
    if p1 is not None:
        assert p2 is not None  # once fed, never dropped
        assert merge(p1, p2) == p2
    other = next(f for f in FINGERPRINTS if f != fp)
    if s2.deleted is None and s2.vector_for(fp) is None:
        assert p2 is None and s2.vector_for(other) is not None  # reported, not fed


def test_later_group_stamps_win_independently() -> None:
    v = Vector.from_float32("M", "M", np.ones(4, np.float32))
    s = functools.partial(Hlc, origin="box-a")
    a = Record(
        UUID, INSTANCE,
        meta=Versioned(s(10, 0), Meta("c1", "k1", "[]", 1)),
        expiry=Versioned(s(30, 0), 100),
        vectors=(("fp-a", Versioned(s(10, 0), v)),),
    )  # fmt: skip
    b = Record(
        UUID, INSTANCE,
        meta=Versioned(s(20, 0), Meta("c2", "k2", "[]", 1)),
        expiry=Versioned(s(20, 0), 200),
        vectors=(("fp-b", Versioned(s(5, 0), v)),),
    )  # fmt: skip
    m = merge(a, b)
    assert m.meta is not None and m.meta.value.key == "k2"  # b patched the metadata later
    assert m.expiry is not None and m.expiry.value == 100  # a changed the ttl later
    assert m.fingerprints == ("fp-a", "fp-b")  # one register per model, kept apart


def test_tie_on_ms_and_counter_breaks_by_origin() -> None:
    a = Record(UUID, INSTANCE, meta=Versioned(Hlc(5, 1, "box-a"), Meta("", "a", "[]", 1)))
    b = Record(UUID, INSTANCE, meta=Versioned(Hlc(5, 1, "box-b"), Meta("", "b", "[]", 1)))
    assert merge(a, b).meta == b.meta


def test_hlc_orders_local_events_after_observed_remote_ones() -> None:
    wall = [1_000]
    clock = HybridClock("box-a", wall=lambda: wall[0])
    first = clock.now()
    assert clock.now() > first  # same ms: counter
    clock.observe(Hlc(1_000 + 30_000, 7, "box-b"))  # 30 s ahead: allowed (limit 60 s)
    after = clock.now()
    assert after > Hlc(31_000, 7, "box-b") and after.origin == "box-a"
    wall[0] = 500  # the wall clock steps back: stamps still only grow
    assert clock.now() > after


def test_hlc_refuses_a_remote_clock_too_far_ahead() -> None:
    clock = HybridClock("box-a", wall=lambda: 1_000_000, max_ahead_ms=60_000)
    with pytest.raises(ClockSkewError, match="ahead of this clock"):
        clock.observe(Hlc(1_000_000 + 60_001, 0, "box-b"))
    assert clock.now().ms == 1_000_000  # the refused stamp did not move the clock
    assert clock.last_skew_ms == 60_001


def test_hlc_counter_overflow_borrows_the_next_millisecond() -> None:
    clock = HybridClock("o", wall=lambda: 7)
    stamps_seen = [clock.now() for _ in range(70_000)]
    assert stamps_seen == sorted(stamps_seen) and len(set(stamps_seen)) == 70_000
    assert stamps_seen[-1].ms == 8


@given(stamps)
def test_stamp_text_sorts_like_the_stamp(s: Hlc) -> None:
    other = Hlc(s.ms, (s.counter + 1) % 3, s.origin)
    assert Hlc.decode(s.encode()) == s
    assert (s.encode() < other.encode()) == (s < other)
