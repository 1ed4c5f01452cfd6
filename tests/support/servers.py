"""Real servers on loopback: in-process (own thread and loop) and `edge-face serve` processes.

A server thread (instead of pytest's per-test loop) lets one module share one app with
loaded models, and lets tests use plain blocking HTTP and raw sockets.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np
import yaml
from aiohttp import web

from edge.api.inference import run_inference
from edge.api.middleware import json_body
from edge.api.server import make_runner
from edge.api.state import ENGINE, instance_of
from edge.config import Settings, load_settings
from tests.support.net import read_all
from tests.support.paths import REPO_ROOT

KEY_A = "test-key-a-0123456789"
KEY_B = "test-key-b-9876543210"
KEY_C = "test-key-c-5555555555"


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Server:
    app: web.Application
    settings: Settings
    port: int = 0
    loop: asyncio.AbstractEventLoop | None = None
    thread: threading.Thread | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        key: str | None = KEY_A,
        timeout: float = 120,
    ) -> Resp:
        hdrs = dict(headers or {})
        if key is not None and "api-key" not in {k.lower() for k in hdrs}:
            hdrs["api-key"] = key
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def raw(self, data: bytes, timeout: float = 30) -> bytes:
        """Send bytes as they are; return everything until the server closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            return read_all(s)


S = TypeVar("S", bound=Server)


@overload
def start_server(app: web.Application, settings: Settings) -> Server: ...
@overload
def start_server(app: web.Application, settings: Settings, kind: type[S]) -> S: ...
def start_server(app: web.Application, settings: Settings, kind: type[Server] = Server) -> Server:
    """`app` served on a free loopback port in its own thread; `kind` adds handy calls."""
    srv = kind(app, settings)
    started = threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        loop = asyncio.new_event_loop()
        srv.loop = loop
        runner = make_runner(app, settings)

        async def up() -> None:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            srv.port = runner.addresses[0][1]

        try:
            loop.run_until_complete(up())
        except BaseException as e:  # surfaced to the test below
            errors.append(e)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    srv.thread = threading.Thread(target=main, name="test-api-server", daemon=True)
    srv.thread.start()
    started.wait(120)
    if errors:
        raise errors[0]
    return srv


def stop_server(srv: Server) -> None:
    assert srv.loop is not None and srv.thread is not None
    srv.loop.call_soon_threadsafe(srv.loop.stop)
    srv.thread.join(60)


# Test-only routes (never part of the product app) ---------------------------------------------
@dataclass
class Gate:
    """Blocks an inference-pool thread until the test releases it."""

    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def wait(self) -> str:
        self.started.set()
        self.release.wait(60)
        return "released"


def add_test_routes(app: web.Application, gate: Gate) -> None:
    async def echo(request: web.Request) -> web.Response:
        data = await json_body(request)
        return web.json_response({"instance": instance_of(request), "keys": sorted(data)})

    async def boom(request: web.Request) -> web.Response:
        if request.can_read_body:
            await request.read()
        raise RuntimeError("secret-detail-of-the-bug")

    async def block(request: web.Request) -> web.Response:
        return web.json_response({"result": await run_inference(request, gate.wait)})

    async def infer(request: web.Request) -> web.Response:
        pipeline = request.app[ENGINE].pipeline
        crop = np.full((112, 112, 3), 120, np.uint8)
        vec = await run_inference(request, pipeline.embedder.embed, crop)
        return web.json_response({"dim": int(np.asarray(vec).size)})

    app.router.add_post("/test/echo", echo)
    app.router.add_route("*", "/test/boom", boom)
    app.router.add_get("/test/block", block)
    app.router.add_get("/test/infer", infer)


def api_settings(data_dir: Path, model_dir: Path, **server: Any) -> Settings:
    return load_settings(
        None,
        data_dir=data_dir,
        models={"dir": model_dir},
        server={
            "api_keys": [
                {"key": KEY_A, "instance": "inst-a"},
                {"key": KEY_B, "instance": "inst-b"},
                {"key": KEY_C, "instance": "inst-c"},
            ],
            **server,
        },
    )


def write_serve_config(tmp_path: Path, model_dir: Path, instance: str, **server: Any) -> Path:
    """`tmp_path/edge.yaml` for a real `edge-face serve`: data under tmp_path, KEY_A only."""
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "models": {"dir": str(model_dir)},
                "server": {
                    "host": "127.0.0.1",
                    "api_keys": [{"key": KEY_A, "instance": instance}],
                    **server,
                },
            }
        )
    )
    return cfg


def wait_ready(srv: Server, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.call("GET", "/readyz", key=None).status == 200:
            return
        time.sleep(0.2)
    raise AssertionError("server did not become ready")


def serve_process(
    config: Path,
    port: int,
    log: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    append: bool = False,
    **popen: Any,
) -> subprocess.Popen[Any]:
    """A real `edge-face serve -c CONFIG --port PORT [ARGS]` process, its output in `log`.

    Run as `python -m edge.cli` from the checkout so it serves this tree's code; `env` is the
    whole environment (default: this one), unbuffered so the log can be read while it runs;
    `popen` passes through (`text=True`, `preexec_fn=...`).
    """
    with log.open("a" if append else "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "serve", "-c", str(config), "--port", str(port),
             *args],
            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}, **popen,
        )  # fmt: skip
