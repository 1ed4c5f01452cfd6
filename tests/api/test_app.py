"""create_app wiring: the background TTL purge, admission slots, limits from settings."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from aiohttp import web

from edge.api.app import create_app
from edge.api.inference import admitted, run_inference
from edge.api.state import ADMISSION, ENGINE, READY
from edge.engine import Engine
from edge.store import Change
from tests.support.servers import (
    KEY_A,
    Gate,
    add_test_routes,
    api_settings,
    start_server,
    stop_server,
)


def test_background_purge_deletes_expired_entities(tmp_path: Path, model_dir: Path) -> None:
    settings = api_settings(tmp_path, model_dir)
    settings.store.purge_interval_s = 0.05
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    engine = Engine.open(settings, clock=lambda: now[0])
    store = engine.store
    expired = threading.Event()
    seen: list[Change] = []

    def listen(change: Change) -> None:
        if change.op == "expire":
            seen.append(change)
            expired.set()

    store.add_listener(listen)
    ent = store.create(
        instance="inst-a",
        model="m",
        model_name="EDGE_FACE_V1",
        collection="",
        key="",
        metadata=[],
        ttl=1,
        vector=np.ones(128, np.float32),
    )
    app = create_app(settings, engine=engine, load_models=False)
    srv = start_server(app, settings)
    try:
        assert app[ENGINE] is engine
        assert not expired.wait(0.3)  # not expired yet: the purge leaves it alone
        now[0] += timedelta(seconds=5)
        assert expired.wait(30), "the purge task never ran"
        assert [c.entity_uuid for c in seen] == [ent.uuid]
    finally:
        stop_server(srv)
    assert store.count("inst-a") == 0  # a given engine outlives the app: its owner closes it
    engine.close()


def test_admitted_handler_holds_one_slot_for_several_inference_calls(
    tmp_path: Path, model_dir: Path
) -> None:
    settings = api_settings(tmp_path, model_dir, queue_limit=1)
    app = create_app(settings, load_models=False)
    add_test_routes(app, Gate())

    async def twice(request: web.Request) -> web.Response:
        async with admitted(request):
            a = await run_inference(request, lambda: request.app[ADMISSION].in_flight)
            b = await run_inference(request, lambda: 2)
        return web.json_response({"in_flight": a, "b": b})

    app.router.add_get("/test/twice", twice)
    srv = start_server(app, settings)
    try:
        # load_models=False: not ready, so even admitted() answers 503 first
        assert srv.call("GET", "/test/twice").json["code"] == 503
        app[READY].set_ready()
        r = srv.call("GET", "/test/twice", key=KEY_A)
        assert r.status == 200, r.raw
        assert r.json == {"in_flight": 1, "b": 2}
        assert app[ADMISSION].in_flight == 0
    finally:
        stop_server(srv)


def test_limits_come_from_settings(tmp_path: Path, model_dir: Path) -> None:
    settings = api_settings(tmp_path, model_dir, max_body_bytes=4096)
    app = create_app(settings, load_models=False)
    add_test_routes(app, Gate())
    srv = start_server(app, settings)
    try:
        payload = b'{"x": "' + b"a" * 5000 + b'"}'
        r = srv.call(
            "POST", "/test/echo", raw=payload, headers={"Content-Type": "application/json"}
        )
        assert r.status == 413 and r.json["name"] == "payload_too_large"
    finally:
        stop_server(srv)


def test_requests_after_shutdown_began_get_503_and_connection_close(
    tmp_path: Path, model_dir: Path
) -> None:
    settings = api_settings(tmp_path, model_dir)
    app = create_app(settings, load_models=False)
    add_test_routes(app, Gate())
    srv = start_server(app, settings)
    try:
        assert srv.call("POST", "/test/echo", {"a": 1}).status == 200
        assert srv.loop is not None
        done = threading.Event()
        srv.loop.call_soon_threadsafe(lambda: (app[READY].begin_shutdown(), done.set()))
        assert done.wait(10)
        r = srv.call("POST", "/test/echo", {"a": 1})
        assert r.status == 503 and r.json["message"] == "service unavailable: shutting down"
        assert r.headers["connection"].lower() == "close"
        ready = srv.call("GET", "/readyz", key=None)
        assert ready.status == 503 and ready.json["message"] == "not ready: shutting down"
        assert app[READY].in_flight == 0
    finally:
        stop_server(srv)
