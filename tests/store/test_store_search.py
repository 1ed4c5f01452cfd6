"""1:N search: exact against a brute-force numpy reference, filters, reopen, pack changes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import FINGERPRINT, ManualClock, make, unit_vectors

from edge.store import EntityStore, ExactIndex, IndexEntry, NewEntity


def _brute_force(
    gallery: np.ndarray, uuids: list[str], query: np.ndarray, k: int
) -> list[tuple[str, float]]:
    scores = gallery.astype(np.float64) @ (query / np.linalg.norm(query)).astype(np.float64)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(uuids[i], float(scores[i])) for i in order]


def _assert_same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert len(got) == len(want)
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    # Uuids agree except where two scores are within float32 noise of each other.
    for (gu, gs), (wu, _) in zip(got, want, strict=True):
        if gu != wu:
            assert any(abs(gs - s) < 1e-5 for u, s in want if u == gu)


def test_matches_brute_force_with_filters(store: EntityStore) -> None:
    n = 600
    vecs = unit_vectors(n, seed=31)
    rng = np.random.default_rng(31)
    colls = rng.choice(["a", "b", "c"], size=n)
    keys = rng.choice([f"p{i}" for i in range(40)], size=n)
    ents = store.create_many(
        [
            NewEntity("inst-a", "EDGE_FACE_V1", "EDGE_FACE_V1", v, str(c), str(k))
            for v, c, k in zip(vecs, colls, keys, strict=True)
        ]
    )
    uuids = [e.uuid for e in ents]
    queries = unit_vectors(20, seed=32)
    for q in queries:
        for coll, key in ((None, None), ("b", None), (None, "p7"), ("a", "p3")):
            sel = [
                i
                for i in range(n)
                if (coll is None or colls[i] == coll) and (key is None or keys[i] == key)
            ]
            want = _brute_force(vecs[sel], [uuids[i] for i in sel], q, 10)
            got = [
                (e.uuid, s)
                for e, s in store.search("inst-a", "EDGE_FACE_V1", q, collection=coll, key=key)
            ]
            _assert_same_ranking(got, want)
            for e, _ in store.search("inst-a", "EDGE_FACE_V1", q, collection=coll, key=key):
                assert coll is None or e.collection == coll
                assert key is None or e.key == key


def test_limit_larger_than_gallery_and_unknown_scopes(store: EntityStore) -> None:
    vecs = unit_vectors(5, seed=33)
    for v in vecs:
        make(store, v)
    q = vecs[0]
    res = store.search("inst-a", "EDGE_FACE_V1", q, limit=1000)
    assert len(res) == 5
    assert [s for _, s in res] == sorted((s for _, s in res), reverse=True)
    assert res[0][1] == pytest.approx(1.0, abs=1e-5)
    assert store.search("inst-a", "OTHER_MODEL", q) == []
    assert store.search("inst-zzz", "EDGE_FACE_V1", q) == []
    assert store.search("inst-a", "EDGE_FACE_V1", q, collection="nope") == []
    assert store.search("inst-a", "EDGE_FACE_V1", q, limit=0) == []


def test_search_only_sees_its_model(store: EntityStore) -> None:
    v = unit_vectors(1, seed=34)[0]
    a = make(store, v, model="EDGE_FACE_V1", model_name="JCV_FACE_K25000")
    make(store, v, model="OTHER_MODEL")
    res = store.search("inst-a", "EDGE_FACE_V1", v)
    assert [(e.uuid, e.model_name) for e, _ in res] == [(a.uuid, "JCV_FACE_K25000")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 300),
    k=st.integers(1, 40),
    removals=st.lists(st.integers(0, 299), max_size=60),
    seed=st.integers(0, 2**16),
)
def test_exact_index_equals_brute_force_after_adds_and_removals(
    n: int, k: int, removals: list[int], seed: int
) -> None:
    """Swap-remove and doubling growth must keep every row's uuid and vector together."""
    vecs = unit_vectors(n, dim=32, seed=seed)
    idx = ExactIndex()
    for i, v in enumerate(vecs):
        idx.add(IndexEntry(f"u{i:04d}", "i", "m", "", "", 10**10, v))
    gone = {r for r in removals if r < n}
    for r in gone:
        assert idx.remove(f"u{r:04d}")
    assert not idx.remove("u-unknown")
    keep = [i for i in range(n) if i not in gone]
    assert len(idx) == len(keep)
    q = unit_vectors(1, dim=32, seed=seed + 1)[0]
    got = idx.search("i", "m", q, now=0, limit=k)
    want = _brute_force(vecs[keep], [f"u{i:04d}" for i in keep], q, k) if keep else []
    _assert_same_ranking(got, want)


def test_index_update_moves_filters_and_vector() -> None:
    idx = ExactIndex()
    v1, v2 = unit_vectors(2, dim=16, seed=35)
    idx.add(IndexEntry("x", "i", "m", "c1", "k1", 100, v1))
    assert idx.search("i", "m", v1, now=0, collection="c2") == []
    assert idx.update("x", collection="c2", vector=v2, expires_at=200)
    ((uid, score),) = idx.search("i", "m", v2, now=150, collection="c2")
    assert uid == "x" and score == pytest.approx(1.0, abs=1e-6)
    assert idx.search("i", "m", v2, now=200) == []  # expired by the index's own clock
    assert not idx.update("nope", key="z")
    with pytest.raises(ValueError):
        idx.update("x", vector=np.ones(8, np.float32))


