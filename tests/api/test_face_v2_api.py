"""A box moved from V1 to the fused V2 recognizer, over real loopback HTTP: its own model
name and 256-d vectors, the dlib component with its licence in /models, and the V1 gallery
kept on disk but never searched with V2 probes (re-enrolment brings a person back)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.api.app import create_app
from edge.config import load_settings
from tests.support.faces import FACES, FacesServer, assert_error
from tests.support.images import img, pic
from tests.support.servers import KEY_A, start_server, stop_server, wait_ready


@contextlib.contextmanager
def box(data_dir: Path, model_dir: Path, pack: str) -> Iterator[FacesServer]:
    settings = load_settings(
        None,
        data_dir=data_dir,
        models={"dir": model_dir, "pack": pack},
        server={"api_keys": [{"key": KEY_A, "instance": "inst-a"}]},
    )
    srv = start_server(create_app(settings), settings, FacesServer)
    try:
        wait_ready(srv)
        yield srv
    finally:
        stop_server(srv)


def _post(srv: FacesServer, path: str, model: str, photo: Path, **fields: Any) -> Any:
    return srv.call("POST", path, {"model": model, "image": img(photo), **fields})


def test_v1_gallery_moves_to_v2_by_re_enrolment(
    tmp_path: Path, model_dir: Path, testdata: Path
) -> None:
    obama = testdata / "faces_by_identity" / "barack_obama"
    data = tmp_path / "data"
    with box(data, model_dir, "default") as v1:
        r = _post(v1, FACES, "EDGE_FACE_V1", pic(obama, "1"), key="obama")
        assert r.status == 201, r.raw

    with box(data, model_dir, "v2") as v2:
        models = {m["name"]: m for m in v2.call("GET", "/api/v1/models").json["models"]}
        face = models["EDGE_FACE_V2"]
        assert face["vectorDimension"] == 256
        dlib = [c for c in face["components"] if c["role"] == "embedding_dlib"]
        assert [c["licence"] for c in dlib] == ["CC0-1.0 (public domain)"]
        assert dlib[0]["licenceFlags"] == []
        # The V1 model name is not this box's: the contract's unknown-model error, not a 500.
        assert_error(_post(v2, FACES + "/search", "EDGE_FACE_V1", pic(obama, "2")), 400, 113)
        # The V1 enrolment stays listed but is not searched with V2 vectors.
        assert v2.call("GET", FACES).json["total"] == 1
        found = _post(v2, FACES + "/search", "EDGE_FACE_V2", pic(obama, "2")).json
        assert found["entitiesFound"] == []
        # Re-enrolled from a photo, the person is found again with a V2 score.
        assert _post(v2, FACES, "EDGE_FACE_V2", pic(obama, "1"), key="obama").status == 201
        hits = _post(v2, FACES + "/search", "EDGE_FACE_V2", pic(obama, "2")).json
        assert [e["key"] for e in hits["entitiesFound"]] == ["obama"]
        assert hits["entitiesFound"][0]["similarityScore"] >= 0.9


@pytest.mark.parametrize("pack", ["cc0"])
def test_licence_clean_box_runs_without_the_ms1m_model(
    tmp_path: Path, model_dir: Path, pack: str
) -> None:
    with box(tmp_path / "data", model_dir, pack) as srv:
        face = srv.call("GET", "/api/v1/models").json["models"][0]
        assert face["name"] == "EDGE_FACE_CC0" and face["vectorDimension"] == 128
        files = {c["file"] for c in face["components"]}
        assert "recognition_dlib_resnet_v1_128d.onnx" in files
        assert not any("mobilefacenet" in f for f in files)
