"""create_app wiring: the background TTL purge, admission slots, limits from settings."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from edge.api.app import create_app, warm_up_models
from edge.api.inference import admitted, run_inference
from edge.api.state import ADMISSION, READY, STORE
from edge.config import load_settings
from edge.runtime.registry import ModelRegistry
from edge.store import Change, EntityStore
from edge.vision.pipeline import FacePipeline
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
    store = EntityStore(
        tmp_path / "purge.sqlite3",
        pack_fingerprint=ModelRegistry(settings).fingerprint,
        clock=lambda: now[0],
    )
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
    app = create_app(settings, store=store, load_models=False)
    srv = start_server(app, settings)
    try:
        assert app[STORE] is store
        assert not expired.wait(0.3)  # not expired yet: the purge leaves it alone
        now[0] += timedelta(seconds=5)
        assert expired.wait(30), "the purge task never ran"
        assert [c.entity_uuid for c in seen] == [ent.uuid]
    finally:
        stop_server(srv)
    store.close()


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


def test_warm_up_logs_backend_per_model_and_a_fallback_as_warning(
    tmp_path: Path, model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import openvino as ov

    if any(d.startswith("GPU") for d in ov.Core().available_devices):
        pytest.skip("this box has an OpenVINO GPU: no fallback to observe")
    settings = load_settings(
        None, data_dir=tmp_path, models={"dir": model_dir, "openvino_device": "GPU"}
    )
    registry = ModelRegistry(settings)
    caplog.set_level(logging.INFO, logger="edge.api")
    warm_up_models(FacePipeline(registry, settings), None, registry)
    records = [r for r in caplog.records if r.name == "edge.api" and "model " in r.message]
    roles = {r.message.split()[1] for r in records}
    assert {"detector_fast", "detector_slow", "embedding"} <= roles
    for r in records:  # every model asked for GPU and runs on CPU: each is a WARNING
        assert r.levelno == logging.WARNING and "FALLBACK" in r.message, r.message
