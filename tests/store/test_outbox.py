"""The change log (outbox): one row per change, written in the write's own transaction."""

from __future__ import annotations

import base64
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from store_helpers import ManualClock, make, unit_vectors

from edge.store import Change, EntityStore


def _count(db_path: Path, table: str) -> int:
    with sqlite3.connect(db_path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_one_change_per_write_with_state_payload(store: EntityStore, clock: ManualClock) -> None:
    vec = unit_vectors(1, seed=21)[0]
    t0 = clock.now
    heard: list[Change] = []
    store.add_listener(heard.append)
    e = make(
        store,
        vec,
        collection="c",
        key="k",
        metadata=[{"name": "a", "type": "string", "value": "b"}],
    )
    logged_create = store.changes_since(0)
    clock.advance(2)
    store.update("inst-a", e.uuid, key="k2")
    logged_update = store.changes_since(0)
    store.delete("inst-a", e.uuid)
    store.delete("inst-a", e.uuid)  # no-op: no change row
    store.update("inst-a", e.uuid, key="k3")  # no-op

    # Listeners hear every change; the log keeps each entity's latest row only.
    assert [c.op for c in heard] == ["create", "update", "delete"]
    assert logged_create == heard[:1] and logged_update == heard[1:2]
    changes = store.changes_since(0)
    assert changes == heard[2:]
    assert [c.seq for c in heard] == sorted(c.seq for c in heard)
    assert len({c.change_id for c in heard}) == 3
    assert all(uuid.UUID(c.change_id).version == 4 for c in heard)
    assert all(c.entity_uuid == e.uuid and c.instance == "inst-a" for c in heard)
    create, update, delete = heard
    assert create.at == t0  # millisecond precision; the test clock sits on a whole ms
    assert create.payload["key"] == "k" and update.payload["key"] == "k2"
    assert create.payload["metadata"] == [{"name": "a", "type": "string", "value": "b"}]
    assert create.payload["expires_at"] == "3000-01-01T00:00:00Z"
    assert create.payload["pack_fingerprint"] == store.pack_fingerprint
    restored = np.frombuffer(base64.b64decode(update.payload["vector"]), dtype="<f4")
    np.testing.assert_allclose(restored, vec, atol=1e-6)
    # The tombstone is all that is left of the entity: no vector, no metadata.
    # (plus the delete's clock stamp, which fleet sync merges by).
    assert delete.payload == {
        "uuid": e.uuid,
        "model": "EDGE_FACE_V1",
        "deleted": delete.payload["deleted"],
    }
    assert delete.payload["deleted"] > update.payload["stamps"]["meta"]
    # Cursor semantics.
    other = make(store)
    assert [c.op for c in store.changes_since(create.seq)] == ["delete", "create"]
    assert [c.op for c in store.changes_since(0, limit=1)] == ["delete"]
    assert [c.entity_uuid for c in store.changes_since(delete.seq)] == [other.uuid]


def test_listeners_run_after_commit_and_a_failing_one_is_contained(
    store: EntityStore, db_path: Path
) -> None:
    seen: list[tuple[str, int]] = []

    def listener(c: Change) -> None:
        # Called after commit: another connection already sees the row.
        seen.append((c.op, _count(db_path, "entities")))

    def broken(c: Change) -> None:
        raise RuntimeError("listener bug")

    store.add_listener(broken)
    store.add_listener(listener)
    e = make(store)
    store.update("inst-a", e.uuid, key="x")
    store.delete("inst-a", e.uuid)
    assert seen == [("create", 1), ("update", 1), ("delete", 0)]


def _install_failing_trigger(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TRIGGER fail_outbox BEFORE INSERT ON changes "
            "BEGIN SELECT RAISE(ABORT, 'outbox write failed'); END"
        )


def _drop_failing_trigger(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TRIGGER fail_outbox")


def test_failed_outbox_insert_rolls_back_the_entity_write(
    open_store: Callable[..., EntityStore], db_path: Path
) -> None:
    """The entity row is written first; if the change row then fails, neither exists."""
    store = open_store()
    vec = unit_vectors(1, seed=22)[0]
    kept = make(store, vec, key="before")
    seen: list[Change] = []
    store.add_listener(seen.append)
    _install_failing_trigger(db_path)

    with pytest.raises(sqlite3.IntegrityError, match="outbox write failed"):
        make(store, vec, key="new")
    with pytest.raises(sqlite3.IntegrityError):
        store.update("inst-a", kept.uuid, key="after")
    with pytest.raises(sqlite3.IntegrityError):
        store.delete("inst-a", kept.uuid)

    assert _count(db_path, "entities") == 1
    assert _count(db_path, "changes") == 1
    assert store.get("inst-a", kept.uuid).key == "before"
    assert seen == []
    # The index was not touched by the failed writes.
    assert [e.uuid for e, _ in store.search("inst-a", "EDGE_FACE_V1", vec)] == [kept.uuid]
    assert len(store.index) == 1

    _drop_failing_trigger(db_path)  # the store keeps working afterwards
    e = make(store, vec, key="new")
    assert store.update("inst-a", kept.uuid, key="after").key == "after"
    # kept's update supersedes its create row (the log keeps each entity's latest change).
    assert [(c.op, c.entity_uuid) for c in store.changes_since(0)] == [
        ("create", e.uuid),
        ("update", kept.uuid),
    ]
    assert {x.uuid for x, _ in store.search("inst-a", "EDGE_FACE_V1", vec)} == {kept.uuid, e.uuid}


def test_failed_purge_rolls_back(store: EntityStore, clock: ManualClock, db_path: Path) -> None:
    make(store, ttl=1)
    clock.advance(1)
    _install_failing_trigger(db_path)
    with pytest.raises(sqlite3.IntegrityError):
        store.purge_expired()
    assert _count(db_path, "entities") == 1
    assert [c.op for c in store.changes_since(0)] == ["create"]  # not erased from the log
    _drop_failing_trigger(db_path)
    assert store.purge_expired() == 1
    assert [c.op for c in store.changes_since(0)] == ["expire"]  # the tombstone supersedes


def test_prune_keeps_seq_monotonic_across_restart(
    open_store: Callable[..., EntityStore],
) -> None:
    s = open_store()
    for _ in range(3):
        make(s)
    last = s.changes_since(0)[-1].seq
    assert s.prune_changes(last) == 3
    assert s.changes_since(0) == []
    s.close()
    s2 = open_store()
    make(s2)
    (c,) = s2.changes_since(0)
    assert c.seq > last  # never reuses a delivered number
    assert s2.count() == 4  # pruning the log never touches entities
