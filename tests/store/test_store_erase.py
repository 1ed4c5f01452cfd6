"""Erase means erased: no byte of a deleted or expired face is left in the database files."""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from erase_helpers import needles, present, raw_files
from store_helpers import FINGERPRINT, ManualClock, make, unit_vectors

from edge.store import Change, Entity, EntityStore
from edge.store.schema import MIGRATIONS, migrate


def _marked(store: EntityStore, vector: np.ndarray | None = None, **kw: object) -> Entity:
    """An entity whose key and metadata strings occur nowhere else in the file."""
    tag = uuid.uuid4().hex
    meta = [{"name": f"name-{tag}", "type": "string", "value": f"value-{tag}"}]
    return make(store, vector, key=f"key-{tag}", metadata=meta, **kw)


def test_deleted_and_purged_entities_leave_no_bytes_on_disk(
    store: EntityStore, clock: ManualClock, db_path: Path
) -> None:
    deleted = _marked(store)
    store.update("inst-a", deleted.uuid, vector=unit_vectors(1, seed=301)[0])  # re-enrolled
    expired = _marked(store, ttl=5)
    live = _marked(store)
    gone = {"deleted": needles(store, deleted), "expired": needles(store, expired)}
    kept = needles(store, live)
    # The scan sees what is there: before the erase every needle is on disk.
    for wanted in (*gone.values(), kept):
        assert present(raw_files(db_path), wanted) == sorted(wanted)

    assert store.delete("inst-a", deleted.uuid)
    clock.advance(5)
    assert store.purge_expired() == 1
    assert not store.erase_pending

    blob = raw_files(db_path)  # the store is still open, as in a running service
    assert present(blob, gone["deleted"]) == []
    assert present(blob, gone["expired"]) == []
    assert present(blob, kept) == sorted(kept)
    assert store.get("inst-a", live.uuid) is not None
    # Only the tombstones remain of the erased entities: what replication needs, no face.
    tombstones = {c.entity_uuid: c for c in store.changes_since(0) if c.op != "create"}
    assert set(tombstones[deleted.uuid].payload) == {"uuid", "model", "deleted"}
    assert tombstones[expired.uuid].op == "expire"
    assert set(tombstones[expired.uuid].payload) == {"uuid", "model", "expires_at"}
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT payload FROM changes WHERE entity_uuid IN (?, ?)", (deleted.uuid, expired.uuid)
        ).fetchall()
    assert len(rows) == 2 and all("vector" not in json.loads(p) for (p,) in rows)


