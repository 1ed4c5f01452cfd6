"""The server keeps its device services where handlers reach them: `DEVICES` holds the
running cameras (over the app's own engine) and is emptied when the server stops."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from camera_helpers import Vision

from edge.api.app import create_app
from edge.api.server import _services_ctx
from edge.api.state import DEVICES, ENGINE
from edge.config import CameraConfig
from tests.support.servers import api_settings, start_server, stop_server, wait_ready


async def devices(request: web.Request) -> web.Response:
    running = request.app[DEVICES].current
    if running is None:
        return web.json_response({"cameras": None})
    return web.json_response(
        {
            "cameras": sorted(running.cameras),
            "bridge": running.bridge is not None,
            "sameStore": running.recognition.store is request.app[ENGINE].store,
        }
    )


def test_handlers_reach_the_cameras_of_the_server(
    vision: Vision,
    tmp_path: Path,
    model_dir: Path,
    people_video: tuple[Path, list[tuple[str, int]]],
) -> None:
    video, _ = people_video
    settings = api_settings(tmp_path / "data", model_dir)
    settings.cameras = [CameraConfig(name="door", source=str(video), realtime=False)]
    app = create_app(settings, models=vision.models, announce=lambda _: None)
    app.cleanup_ctx.append(_services_ctx(settings, None))  # what `serve` adds
    app.router.add_get("/test/devices", devices)
    srv = start_server(app, settings)
    try:
        wait_ready(srv)
        r = srv.call("GET", "/test/devices")
        assert r.status == 200, r.raw
        assert r.json == {"cameras": ["door"], "bridge": False, "sameStore": True}
    finally:
        stop_server(srv)
    assert app[DEVICES].current is None  # stopped with the server


def test_without_cameras_or_mqtt_there_are_no_device_services(
    vision: Vision, tmp_path: Path, model_dir: Path
) -> None:
    settings = api_settings(tmp_path / "data", model_dir)
    app = create_app(settings, models=vision.models, load_models=False, announce=lambda _: None)
    app.cleanup_ctx.append(_services_ctx(settings, None))
    app.router.add_get("/test/devices", devices)
    srv = start_server(app, settings)
    try:
        assert srv.call("GET", "/test/devices").json == {"cameras": None}
    finally:
        stop_server(srv)
