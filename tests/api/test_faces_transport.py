"""Face/liveness routes under the transport rules: 401, 405, 413, 415 and 503 while loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.faces import FACES, FacesServer, assert_error, face_server
from tests.support.images import img
from tests.support.servers import api_settings, start_server, stop_server

U = "01a204d1-8acf-71b5-a452-488015f3c71a"
ROUTES = [
    ("POST", FACES),
    ("GET", FACES),
    ("GET", f"{FACES}/{U}"),
    ("PATCH", f"{FACES}/{U}"),
    ("DELETE", f"{FACES}/{U}"),
    ("POST", f"{FACES}/search"),
    ("POST", f"{FACES}/detect"),
    ("POST", f"{FACES}/compare"),
    ("POST", f"{FACES}/{U}/compare"),
    ("GET", "/api/v1/models"),
    ("POST", "/api/v1/liveness"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_key(srv: FacesServer, method: str, path: str) -> None:
    body = {"model": "EDGE_FACE_V1"} if method in ("POST", "PATCH") else None
    assert_error(srv.call(method, path, body, key=None), 401, 401)
    assert_error(srv.call(method, path, body, key="wrong"), 401, 401)


def test_wrong_method_is_405(srv: FacesServer) -> None:
    assert_error(srv.call("PUT", FACES, {}), 405, 405)
    assert_error(srv.call("GET", f"{FACES}/detect/x"), 404, 404)


def test_wrong_content_type_and_big_body_write_nothing(srv: FacesServer, testdata: Path) -> None:
    before = srv.count()
    body = {"model": "EDGE_FACE_V1", "image": img(testdata / "awkward" / "obama_240p.jpg")}
    raw = json.dumps(body).encode()
    r = srv.call("POST", FACES, raw=raw, headers={"Content-Type": "text/plain"})
    assert_error(r, 415, 415)
    big = json.dumps({**body, "pad": "x" * (5 * 2**20)}).encode()
    r = srv.call("POST", FACES, raw=big, headers={"Content-Type": "application/json"})
    assert_error(r, 413, 413)
    r = srv.call("POST", FACES, raw=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(r, 400, 111)
    assert srv.count() == before


def test_not_ready_is_503_for_inference_but_store_routes_work(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, testdata: Path
) -> None:
    from edge.api.app import create_app

    settings = api_settings(tmp_path_factory.mktemp("cold"), model_dir)
    srv = start_server(create_app(settings, load_models=False), settings)
    try:
        image = img(testdata / "awkward" / "obama_240p.jpg")
        face = {"model": "EDGE_FACE_V1", "image": image}
        for path, body in (
            (FACES, face),
            (f"{FACES}/search", face),
            (f"{FACES}/detect", face),
            (f"{FACES}/compare", {"model": "EDGE_FACE_V1", "imageOne": image, "imageTwo": image}),
            (
                "/api/v1/liveness",
                {"model": "EDGE_LIVENESS_V1", "images": [{"index": 0, "type": "RGB", **image}]},
            ),
        ):
            assert_error(srv.call("POST", path, body), 503, 503)
        assert_error(srv.call("GET", "/api/v1/models"), 503, 503)
        # validation still answers first, and the store needs no models
        assert_error(srv.call("POST", FACES, {"image": image}), 400, 110, "model")
        page = srv.call("GET", FACES).json
        assert (page["total"], page["entities"]) == (0, [])
        assert_error(srv.call("GET", f"{FACES}/{U}"), 404, 404)
    finally:
        stop_server(srv)


def test_full_admission_is_429_and_writes_nothing(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, testdata: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with face_server(tmp_path_factory.mktemp("busy"), model_dir, queue_limit=1) as busy:
        image = img(testdata / "faces_by_identity" / "barack_obama" / "1.jpg")
        with ThreadPoolExecutor(16) as ex:
            results = list(ex.map(lambda _: busy.create(image, collection="busy"), range(32)))
        statuses = [r.status for r in results]
        assert set(statuses) <= {201, 429}, statuses
        assert statuses.count(429) >= 1 and statuses.count(201) >= 1
        for r in results:
            if r.status == 429:
                assert_error(r, 429, 429)
        assert busy.count() == statuses.count(201)
        assert busy.call("GET", f"{FACES}?collection=busy").json["total"] == statuses.count(201)