def test_an_erase_blocked_by_a_reader_is_finished_by_the_next_purge(
    store: EntityStore, db_path: Path
) -> None:
    victim = _marked(store)
    wanted = needles(store, victim)
    reader = sqlite3.connect(db_path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM entities").fetchone()[0] == 1
        # The reader's snapshot still needs the old pages: the delete commits, the scrub waits.
        assert store.delete("inst-a", victim.uuid)
        assert store.get("inst-a", victim.uuid) is None
        assert store.erase_pending
        assert present(raw_files(db_path), wanted) != []
        reader.execute("COMMIT")
    finally:
        reader.close()
    assert store.purge_expired() == 0  # the periodic purge retries the checkpoint
    assert not store.erase_pending
    assert present(raw_files(db_path), wanted) == []


def test_age_retention_prunes_the_log_at_writes_and_listeners_hear_everything(
    open_store: Callable[..., EntityStore], clock: ManualClock
) -> None:
    store = open_store(change_log_keep_s=60)
    heard: list[Change] = []
    store.add_listener(heard.append)
    old = make(store)
    clock.advance(30)
    mid = make(store)
    assert [c.entity_uuid for c in store.changes_since(0)] == [old.uuid, mid.uuid]
    clock.advance(31)  # old is now 61 s old, mid 31 s
    new = make(store)
    assert [c.entity_uuid for c in store.changes_since(0)] == [mid.uuid, new.uuid]
    assert [c.entity_uuid for c in heard] == [old.uuid, mid.uuid, new.uuid]
    assert store.count() == 3  # pruning the log never touches entities


def test_count_retention_keeps_the_newest_rows(open_store: Callable[..., EntityStore]) -> None:
    store = open_store(change_log_keep_rows=2)
    made = [make(store) for _ in range(5)]
    assert [c.entity_uuid for c in store.changes_since(0)] == [e.uuid for e in made[-2:]]
    cursor = store.changes_since(0)[0].seq
    assert store.prune_changes(cursor) == 1  # a sync-style ack still works alongside
    assert [c.entity_uuid for c in store.changes_since(0)] == [made[-1].uuid]


def test_zero_retention_keeps_nothing_after_the_write(
    open_store: Callable[..., EntityStore],
) -> None:
    store = open_store(change_log_keep_rows=0)
    heard: list[Change] = []
    store.add_listener(heard.append)
    e = make(store)
    store.update("inst-a", e.uuid, key="k")
    store.delete("inst-a", e.uuid)
    assert store.changes_since(0) == []
    assert [c.op for c in heard] == ["create", "update", "delete"]


def _file_size(db_path: Path) -> int:
    return sum(
        p.stat().st_size for p in (db_path, db_path.with_name(db_path.name + "-wal")) if p.exists()
    )


def test_file_shrinks_back_with_the_live_gallery(
    open_store: Callable[..., EntityStore], db_path: Path, tmp_path: Path, clock: ManualClock
) -> None:
    """Churn (enrol many, erase most) leaves a file about the size of its live rows."""
    dim = 512
    store = open_store(change_log_keep_s=0)
    vecs = unit_vectors(600, dim=dim, seed=302)
    made = [make(store, v, metadata=[{"name": "n", "type": "string", "value": "x" * 200}])
            for v in vecs]  # fmt: skip
    peak = _file_size(db_path)
    for e in made[20:]:
        assert store.delete("inst-a", e.uuid)
    clock.advance(1)
    make(store, vecs[0])  # one more write prunes the last log rows by age
    store.purge_expired()  # the service's periodic tick empties the WAL
    churned = _file_size(db_path)

    fresh_path = tmp_path / "fresh.sqlite3"
    fresh = open_store(path=fresh_path, change_log_keep_s=0)
    for v in vecs[:21]:
        make(fresh, v, metadata=[{"name": "n", "type": "string", "value": "x" * 200}])
    fresh.purge_expired()
    # Half-empty pages are allowed for; the peak is not.
    assert churned < peak / 10, (churned, peak)
    assert churned <= 2 * _file_size(fresh_path), (churned, _file_size(fresh_path))


def _legacy_file(db_path: Path, live_vec: np.ndarray, erased_vec: np.ndarray) -> None:
    """A file as the previous release left it: v1 schema, no auto-vacuum, and the full
    create payload of an entity deleted long ago still in the change log."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    migrate(conn, MIGRATIONS[:1])
    conn.execute("PRAGMA secure_delete=OFF")  # as the previous release ran
    live_id, erased_id = str(uuid.uuid4()), str(uuid.uuid4())
    for uid, vec, key in (
        (live_id, live_vec, "live-key"),
        (erased_id, erased_vec, "erased-key-legacy"),
    ):
        conn.execute(
            "INSERT INTO entities (uuid, instance, model, model_name, collection, key, metadata, "
            "created_at, updated_at, expires_at, dim, vector, pack_fingerprint) "
            "VALUES (?, 'inst-a', 'EDGE_FACE_V1', 'EDGE_FACE_V1', '', ?, '[]', 1, 1, "
            "32503680000, ?, ?, ?)",
            (uid, key, vec.shape[0], vec.astype("<f4").tobytes(), FINGERPRINT),
        )
    conn.execute("DELETE FROM entities WHERE uuid = ?", (erased_id,))  # freed, not zeroed
    for seq, (op, uid, vec, key) in enumerate(
        [
            ("create", live_id, live_vec, "live-key"),
            ("create", erased_id, erased_vec, "erased-key-legacy"),
            ("update", erased_id, erased_vec, "erased-key-legacy"),
            ("delete", erased_id, None, None),
        ],
        start=1,
    ):
        payload = {"uuid": uid, "model": "EDGE_FACE_V1"}
        if vec is not None:
            payload |= {
                "key": key,
                "vector": base64.b64encode(vec.astype("<f4").tobytes()).decode(),
            }
        conn.execute(
            "INSERT INTO changes (seq, change_id, op, entity_uuid, instance, at_ms, payload) "
            "VALUES (?, ?, ?, ?, 'inst-a', ?, ?)",
            (seq, str(uuid.uuid4()), op, uid, seq, json.dumps(payload)),
        )
    conn.close()


def test_a_file_from_the_previous_release_is_scrubbed_at_open(
    open_store: Callable[..., EntityStore], db_path: Path
) -> None:
    live_vec, erased_vec = unit_vectors(2, seed=303)
    _legacy_file(db_path, live_vec, erased_vec)
    erased = {
        "vector": erased_vec.astype("<f4").tobytes(),
        "vector-b64": base64.b64encode(erased_vec.astype("<f4").tobytes()),
        "key": b"erased-key-legacy",
    }
    assert present(raw_files(db_path), erased) == sorted(erased)

    store = open_store()
    assert present(raw_files(db_path), erased) == []
    assert live_vec.astype("<f4").tobytes() in raw_files(db_path)
    assert [c.op for c in store.changes_since(0)] == ["create", "delete"]
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on
