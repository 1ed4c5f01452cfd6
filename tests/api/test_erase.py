"""Erase means erased, end to end: faces enrolled from real photos over loopback HTTP, then
deleted (REST) or expired (TTL + the service's own purge loop), leave no byte of their
vector, key or metadata in the database files; the gallery files are private."""

from __future__ import annotations

import base64
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.config import Settings, load_settings
from tests.support.engine import shared_models
from tests.support.faces import FACES, FacesServer
from tests.support.images import img
from tests.support.servers import api_settings, start_server, stop_server, wait_ready


@pytest.fixture(scope="module")
def umask_022() -> Iterator[None]:
    """The usual permissive umask, so the modes checked are the service's own doing."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _serve(settings: Settings, model_dir: Path) -> FacesServer:
    from edge.api.app import create_app

    app = create_app(settings, models=shared_models(str(model_dir)), announce=lambda _: None)
    srv = start_server(app, settings, FacesServer)
    wait_ready(srv)
    return srv


@pytest.fixture(scope="module")
def srv(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, umask_022: None
) -> Iterator[FacesServer]:
    """A service on a data dir it creates itself, purging expired faces every 0.2 s and
    keeping the change log for an hour (so the scan can also find a live face's payload)."""
    settings = api_settings(tmp_path_factory.mktemp("erase") / "fresh" / "data", model_dir)
    settings.store.purge_interval_s = 0.2
    settings.store.change_log_keep_s = 3600
    srv = _serve(settings, model_dir)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def photos(testdata: Path) -> dict[str, Path]:
    fbi = testdata / "faces_by_identity"
    return {
        "deleted": fbi / "barack_obama" / "1.jpg",
        "expired": fbi / "angelina_jolie" / "1.jpg",
        "live": fbi / "barack_obama" / "2.jpg",
    }


def _raw(db: Path) -> bytes:
    """The database and every companion file SQLite may keep beside it."""
    parts = (db.with_name(db.name + s) for s in ("", "-wal", "-shm", "-journal"))
    return b"\x00".join(p.read_bytes() for p in parts if p.exists())


def _enrol(srv: FacesServer, photo: Path, **fields: Any) -> tuple[str, dict[str, bytes]]:
    """POST a real photo with unique key/metadata strings; (uuid, its on-disk needles)."""
    tag = uuid.uuid4().hex
    meta = [{"name": f"name-{tag}", "type": "string", "value": f"value-{tag}"}]
    r = srv.create(img(photo), key=f"key-{tag}", metadata=meta, **fields)
    assert r.status == 201, r.raw
    ent = srv.store.get("inst-a", r.json["uuid"], with_vector=True)
    raw = ent.vector.astype(np.dtype("<f4")).tobytes()
    return r.json["uuid"], {
        "vector": raw,
        "vector-b64": base64.b64encode(raw),
        "key": f"key-{tag}".encode(),
        "metadata-name": f"name-{tag}".encode(),
        "metadata-value": f"value-{tag}".encode(),
    }


def _found(blob: bytes, needles: dict[str, bytes]) -> list[str]:
    return sorted(k for k, v in needles.items() if v in blob)


def _wait(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_deleted_and_expired_faces_leave_no_bytes_in_the_files(
    srv: FacesServer, photos: dict[str, Path]
) -> None:
    db = srv.settings.store_path
    deleted, gone_d = _enrol(srv, photos["deleted"])
    # ttl 5 s, not 1: on a loaded machine the read-back right after the create must still
    # see it (a full-suite run at load 14 took over a second between the two)
    expired, gone_e = _enrol(srv, photos["expired"], ttl=5)
    live, kept = _enrol(srv, photos["live"])
    before = _raw(db)
    for needles in (gone_d, gone_e, kept):  # the scan finds what is there
        assert _found(before, needles) == sorted(needles)

    assert srv.call("DELETE", f"{FACES}/{deleted}").status == 204
    _wait(lambda: srv.call("GET", f"{FACES}/{expired}").status == 404, "the TTL")
    _wait(
        lambda: any(
            c.op == "expire" and c.entity_uuid == expired for c in srv.store.changes_since(0)
        ),
        "the purge loop",
    )
    _wait(lambda: not srv.store.erase_pending, "the erase checkpoint")

    after = _raw(db)  # read while the service is running
    assert _found(after, gone_d) == []
    assert _found(after, gone_e) == []
    assert _found(after, kept) == sorted(kept)
    assert srv.call("GET", f"{FACES}/{live}").status == 200


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_a_fresh_data_dir_and_its_database_files_are_private(
    srv: FacesServer, photos: dict[str, Path]
) -> None:
    _enrol(srv, photos["live"])
    db = srv.settings.store_path
    files = [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm"))]
    assert all(p.exists() for p in files)
    assert _mode(srv.settings.data_dir) == 0o700
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_a_generated_api_key_dir_is_private_too(
    tmp_path: Path, model_dir: Path, umask_022: None
) -> None:
    """Without configured keys the service first creates the data dir for its api-key."""
    data = tmp_path / "first-start" / "data"
    settings = load_settings(None, data_dir=data, models={"dir": model_dir})
    srv = _serve(settings, model_dir)
    try:
        assert _mode(data) == 0o700
        key = settings.api_key_path
        assert key.parent == data and _mode(key) == 0o600
        assert _mode(settings.store_path) == 0o600
    finally:
        stop_server(srv)
