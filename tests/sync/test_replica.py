"""Boxes and a hub as real SQLite stores, synced by the real worker through an in-process
link (the HTTP transport has its own tests): what one box writes, the others get; deletes
are final; models never mix; a pulled batch and its cursor commit together; no echo."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.config import SyncConfig
from edge.store import EntityStore
from edge.sync.hub_postgres import PostgresHubStore
from edge.sync.hub_sqlite import SqliteHubStore
from edge.sync.hubstore import HubStore
from edge.sync.link import LocalLink
from edge.sync.worker import SyncWorker
from tests.support.postgres import shared_cluster

FP = "pack-v1"
INST = "inst-a"


def unit(seed: int, dim: int = 32) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture(params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HubStore]:
    """Each box-and-hub test runs on both hub engines (PostgreSQL: the tests' cluster)."""
    h: HubStore = (
        SqliteHubStore(tmp_path / "hub.sqlite3") if request.param == "sqlite"
        else PostgresHubStore(shared_cluster().new_database())
    )  # fmt: skip
    yield h
    h.close()


@pytest.fixture
def box(tmp_path: Path, hub: SqliteHubStore) -> Iterator[Callable[..., SyncWorker]]:
    made: list[EntityStore] = []

    def _box(name: str, fingerprint: str = FP) -> SyncWorker:
        store = EntityStore(tmp_path / f"{name}.sqlite3", pack_fingerprint=fingerprint)
        made.append(store)
        return SyncWorker(store, SyncConfig(), LocalLink(hub), [INST], name=name)

    yield _box
    for s in made:
        s.close()


def enrol(w: SyncWorker, seed: int, **kw: object) -> str:
    e = w.store.create(
        instance=INST, model="EDGE_FACE_V1", model_name="EDGE_FACE_V1",
        collection=str(kw.get("collection", "")), key=str(kw.get("key", f"k{seed}")),
        metadata=[], ttl=int(kw.get("ttl", -1)), vector=unit(seed),  # type: ignore[call-overload]
    )  # fmt: skip
    return e.uuid


def search(w: SyncWorker, seed: int) -> list[tuple[str, float]]:
    return [(e.uuid, s) for e, s in w.store.search(INST, "EDGE_FACE_V1", unit(seed), limit=3)]


def outbox(w: SyncWorker) -> int:
    return len(w.store.changes_since(0))


async def test_an_enrolment_at_one_box_is_found_at_another_without_echo(
    box: Callable[..., SyncWorker],
) -> None:
    a, b = box("a"), box("b")
    uuid = enrol(a, 1)
    assert outbox(a) == 1
    await a.sync_now()
    assert outbox(a) == 0  # acknowledged by the hub: pruned
    await b.sync_now()
    hits = search(b, 1)
    assert hits[0][0] == uuid and hits[0][1] == pytest.approx(1.0, abs=1e-3)
    got = b.store.get(INST, uuid)
    assert got is not None and got.key == "k1"
    assert outbox(b) == 0  # applied from the hub: not sent back
    await a.sync_now()  # a sees its own record come back: nothing changes
    assert a.status.applied == 0 and outbox(a) == 0


async def test_a_delete_is_final_and_a_stale_box_cannot_bring_the_face_back(
    box: Callable[..., SyncWorker], hub: SqliteHubStore
) -> None:
    a, b, stale = box("a"), box("b"), box("stale")
    uuid = enrol(a, 2)
    for w in (a, b, stale):
        await w.sync_now()
    assert all(w.store.get(INST, uuid) for w in (a, b, stale))
    # `stale` is offline: it patches the face while `a` deletes it.
    assert stale.store.update(INST, uuid, key="stale-edit") is not None
    assert a.store.delete(INST, uuid)
    await a.sync_now()
    await b.sync_now()
    assert b.store.get(INST, uuid) is None and all(u != uuid for u, _ in search(b, 2))
    await stale.sync_now()  # it pushes its later edit, then learns of the delete
    assert stale.store.get(INST, uuid) is None
    rec = hub.get(uuid)
    assert rec is not None and rec.deleted is not None and rec.vectors == ()
    await b.sync_now()
    assert b.store.get(INST, uuid) is None
    # Each box keeps the tombstone (a uuid and a stamp), no vector, no change rows.
    for w in (a, b, stale):
        with sqlite3.connect(w.store.path) as c:
            assert (
                c.execute("SELECT count(*) FROM tombstones WHERE uuid = ?", (uuid,)).fetchone()[0]
                == 1
            )
            assert (
                c.execute("SELECT count(*) FROM entities WHERE uuid = ?", (uuid,)).fetchone()[0]
                == 0
            )


async def test_concurrent_edits_of_different_field_groups_both_survive(
    box: Callable[..., SyncWorker],
) -> None:
    a, b = box("a"), box("b")
    uuid = enrol(a, 3)
    await a.sync_now()
    await b.sync_now()
    a.store.update(INST, uuid, key="renamed-at-a")  # meta group
    b.store.update(INST, uuid, ttl=3600)  # expiry group, concurrently
    await a.sync_now()
    await b.sync_now()
    await a.sync_now()
    ea, eb = a.store.get(INST, uuid), b.store.get(INST, uuid)
    assert ea is not None and eb is not None
    assert ea.key == eb.key == "renamed-at-a"
    assert ea.expires_at == eb.expires_at and ea.expires_at.year < 3000


async def test_a_box_on_another_model_gets_deletes_but_never_vectors(
    box: Callable[..., SyncWorker], hub: SqliteHubStore
) -> None:
    a, other = box("a"), box("other", fingerprint="pack-v2")
    uuid = enrol(a, 4)
    await a.sync_now()
    await other.sync_now()
    assert other.store.get(INST, uuid) is None and other.store.count() == 0
    assert other.status.cursor == hub.head()  # read past it, so it is not re-read
    a.store.delete(INST, uuid)
    await a.sync_now()
    await other.sync_now()
    with sqlite3.connect(other.store.path) as c:
        assert c.execute("SELECT count(*) FROM tombstones").fetchone()[0] == 1


async def test_a_pulled_page_and_its_cursor_are_one_transaction(
    box: Callable[..., SyncWorker], hub: SqliteHubStore
) -> None:
    a, b = box("a"), box("b")
    uuids = [enrol(a, s) for s in range(10, 15)]
    await a.sync_now()
    await b.sync_now()
    state = b.store.sync_state()
    assert int(state["cursor"]) == hub.head() and state["epoch"] == hub.epoch
    assert {u for u in uuids if b.store.get(INST, u)} == set(uuids)
    # Re-applying the same page (a resend after a lost answer) changes nothing.
    page = hub.feed([INST], FP, 0, 100)
    from edge.sync.replica import apply_pulled

    assert apply_pulled(b.store, [r for _, r in page.records], {"cursor": str(page.next)}) == 0


async def test_a_gallery_older_than_sync_and_a_new_hub_epoch_are_pushed_whole(
    box: Callable[..., SyncWorker], tmp_path: Path
) -> None:
    a = box("a")
    uuid = enrol(a, 20)
    a.store.prune_changes(10**9)  # enrolled before sync was configured: no outbox row
    await a.sync_now()  # first contact: everything it holds goes up
    b = box("b")
    await b.sync_now()
    assert b.store.get(INST, uuid) is not None
    # The hub is replaced by an empty one (new epoch): a pushes its gallery again.
    fresh = SqliteHubStore(tmp_path / "fresh-hub.sqlite3")
    try:
        a.link = LocalLink(fresh)
        await a.sync_now()
        got = fresh.get(uuid)
        assert got is not None and got.deleted is None
        assert a.store.sync_state()["epoch"] == fresh.epoch
    finally:
        fresh.close()


async def test_local_writes_wake_a_long_polling_worker(box: Callable[..., SyncWorker]) -> None:
    a, b = box("a"), box("b")
    task = asyncio.create_task(a.run())
    try:
        for _ in range(200):
            if a.status.last_success is not None:
                break
            await asyncio.sleep(0.02)
        uuid = enrol(a, 30)  # from this thread: the listener wakes the loop
        for _ in range(250):
            if a.status.pushed:
                break
            await asyncio.sleep(0.02)
        assert a.status.pushed == 1
        await b.sync_now()
        assert b.store.get(INST, uuid) is not None
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_hub_restored_from_an_older_copy_gets_the_lost_changes_back(
    box: Callable[..., SyncWorker], tmp_path: Path
) -> None:
    live = tmp_path / "restored-hub.sqlite3"
    hub = SqliteHubStore(live)
    a, b = box("a"), box("b")
    a.link = b.link = LocalLink(hub)
    first = enrol(a, 40)
    await a.sync_now()
    backup = tmp_path / "hub-backup.sqlite3"
    src, dst = sqlite3.connect(live), sqlite3.connect(backup)
    src.backup(dst)
    src.close()
    dst.close()
    second = enrol(a, 41)
    await a.sync_now()
    await b.sync_now()
    hub.close()
    for leftover in (tmp_path / "restored-hub.sqlite3-wal", tmp_path / "restored-hub.sqlite3-shm"):
        leftover.unlink(missing_ok=True)
    backup.replace(live)  # the hub's disk is restored from the older copy (same epoch)
    old = SqliteHubStore(live)
    try:
        assert old.get(second) is None
        a.link = b.link = LocalLink(old)
        await b.sync_now()  # b is ahead of the hub: it pushes what it holds again
        await a.sync_now()
        assert old.get(first) is not None and old.get(second) is not None
        assert b.store.get(INST, second) is not None
    finally:
        old.close()


def test_an_already_expired_record_is_not_stored(box: Callable[..., SyncWorker]) -> None:
    from edge.sync.replica import apply_pulled, record_of

    a, b = box("a"), box("b")
    uuid = enrol(a, 50, ttl=60)
    rec = record_of(a.store.sync_load([uuid])[uuid])
    assert apply_pulled(b.store, [rec], {}, now_s=rec.expiry.value + 1) == 0  # type: ignore[union-attr]
    assert b.store.sync_load([uuid]) == {}
    assert apply_pulled(b.store, [rec], {}) == 1  # still live now: stored


async def test_digest_repair_finds_and_fixes_drift_both_ways(
    box: Callable[..., SyncWorker], hub: SqliteHubStore
) -> None:
    a, b = box("a"), box("b")
    uuids = [enrol(a, s) for s in range(60, 70)]
    await a.sync_now()
    await b.sync_now()
    assert await b.repair() == 0  # in step: every bucket digest equal
    # Drift the normal feed cannot see: a row lost at b (say, an old backup restored
    # under the same cursor), and a record lost at the hub.
    lost_at_b, lost_at_hub = uuids[0], uuids[1]
    with sqlite3.connect(b.store.path) as c:
        c.execute("DELETE FROM entities WHERE uuid = ?", (lost_at_b,))
    if isinstance(hub, SqliteHubStore):
        with sqlite3.connect(hub.path) as c:
            c.execute("DELETE FROM records WHERE uuid = ?", (lost_at_hub,))
    else:
        assert isinstance(hub, PostgresHubStore)
        with hub._tx() as cur:  # the same loss in the PostgreSQL hub's table
            cur.execute("DELETE FROM records WHERE uuid = %s", (lost_at_hub,))
    assert await b.repair() == 2  # both buckets differ from b's view
    assert b.store.sync_load([lost_at_b]), "b got its row back from the hub"
    assert hub.get(lost_at_hub) is not None, "b pushed the hub's lost record back"
    assert await b.repair() == 0 and await a.repair() == 0


async def test_the_prometheus_series_follow_the_outbox(box: Callable[..., SyncWorker]) -> None:
    from edge.metrics import REGISTRY
    from edge.sync import worker as w

    a = box("a")
    enrol(a, 80)
    enrol(a, 81)
    await a.refresh_metrics()
    assert w.PENDING.value() == 2 and w.OLDEST.value() >= 0
    await a.sync_now()
    await a.refresh_metrics()
    assert w.PENDING.value() == 0 and w.LAG.value() == 0
    assert w.LAST_OK.value(peer="a") == a.status.last_success
    assert w.BOOTSTRAP.value() >= 0 and w.APPLIED.value(direction="push") >= 2
    text = REGISTRY.render()
    for series in ("edge_sync_pending_changes", "edge_sync_oldest_pending_seconds",
                   "edge_sync_last_success_timestamp_seconds", "edge_sync_pull_lag",
                   "edge_sync_applied_total", "edge_sync_bootstrap_seconds",
                   "edge_sync_clock_skew_seconds"):  # fmt: skip
        assert f"# TYPE {series}" in text
