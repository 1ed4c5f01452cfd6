"""TTL: an expired entity is gone at once for every call; purge removes it physically."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from store_helpers import ManualClock, make, unit_vectors

from edge.store import EntityStore


def _rows(db_path: Path) -> int:
    with sqlite3.connect(db_path) as conn:
        return int(conn.execute("SELECT count(*) FROM entities").fetchone()[0])


def test_expired_entity_is_invisible_to_every_call(
    store: EntityStore, clock: ManualClock, db_path: Path
) -> None:
    vec = unit_vectors(1, seed=11)[0]
    short = make(store, vec, ttl=10, collection="c")
    keep = make(store, vec, ttl=-1, collection="c")
    clock.advance(9)
    assert store.get("inst-a", short.uuid) is not None
    assert len(store.search("inst-a", "EDGE_FACE_V1", vec)) == 2

    clock.advance(1)  # exactly expires_at: expired
    assert store.get("inst-a", short.uuid) is None
    assert store.list("inst-a") == (1, [store.get("inst-a", keep.uuid)])
    assert store.list("inst-a", collection="c")[0] == 1
    assert [e.uuid for e, _ in store.search("inst-a", "EDGE_FACE_V1", vec)] == [keep.uuid]
    assert [e.uuid for e, _ in store.search("inst-a", "EDGE_FACE_V1", vec, collection="c")] == [
        keep.uuid
    ]
    assert store.update("inst-a", short.uuid, ttl=-1) is None  # cannot be revived
    assert store.delete("inst-a", short.uuid) is False
    assert store.count() == 1
    # Still on disk until the purge.
    assert _rows(db_path) == 2


def test_purge_deletes_expired_rows_and_logs_expire_changes(
    store: EntityStore, clock: ManualClock, db_path: Path
) -> None:
    doomed = [make(store, ttl=5).uuid for _ in range(3)]
    alive = make(store, ttl=50).uuid
    assert store.purge_expired() == 0
    clock.advance(6)
    seen = []
    store.add_listener(seen.append)
    assert store.purge_expired() == 3
    assert _rows(db_path) == 1
    expire = [c for c in store.changes_since(0) if c.op == "expire"]
    assert sorted(c.entity_uuid for c in expire) == sorted(doomed)
    assert [c.change_id for c in seen] == [c.change_id for c in expire]
    assert all(c.instance == "inst-a" and "vector" not in c.payload for c in expire)
    assert store.purge_expired() == 0
    assert store.get("inst-a", alive) is not None


def test_purge_in_batches_of_many(store: EntityStore, clock: ManualClock) -> None:
    from edge.store.entities import NewEntity

    vecs = unit_vectors(2500, seed=12)
    store.create_many([NewEntity("inst-a", "EDGE_FACE_V1", "EDGE_FACE_V1", v, ttl=1) for v in vecs])
    clock.advance(1)
    assert store.purge_expired() == 2500
    assert len(store.index) == 0
    assert store.count() == 0


def test_expired_rows_are_not_searchable_after_reopen(
    open_store: Callable[..., EntityStore], clock: ManualClock
) -> None:
    s = open_store()
    vec = unit_vectors(1, seed=13)[0]
    e = make(s, vec, ttl=5)
    s.close()
    clock.advance(5)
    s2 = open_store()
    assert s2.search("inst-a", "EDGE_FACE_V1", vec) == []
    assert s2.get("inst-a", e.uuid) is None
    assert s2.purge_expired() == 1
