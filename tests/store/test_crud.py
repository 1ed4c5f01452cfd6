"""Create/read/update/delete semantics, instance isolation and input validation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta, timezone

import numpy as np
import pytest
from store_helpers import DIM, ManualClock, make, unit_vectors

from edge.store import NEVER_EXPIRES, EntityStore, NewEntity

META = [
    {"name": "name", "type": "string", "value": "Zoë"},
    {"name": "floor", "type": "integer", "value": 3},
    {"name": "vip", "type": "boolean", "value": True},
    {"name": "score", "type": "float", "value": 0.5},
]


def test_create_then_get_round_trips_every_field(store: EntityStore, clock: ManualClock) -> None:
    vec = unit_vectors(1, seed=1)[0] * 7.0  # not normalised on purpose
    e = make(
        store,
        vec,
        model_name="JCV_FACE_K25000",
        collection="staff",
        key="person-1",
        metadata=META,
        ttl=-1,
    )
    got = store.get("inst-a", e.uuid, with_vector=True)
    assert got is not None
    assert (got.uuid, got.instance, got.model, got.model_name) == (
        e.uuid,
        "inst-a",
        "EDGE_FACE_V1",
        "JCV_FACE_K25000",
    )
    assert (got.collection, got.key, got.metadata) == ("staff", "person-1", META)
    # Second precision, tz-aware UTC, "never" = 3000-01-01T00:00:00Z.
    assert got.created_at == clock.now.replace(microsecond=0)
    assert got.created_at.tzinfo == timezone.utc
    assert got.updated_at == got.created_at
    assert got.expires_at.isoformat() == "3000-01-01T00:00:00+00:00"
    assert int(got.expires_at.timestamp()) == NEVER_EXPIRES
    # Stored L2-normalised float32 of the right length.
    assert got.vector is not None and got.vector.dtype == np.float32
    assert got.vector.shape == (DIM,)
    np.testing.assert_allclose(got.vector, vec / np.linalg.norm(vec), atol=1e-6)
    # Without asking, no vector comes back.
    assert store.get("inst-a", e.uuid).vector is None


def test_ttl_sets_expiry_from_now(store: EntityStore, clock: ManualClock) -> None:
    e = make(store, ttl=3600)
    assert e.expires_at == clock.now.replace(microsecond=0) + timedelta(seconds=3600)


def test_instances_are_isolated(store: EntityStore) -> None:
    vec = unit_vectors(1, seed=2)[0]
    a = make(store, vec, instance="inst-a")
    b = make(store, vec, instance="inst-b")
    assert store.get("inst-b", a.uuid) is None
    assert store.get("inst-a", b.uuid) is None
    assert store.update("inst-b", a.uuid, key="stolen") is None
    assert store.delete("inst-b", a.uuid) is False
    assert store.get("inst-a", a.uuid).key == ""  # untouched
    assert [x.uuid for x in store.list("inst-a")[1]] == [a.uuid]
    assert [x.uuid for x in store.list("inst-b")[1]] == [b.uuid]
    assert [h.uuid for h, _ in store.search("inst-a", "EDGE_FACE_V1", vec)] == [a.uuid]
    assert [h.uuid for h, _ in store.search("inst-b", "EDGE_FACE_V1", vec)] == [b.uuid]


def test_update_changes_only_given_fields(store: EntityStore, clock: ManualClock) -> None:
    e = make(store, collection="c1", key="k1", metadata=META, ttl=100)
    clock.advance(42)
    u = store.update("inst-a", e.uuid, key="k2")
    assert u is not None
    assert (u.collection, u.key, u.metadata, u.model_name) == ("c1", "k2", META, e.model_name)
    assert u.created_at == e.created_at
    assert u.updated_at == e.updated_at + timedelta(seconds=42)
    assert u.expires_at == e.expires_at  # ttl not given: expiry kept
    assert store.get("inst-a", e.uuid) == u


def test_update_ttl_restarts_from_now(store: EntityStore, clock: ManualClock) -> None:
    e = make(store, ttl=100)
    clock.advance(90)
    u = store.update("inst-a", e.uuid, ttl=100)
    assert u.expires_at == e.expires_at + timedelta(seconds=90)
    clock.advance(50)  # past the first expiry, inside the restarted one
    assert store.get("inst-a", e.uuid) is not None
    u2 = store.update("inst-a", e.uuid, ttl=-1)
    assert int(u2.expires_at.timestamp()) == NEVER_EXPIRES


def test_update_metadata_replaces_whole_list_and_model_name(store: EntityStore) -> None:
    e = make(store, metadata=META)
    new_meta = [{"name": "only", "type": "string", "value": "x"}]
    u = store.update("inst-a", e.uuid, metadata=new_meta, model_name="JCV_FACE_J10000")
    assert u.metadata == new_meta
    assert store.get("inst-a", e.uuid).model_name == "JCV_FACE_J10000"
    assert store.update("inst-a", e.uuid, metadata=[]).metadata == []


def test_update_vector_replaces_search_feature(store: EntityStore) -> None:
    v1, v2 = unit_vectors(2, seed=3)
    e = make(store, v1)
    store.update("inst-a", e.uuid, vector=v2)
    got = store.get("inst-a", e.uuid, with_vector=True)
    np.testing.assert_allclose(got.vector, v2, atol=1e-6)
    (hit, score), *_ = store.search("inst-a", "EDGE_FACE_V1", v2)
    assert hit.uuid == e.uuid and score == pytest.approx(1.0, abs=1e-5)
    (_, score1), *_ = store.search("inst-a", "EDGE_FACE_V1", v1)
    assert score1 == pytest.approx(float(v1 @ v2), abs=1e-5)


def test_delete(store: EntityStore) -> None:
    vec = unit_vectors(1, seed=4)[0]
    e = make(store, vec)
    assert store.delete("inst-a", e.uuid) is True
    assert store.get("inst-a", e.uuid) is None
    assert store.delete("inst-a", e.uuid) is False
    assert store.update("inst-a", e.uuid, key="x") is None
    assert store.search("inst-a", "EDGE_FACE_V1", vec) == []
    assert store.list("inst-a") == (0, [])


def test_unknown_and_malformed_uuids_are_just_absent(store: EntityStore) -> None:
    make(store)
    for bad in ("", "not-a-uuid", "01a204cc-b8b8-72b0-8a6a-e48d651fc666", "' OR 1=1 --"):
        assert store.get("inst-a", bad) is None
        assert store.delete("inst-a", bad) is False
        assert store.update("inst-a", bad, key="k") is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ttl", 0),
        ("ttl", -2),
        ("ttl", True),
        ("vector", np.zeros(DIM, np.float32)),
        ("vector", np.full(DIM, np.nan, np.float32)),
        ("vector", np.ones((2, DIM), np.float32)),
        ("vector", np.ones(0, np.float32)),
        ("metadata", [{"name": "f", "type": "float", "value": float("inf")}]),
        ("instance", ""),
    ],
)
def test_invalid_create_writes_nothing(store: EntityStore, field: str, value: object) -> None:
    kw: dict[str, object] = {"vector": unit_vectors(1, seed=5)[0], field: value}
    with pytest.raises(ValueError):
        make(store, **kw)
    assert store.count() == 0
    assert store.changes_since(0) == []


def test_dimension_mismatch_is_refused_before_writing(store: EntityStore) -> None:
    e = make(store)
    with pytest.raises(ValueError, match="dimension"):
        make(store, unit_vectors(1, dim=DIM * 2, seed=6)[0])
    with pytest.raises(ValueError, match="dimension"):
        store.update("inst-a", e.uuid, vector=unit_vectors(1, dim=64, seed=6)[0], key="zzz")
    assert store.count() == 1
    assert store.get("inst-a", e.uuid).key == ""
    assert [c.op for c in store.changes_since(0)] == ["create"]
    # Another model may use another dimension.
    other = make(store, unit_vectors(1, dim=512, seed=7)[0], model="OTHER")
    assert store.get("inst-a", other.uuid, with_vector=True).vector.shape == (512,)


def test_closed_store_refuses_work(open_store: Callable[..., EntityStore]) -> None:
    s = open_store()
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError):
        make(s)
    with pytest.raises(RuntimeError):
        s.get("inst-a", "x")


def test_bulk_create_is_all_or_nothing(store: EntityStore) -> None:
    good = NewEntity("inst-a", "EDGE_FACE_V1", "EDGE_FACE_V1", unit_vectors(1, seed=8)[0])
    for bad in (
        NewEntity("inst-a", "NEW_MODEL", "NEW_MODEL", unit_vectors(1, dim=64, seed=9)[0]),
        NewEntity("inst-a", "EDGE_FACE_V1", "EDGE_FACE_V1", unit_vectors(1, seed=9)[0], ttl=0),
    ):
        first = NewEntity("inst-a", "NEW_MODEL", "NEW_MODEL", unit_vectors(1, dim=32, seed=9)[0])
        with pytest.raises(ValueError):
            store.create_many([good, first, bad])
        assert store.count() == 0 and len(store.index) == 0
        assert store.changes_since(0) == []
    assert len(store.create_many([good, good])) == 2