def test_search_results_identical_after_restart(
    open_store: Callable[..., EntityStore], clock: ManualClock
) -> None:
    s = open_store()
    vecs = unit_vectors(300, seed=36)
    ents = s.create_many(
        [
            NewEntity("inst-a", "EDGE_FACE_V1", "EDGE_FACE_V1", v, collection=f"c{i % 3}")
            for i, v in enumerate(vecs)
        ]
    )
    # Mutate: deletes (swap-remove), vector updates, filter updates, a short ttl.
    for e in ents[::7]:
        s.delete("inst-a", e.uuid)
    for i, e in enumerate(ents[1::11]):
        s.update("inst-a", e.uuid, vector=unit_vectors(1, seed=1000 + i)[0], collection="moved")
    s.update("inst-a", ents[2].uuid, ttl=100)
    queries = unit_vectors(15, seed=37)

    def snapshot(store: EntityStore) -> list[list[tuple[str, float]]]:
        out = []
        for q in queries:
            for coll in (None, "c1", "moved"):
                res = store.search("inst-a", "EDGE_FACE_V1", q, collection=coll, limit=25)
                out.append([(e.uuid, round(sc, 5)) for e, sc in res])
        return out

    before = snapshot(s)
    s.close()
    s2 = open_store()
    assert snapshot(s2) == before
    assert len(s2.index) == s2.count()


def test_vectors_of_another_pack_are_listed_but_not_searched(
    open_store: Callable[..., EntityStore],
) -> None:
    s = open_store()
    v = unit_vectors(1, seed=38)[0]
    old = make(s, v)
    s.close()
    s2 = open_store(pack_fingerprint=FINGERPRINT + "-new")
    assert s2.stale_count == 1
    assert s2.get("inst-a", old.uuid) is not None
    assert s2.search("inst-a", "EDGE_FACE_V1", v) == []
    # Re-enrolling with a new-pack vector makes it searchable again and re-stamps it.
    s2.update("inst-a", old.uuid, vector=v)
    assert [e.uuid for e, _ in s2.search("inst-a", "EDGE_FACE_V1", v)] == [old.uuid]
    assert s2.get("inst-a", old.uuid).pack_fingerprint == FINGERPRINT + "-new"


def test_reopen_sizes_the_index_exactly(open_store: Callable[..., EntityStore]) -> None:
    s = open_store()
    n = 1000
    vecs = unit_vectors(n, seed=39)
    for start in range(0, n, 100):  # growing batch by batch doubles the capacity to 1024
        s.create_many(
            [NewEntity("inst-a", "EDGE_FACE_V1", "M", v) for v in vecs[start : start + 100]]
        )
    grown = s.index.nbytes()
    s.close()
    s2 = open_store()
    row_bytes = 128 * 4 + 8 + 8 + 8  # vector + expiry + collection hash + key hash
    assert s2.index.nbytes() == n * row_bytes < grown


def test_row_with_a_foreign_dimension_is_skipped_not_fatal(
    open_store: Callable[..., EntityStore], db_path: Path
) -> None:
    s = open_store()
    good = [make(s, v).uuid for v in unit_vectors(3, seed=40)]
    s.close()
    with sqlite3.connect(db_path) as conn:  # e.g. written by a buggy older release
        conn.execute(
            "INSERT INTO entities (uuid, instance, model, model_name, created_at, updated_at, "
            "expires_at, dim, vector, pack_fingerprint) VALUES ('ffff', 'inst-a', "
            "'EDGE_FACE_V1', 'EDGE_FACE_V1', 0, 0, 32503680000, 4, zeroblob(16), ?)",
            (FINGERPRINT,),
        )
    s2 = open_store()
    assert s2.stale_count == 1
    q = unit_vectors(1, seed=41)[0]
    assert {e.uuid for e, _ in s2.search("inst-a", "EDGE_FACE_V1", q)} == set(good)


def test_index_add_replaces_the_same_uuid_even_across_partitions() -> None:
    idx = ExactIndex()
    v1, v2 = unit_vectors(2, dim=16, seed=42)
    idx.add(IndexEntry("x", "i", "m", "", "", 100, v1))
    idx.add(IndexEntry("x", "i", "m2", "", "", 100, v2))
    assert len(idx) == 1 and "x" in idx
    assert idx.search("i", "m", v1, now=0) == []
    assert [u for u, _ in idx.search("i", "m2", v2, now=0)] == ["x"]
    with pytest.raises(ValueError):  # wrong dimension: refused, the old entry kept
        idx.add(IndexEntry("x", "i", "m2", "", "", 100, np.ones(8, np.float32)))
    assert [u for u, _ in idx.search("i", "m2", v2, now=0)] == ["x"]
    assert idx.remove("x") and len(idx) == 0 and "x" not in idx
