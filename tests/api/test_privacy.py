"""Privacy: image bytes and base64 are never stored and never logged (api.md §2.1)."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from tests.support.faces import FACES, FacesServer, assert_error
from tests.support.images import b64
from tests.support.paths import TESTDATA

PHOTO = TESTDATA / "faces_by_identity" / "barack_obama" / "1.jpg"


def _needles(raw: bytes) -> list[bytes]:
    """Distinctive pieces of the upload: raw JPEG bytes and its base64 text."""
    text = base64.b64encode(raw)
    mid = len(raw) // 2
    return [raw[mid : mid + 64], text[len(text) // 2 : len(text) // 2 + 64]]


def _stored_bytes(data_dir: Path) -> bytes:
    """Everything the service wrote to its data dir (SQLite file, WAL, key file, ...)."""
    return b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())


def test_uploads_are_neither_stored_nor_logged(
    srv: FacesServer, caplog: pytest.LogCaptureFixture
) -> None:
    photo = PHOTO if PHOTO.is_file() else sorted(PHOTO.parent.iterdir())[0]
    raw = photo.read_bytes()
    data = b64(photo)
    caplog.set_level(logging.DEBUG)
    created = srv.create({"data": data}, key="privacy-probe")
    assert created.status == 201
    searched = srv.call(
        "POST", f"{FACES}/search", {"model": "EDGE_FACE_V1", "image": {"data": data}}
    )
    assert searched.status == 200 and searched.json["count"] >= 1
    # A corrupt upload is rejected (214) and its bytes don't surface in the error either.
    broken = data[: len(data) // 3] + "!!!" + data[len(data) // 3 :]
    bad = srv.create({"data": broken}, key="privacy-probe")
    assert_error(bad, 400, 214)
    assert data[100:164] not in bad.raw.decode()
    stored = _stored_bytes(_data_dir(srv))  # the SQLite file and its WAL included
    for needle in _needles(raw):
        assert needle not in stored, "image data found in the data dir"
        assert needle.decode("latin-1") not in caplog.text, "image data found in the logs"


def _data_dir(srv: FacesServer) -> Path:
    from edge.api.state import SETTINGS

    return srv.app[SETTINGS].data_dir
