"""Helpers for the face/liveness endpoint tests: one real server per module, real photos.

The heavy parts (model sessions) are built once per test process and shared by every
module's server; each server gets its own data dir, so its SQLite store starts empty.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.api.state import ENGINE
from edge.config import Settings
from edge.store import EntityStore
from tests.support.engine import shared_models
from tests.support.servers import KEY_A, Resp, Server, api_settings, start_server, stop_server
from tests.support.servers import wait_ready as wait_ready

FACES = "/api/v1/entities/faces"


class FacesServer(Server):
    """A loopback server plus handy calls for the face endpoints."""

    @property
    def store(self) -> EntityStore:
        return self.app[ENGINE].store

    def count(self, instance: str = "inst-a") -> int:
        return int(self.store.count(instance))

    def create(self, image: dict[str, Any], *, api_key: str = KEY_A, **fields: Any) -> Resp:
        """POST an entity; `fields` are body fields (`key` here is the entity's key)."""
        body = {"model": "EDGE_FACE_V1", "image": image, **fields}
        return self.call("POST", FACES, body, key=api_key)


@contextlib.contextmanager
def face_server(data_dir: Path, model_dir: Path, **server: Any) -> Iterator[FacesServer]:
    from edge.api.app import create_app

    settings: Settings = api_settings(data_dir, model_dir, **server)
    app = create_app(settings, models=shared_models(str(model_dir)))
    srv = start_server(app, settings, FacesServer)
    wait_ready(srv)
    try:
        yield srv
    finally:
        stop_server(srv)


ALL_DETAILS = {k: True for k in ("position", "angle", "landmarks", "quality", "attributes")}


def assert_error(r: Resp, status: int, code: int, field: str | None = None) -> dict[str, Any]:
    """Exact status, the contract body and (when given) the field named first in the message."""
    from edge.errors import ERROR_CATALOGUE

    assert r.status == status, (r.status, r.raw)
    body = r.json
    assert set(body) == {"code", "name", "message"}, body
    assert body["code"] == code, body
    if code != 404:
        assert body["name"] == ERROR_CATALOGUE[code][1], body
    if field is not None:
        assert body["message"].startswith(field), body
    return body
