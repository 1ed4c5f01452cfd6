"""The HubStore contract (edge.sync.hubstore), run against every engine: a real SQLite
file and a real PostgreSQL database (a private cluster the tests start)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge.store.hlc import Hlc
from edge.sync.hub_postgres import PostgresHubStore
from edge.sync.hub_sqlite import SqliteHubStore
from edge.sync.hubstore import HubStore
from edge.sync.record import Meta, Record, Vector, Versioned, tombstone
from tests.support.postgres import shared_cluster

OpenHub = Callable[[str], HubStore]


@pytest.fixture(params=["sqlite", "postgres"])
def open_hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenHub]:
    """Opens the hub store called `name` of this test's engine: an SQLite file, or a
    database of the test PostgreSQL cluster (the same name opens the same data again)."""
    opened: list[HubStore] = []
    urls: dict[str, str] = {}

    def open_(name: str) -> HubStore:
        store: HubStore
        if request.param == "sqlite":
            store = SqliteHubStore(tmp_path / f"{name}.sqlite3")
        else:
            cluster = shared_cluster()  # one per test session
            if name not in urls:
                urls[name] = cluster.new_database()
            store = PostgresHubStore(urls[name])
        assert isinstance(store, HubStore)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def hub(open_hub: OpenHub) -> HubStore:
    return open_hub("hub")


def rec(uuid: str, ms: int, key: str = "k", fp: str = "fp-a", inst: str = "i1") -> Record:
    s = Hlc(ms, 0, "box-a")
    v = Vector.from_float32("M", "M", np.random.default_rng(ms).standard_normal(8))
    return Record(
        uuid, inst,
        meta=Versioned(s, Meta("", key, "[]", 1)),
        expiry=Versioned(s, 2_000_000_000),
        vectors=((fp, Versioned(s, v)),),
    )  # fmt: skip


def test_push_is_idempotent_by_origin_seq(hub: HubStore) -> None:
    first = hub.push("box-a", [(1, rec("u1", 10)), (2, rec("u2", 11))])
    assert (first.acked, first.applied, first.skipped) == (2, 2, 0)
    head = hub.head()
    again = hub.push("box-a", [(1, rec("u1", 10)), (2, rec("u2", 11))])
    assert (again.acked, again.applied, again.skipped) == (2, 0, 2)
    assert hub.head() == head  # a resent batch moved no feed sequence
    # Another origin sending the same states changes nothing either (merge is idempotent).
    echo = hub.push("box-b", [(5, rec("u1", 10))])
    assert (echo.acked, echo.applied, echo.unchanged) == (5, 0, 1)
    assert hub.head() == head and hub.acked("box-b") == 5 and hub.acked("nobody") == 0


def test_feed_has_each_entity_once_at_its_latest_state(hub: HubStore) -> None:
    hub.push("box-a", [(1, rec("u1", 10, "old")), (2, rec("u2", 11))])
    hub.push("box-a", [(3, rec("u1", 20, "new"))])
    page = hub.feed(["i1"], "fp-a", 0, 100)
    assert [r.uuid for _, r in page.records] == ["u2", "u1"]
    seqs = [s for s, _ in page.records]
    assert seqs == sorted(seqs) and page.next == page.head == seqs[-1]
    u1 = page.records[-1][1]
    assert u1.meta is not None and u1.meta.value.key == "new"
    assert hub.feed(["i1"], "fp-a", page.next, 100).records == []


def test_feed_pages_and_cursor(hub: HubStore) -> None:
    hub.push("box-a", [(i, rec(f"u{i:02}", 10 + i)) for i in range(1, 8)])
    seen: list[str] = []
    cursor = 0
    while True:
        page = hub.feed(["i1"], "fp-a", cursor, 3)
        seen += [r.uuid for _, r in page.records]
        if page.next == cursor:
            break
        cursor = page.next
    assert seen == [f"u{i:02}" for i in range(1, 8)]


def test_feed_is_filtered_by_instance_and_fingerprint_but_deletes_reach_all(
    hub: HubStore,
) -> None:
    hub.push("box-a", [(1, rec("u1", 10, fp="fp-a")), (2, rec("u2", 11, fp="fp-b")),
                       (3, rec("u3", 12, inst="i2"))])  # fmt: skip
    page = hub.feed(["i1"], "fp-a", 0, 100)
    assert [r.uuid for _, r in page.records] == ["u1"]
    assert all(r.fingerprints == ("fp-a",) for _, r in page.records)
    assert page.next == hub.head()  # the skipped fp-b row is not read again
    hub.push("box-b", [(1, tombstone("u2", "i1", Hlc(13, 0, "box-b")))])
    later = hub.feed(["i1"], "fp-a", page.next, 100)
    assert [(r.uuid, r.deleted is not None) for _, r in later.records] == [("u2", True)]


def test_a_tombstone_is_final_and_holds_no_vector(hub: HubStore) -> None:
    hub.push("box-a", [(1, rec("u1", 10))])
    hub.push("box-b", [(1, tombstone("u1", "i1", Hlc(11, 0, "box-b")))])
    stale = hub.push("box-c", [(1, rec("u1", 99, "resurrected"))])  # later stamp, stale box
    assert stale.applied == 0
    got = hub.get("u1")
    assert got is not None and got.deleted == Hlc(11, 0, "box-b") and got.vectors == ()
    assert hub.snapshot(["i1"], "fp-a", "", 10).records == []
    assert hub.counts().tombstones == 1 and hub.counts().records == 0


def test_snapshot_pages_live_records_and_the_tail_follows(hub: HubStore) -> None:
    hub.push("box-a", [(i, rec(f"u{i}", 10 + i)) for i in range(1, 6)])
    first = hub.snapshot(["i1"], "fp-a", "", 2)
    assert [r.uuid for r in first.records] == ["u1", "u2"] and first.next_uuid == "u2"
    hub.push("box-a", [(9, rec("u1", 50, "changed during bootstrap"))])
    rest = hub.snapshot(["i1"], "fp-a", "u2", 10, head=first.head)
    assert [r.uuid for r in rest.records] == ["u3", "u4", "u5"] and rest.next_uuid is None
    tail = hub.feed(["i1"], "fp-a", first.head, 100)
    assert [r.uuid for _, r in tail.records] == ["u1"]


def test_epoch_survives_reopen(open_hub: OpenHub) -> None:
    a = open_hub("h")
    epoch = a.epoch
    a.push("box-a", [(1, rec("u1", 10))])
    a.close()
    b = open_hub("h")
    assert b.epoch == epoch and b.acked("box-a") == 1 and b.get("u1") is not None
    assert open_hub("other").epoch != epoch


def test_concurrent_group_edits_merge_and_are_counted_as_conflicts(hub: HubStore) -> None:
    base = rec("u1", 10, "k0")
    hub.push("box-a", [(1, base)])
    renamed = replace(base, meta=Versioned(Hlc(20, 0, "box-a"), Meta("", "renamed", "[]", 1)))
    shorter = replace(base, expiry=Versioned(Hlc(21, 0, "box-b"), 1_900_000_000))
    assert hub.push("box-a", [(2, renamed)]).conflicts == 0  # a plain newer state
    res = hub.push("box-b", [(1, shorter)])  # b never saw the rename
    assert res.applied == 1 and res.conflicts == 1
    got = hub.get("u1")
    assert got is not None and got.meta is not None and got.expiry is not None
    assert (got.meta.value.key, got.expiry.value) == ("renamed", 1_900_000_000)


def test_a_box_restored_from_a_backup_reusing_sequences_is_not_ignored(hub: HubStore) -> None:
    hub.push("box-a", [(1, rec("u1", 10)), (2, rec("u2", 11))])
    # The box's disk is restored to before seq 2: its next write gets seq 2 again.
    res = hub.push("box-a", [(2, rec("u3", 12))])
    assert res.skipped == 1 and res.applied == 1
    assert hub.get("u3") is not None and hub.acked("box-a") == 2


def test_a_reader_paging_during_concurrent_pushes_of_two_hub_processes_skips_nothing(
    open_hub: OpenHub,
) -> None:
    """Rule 2 with several hub processes: two store objects on the same data (two
    connections, as two hub processes hold) push at once while a reader pages the feed
    with a small limit. A sequence that became visible after a larger one had been read
    would be stepped over by the reader's cursor and never seen."""
    hubs = [open_hub("hub"), open_hub("hub")]
    reader = open_hub("hub")
    batches, per_batch = 40, 5
    written = {
        f"w{w}-{b:03}-{i}" for w in range(2) for b in range(batches) for i in range(per_batch)
    }
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for b in range(batches):
                changes = [(b * per_batch + i + 1, rec(f"w{w}-{b:03}-{i}", 1000 + b))
                           for i in range(per_batch)]  # fmt: skip
                hubs[w].push(f"box-{w}", changes)
        except BaseException as e:  # surfaced below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    seen: list[str] = []
    seqs: list[int] = []
    cursor = 0

    def page() -> None:
        nonlocal cursor
        got = reader.feed(["i1"], "fp-a", cursor, 7)
        seen.extend(r.uuid for _, r in got.records)
        seqs.extend(s for s, _ in got.records)
        assert got.next >= cursor
        cursor = got.next

    while any(t.is_alive() for t in threads):
        page()
    for t in threads:
        t.join()
    assert not errors
    while cursor < reader.head():
        page()
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len(seen) == len(set(seen))  # every entity once: each was written once
    assert set(seen) == written  # nothing committed behind the cursor was skipped
