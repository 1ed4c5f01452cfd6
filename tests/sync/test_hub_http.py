"""The hub's /sync/v1 routes over real HTTP on loopback: tokens, instance permissions,
clock checks and malformed frames are refused whole; boxes sync through them."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import ClientSession, web

from edge.config import SyncConfig
from edge.store import EntityStore
from edge.store.hlc import Hlc, wall_ms
from edge.sync.codec import CONTENT_TYPE, PushBatch, decode_ack, decode_feed, encode_push
from edge.sync.hub import Hub, token_hash
from edge.sync.hub_sqlite import SqliteHubStore
from edge.sync.link import HttpLink, HubRefused
from edge.sync.record import Meta, Record, Vector, Versioned
from edge.sync.worker import SyncWorker

TOKEN_A, TOKEN_B = "token-of-box-a-0123456789", "token-of-box-b-9876543210"


def settings() -> SyncConfig:
    return SyncConfig(
        enabled=True, role="hub", max_clock_ahead_s=60,
        boxes=[
            {"id": "box-a", "token_sha256": [token_hash(TOKEN_A)], "instances": ["inst-a"]},
            {"id": "box-b", "token_sha256": [token_hash(TOKEN_B)],
             "instances": ["inst-a", "inst-b"]},
        ],
    )  # fmt: skip


@pytest.fixture
async def hub_url(tmp_path: Path) -> AsyncIterator[tuple[str, Hub]]:
    store = SqliteHubStore(tmp_path / "hub.sqlite3")
    hub = Hub(store, settings())
    app = web.Application()
    app.router.add_post("/sync/v1/push", hub.push)
    app.router.add_get("/sync/v1/feed", hub.feed)
    app.router.add_get("/sync/v1/digest", hub.digest)
    app.router.add_get("/sync/v1/bucket", hub.bucket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", hub
    await runner.cleanup()
    store.close()


def rec(uuid: str, inst: str = "inst-a", ahead_ms: int = 0) -> Record:
    s = Hlc(wall_ms() + ahead_ms, 0, "box-a")
    v = Vector.from_float32("M", "M", np.ones(4, np.float32) / 2)
    return Record(
        uuid, inst, meta=Versioned(s, Meta("", "k", "[]", 1)), expiry=Versioned(s, 2**31),
        vectors=(("fp", Versioned(s, v)),),
    )  # fmt: skip


async def post(url: str, body: bytes, token: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": CONTENT_TYPE}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with ClientSession() as s, s.post(url + "/sync/v1/push", data=body, headers=headers) as r:
        raw = await r.read()
        return r.status, (decode_ack(raw) if r.status == 200 else await r.json())


async def test_push_needs_a_known_token(hub_url: tuple[str, Hub]) -> None:
    url, hub = hub_url
    body = encode_push(PushBatch("o", [(1, rec("u1"))]))
    status, err = await post(url, body, None)
    assert status == 401 and set(err) == {"code", "name", "message"} and "Bearer" in err["message"]
    status, err = await post(url, body, "not-a-token")
    assert status == 401 and "token_sha256" in err["message"]
    assert hub.store.head() == 0


async def test_a_batch_touching_a_forbidden_instance_is_refused_whole(
    hub_url: tuple[str, Hub],
) -> None:
    url, hub = hub_url
    body = encode_push(PushBatch("o", [(1, rec("u1")), (2, rec("u2", inst="inst-b"))]))
    status, err = await post(url, body, TOKEN_A)
    assert status == 403 and "inst-b" in err["message"] and "box-a" in err["message"]
    assert hub.store.get("u1") is None  # nothing of the batch applied
    status, ack = await post(url, body, TOKEN_B)  # box-b may write both
    assert status == 200 and ack.applied == 2 and ack.acked == 2


async def test_clocks_too_far_ahead_are_refused_and_malformed_frames_are_400(
    hub_url: tuple[str, Hub],
) -> None:
    url, hub = hub_url
    status, err = await post(
        url, encode_push(PushBatch("o", [(1, rec("u1", ahead_ms=120_000))])), TOKEN_A
    )
    assert status == 409 and err["name"] == "clock_skew" and "NTP" in err["message"]
    assert hub.store.get("u1") is None
    status, err = await post(
        url, encode_push(PushBatch("o", [(1, rec("u1", ahead_ms=30_000))])), TOKEN_A
    )
    assert status == 200
    status, err = await post(url, b"\x93\x01", TOKEN_A)
    assert status == 400 and err["name"] == "invalid_frame"


async def test_feed_checks_instances_and_long_polls_until_a_push(hub_url: tuple[str, Hub]) -> None:
    import asyncio

    url, _ = hub_url
    link = HttpLink(url, TOKEN_A)
    try:
        with pytest.raises(HubRefused, match="inst-b"):
            await link.feed(["inst-b"], "fp", 0, 10, 0)
        waiting = asyncio.create_task(link.feed(["inst-a"], "fp", 0, 10, 30))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # parked at the hub
        await link.push(PushBatch("o", [(1, rec("u9"))]))
        page = await asyncio.wait_for(waiting, 10)
        assert [r.uuid for _, r in page.records] == ["u9"]
    finally:
        await link.close()


async def test_two_boxes_sync_through_http(hub_url: tuple[str, Hub], tmp_path: Path) -> None:
    url, _ = hub_url
    stores = [EntityStore(tmp_path / f"{n}.sqlite3", pack_fingerprint="fp") for n in "ab"]
    links = [HttpLink(url, TOKEN_A), HttpLink(url, TOKEN_B)]
    a, b = (
        SyncWorker(s, SyncConfig(), ln, ["inst-a"]) for s, ln in zip(stores, links, strict=True)
    )
    try:
        vec = np.random.default_rng(5).standard_normal(16).astype(np.float32)
        e = a.store.create(instance="inst-a", model="M", model_name="M", collection="",
                           key="alice", metadata=[], ttl=-1, vector=vec)  # fmt: skip
        await a.sync_now()
        await b.sync_now()
        got = b.store.get("inst-a", e.uuid)
        assert got is not None and got.key == "alice"
        assert b.store.search("inst-a", "M", vec, limit=1)[0][0].uuid == e.uuid
        # Digest repair over HTTP: a row lost at b comes back.
        with sqlite3.connect(b.store.path) as c:
            c.execute("DELETE FROM entities WHERE uuid = ?", (e.uuid,))
        assert await b.repair() == 1 and b.store.get("inst-a", e.uuid) is not None
    finally:
        for ln in links:
            await ln.close()
        for s in stores:
            s.close()


async def test_feed_query_errors_are_400(hub_url: tuple[str, Hub]) -> None:
    url, _ = hub_url
    async with ClientSession(headers={"Authorization": f"Bearer {TOKEN_A}"}) as s:
        for q in ("", "instances=inst-a", "instances=inst-a&fingerprint=fp&after=x",
                  "instances=inst-a&fingerprint=fp&limit=0"):  # fmt: skip
            async with s.get(f"{url}/sync/v1/feed?{q}") as r:
                assert r.status == 400, q
                assert (await r.json())["name"] == "invalid_query"
        async with s.get(f"{url}/sync/v1/feed?instances=inst-a&fingerprint=fp") as r:
            assert r.status == 200 and decode_feed(await r.read()).records == []


async def test_a_box_cannot_move_another_boxs_acknowledged_sequence(
    hub_url: tuple[str, Hub],
) -> None:
    url, hub = hub_url
    assert (await post(url, encode_push(PushBatch("o", [(5, rec("u1"))])), TOKEN_A))[0] == 200
    # box-b claims the same origin id with a huge sequence ...
    status, ack = await post(url, encode_push(PushBatch("o", [(10**9, rec("u2"))])), TOKEN_B)
    assert status == 200 and ack.acked == 10**9
    # ... and box-a's next change is still taken, not skipped as already acknowledged.
    status, ack = await post(url, encode_push(PushBatch("o", [(6, rec("u3"))])), TOKEN_A)
    assert status == 200 and ack.acked == 6 and ack.applied == 1
    assert hub.store.get("u3") is not None


async def test_a_box_on_another_model_is_reported(tmp_path: Path) -> None:
    store = SqliteHubStore(tmp_path / "hub2.sqlite3")
    hub = Hub(store, settings(), fingerprint="fp")
    app = web.Application()
    app.router.add_get("/sync/v1/feed", hub.feed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    links = [HttpLink(url, TOKEN_A), HttpLink(url, TOKEN_B)]
    try:
        await links[0].feed(["inst-a"], "fp-new", 0, 10, 0)
        await links[1].feed(["inst-a"], "fp", 0, 10, 0)
        boxes = {b["id"]: b for b in hub.report()["boxes"]}
        assert boxes["box-a"]["otherModel"] is True and boxes["box-a"]["fingerprint"] == "fp-new"
        assert boxes["box-b"]["otherModel"] is False
    finally:
        for ln in links:
            await ln.close()
        await runner.cleanup()
        store.close()
