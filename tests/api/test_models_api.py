"""GET /api/v1/models (api.md §5) and the OpenAPI document of the face/liveness routes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge.api import schemas as s
from edge.vision.similarity import load_calibration
from tests.support.faces import FacesServer, assert_error


@pytest.fixture(scope="module")
def models(srv: FacesServer) -> dict[str, dict]:
    r = srv.call("GET", "/api/v1/models")
    assert r.status == 200, r.raw
    out = s.ModelsOut.model_validate(r.json)
    return {m.name: r.json["models"][i] for i, m in enumerate(out.models)}


def test_face_model_entry(models: dict, model_dir: Path) -> None:
    face = models["EDGE_FACE_V1"]
    assert face["entity"] == "faces"
    assert face["aliases"] == ["JCV_FACE_K25000", "JCV_FACE_J10000"]
    assert face["vectorDimension"] == 128
    assert set(face["capabilities"]) == {"position", "angle", "landmarks", "quality", "attributes"}
    assert {"age", "gender", "emotions"} <= set(face["attributes"])
    cal = load_calibration("default")
    assert face["recommendedThreshold"] == cal.recommended_threshold
    assert face["measured"]["far"] == cal.measured.far <= 1e-4
    assert face["measured"]["pairs"]["impostor"] > 0
    roles = {c["role"] for c in face["components"]}
    assert {"detector_fast", "detector_slow", "embedding"} <= roles
    assert not any(r.startswith("liveness") for r in roles)
    for c in face["components"]:
        assert {"file", "sha256", "licence", "licenceFlags", "backend", "device"} <= set(c)
        if c["role"] == "embedding":
            digest = hashlib.sha256((model_dir / c["file"]).read_bytes()).hexdigest()
            assert c["sha256"] == digest
            assert c["loaded"] and c["device"]


def test_liveness_model_entry(models: dict) -> None:
    lv = models["EDGE_LIVENESS_V1"]
    assert lv["entity"] == "liveness" and lv["aliases"] == ["JCV_2D_I25000"]
    assert lv["capabilities"] == {"position": True} and lv["attributes"] == []
    assert lv["recommendedThreshold"] == 0.5
    assert 0 <= lv["measured"]["apcer"] <= 1 and 0 <= lv["measured"]["bpcer"] <= 1
    assert lv["measured"]["samples"]["live"] > 0
    roles = {c["role"] for c in lv["components"]}
    assert any(r.startswith("liveness") for r in roles) and "detector_fast" in roles
    assert lv["reliability"]["conditions"]


def test_models_needs_a_key(srv: FacesServer) -> None:
    assert_error(srv.call("GET", "/api/v1/models", key=None), 401, 401)


def test_aliases_off_are_not_listed_nor_accepted(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, testdata: Path
) -> None:
    # api_settings() does not expose names; build the server with names overridden
    from edge.api.app import create_app
    from edge.config import load_settings
    from tests.support.engine import shared_models
    from tests.support.faces import FACES
    from tests.support.images import img
    from tests.support.servers import api_settings, start_server, stop_server, wait_ready

    base = api_settings(tmp_path_factory.mktemp("noalias"), model_dir)
    settings = load_settings(
        None, **{**base.model_dump(mode="python"), "names": {"aliases_enabled": False}}
    )
    srv = start_server(create_app(settings, models=shared_models(str(model_dir))), settings)
    try:
        wait_ready(srv)
        models = srv.call("GET", "/api/v1/models").json["models"]
        assert [m["aliases"] for m in models] == [[], []]
        body = {
            "model": "JCV_FACE_K25000",
            "image": img(testdata / "awkward" / "obama_240p.jpg"),
        }
        assert_error(srv.call("POST", FACES, body), 400, 113, "model")
    finally:
        stop_server(srv)


def test_openapi_documents_every_face_route_with_its_errors(srv: FacesServer) -> None:
    doc = srv.call("GET", "/api/v1/openapi.json", key=None).json
    paths = doc["paths"]
    expect = {
        ("/api/v1/entities/faces", "post"): {110, 111, 112, 113, 116, 214, 215, 216, 217, 223, 224},
        ("/api/v1/entities/faces", "get"): {112, 113},
        ("/api/v1/entities/faces/{uuid}", "get"): {404},
        ("/api/v1/entities/faces/{uuid}", "patch"): {110, 112, 113, 116, 214, 223, 224, 404},
        ("/api/v1/entities/faces/{uuid}", "delete"): {404},
        ("/api/v1/entities/faces/search", "post"): {110, 112, 113, 214, 223, 224},
        ("/api/v1/entities/faces/detect", "post"): {110, 112, 113, 214, 215, 216, 217},
        ("/api/v1/entities/faces/compare", "post"): {110, 113, 214, 223, 224},
        ("/api/v1/entities/faces/{uuid}/compare", "post"): {110, 113, 223, 404},
        ("/api/v1/models", "get"): {503},
        ("/api/v1/liveness", "post"): {110, 112, 113, 116, 214, 219, 223},
    }
    for (path, method), codes in expect.items():
        op = paths[path][method]
        listed = {c for r in op["responses"].values() for c in r.get("x-error-codes", [])}
        assert codes <= listed, (path, method, codes - listed)
        assert any(st.startswith("2") for st in op["responses"])
    assert "223" not in str(paths["/api/v1/entities/faces/detect"]["post"]["responses"])
    assert "CreateFaceIn" in doc["components"]["schemas"]
