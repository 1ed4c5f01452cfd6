"""POST /api/v1/liveness over real loopback HTTP (api.md §4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.api import schemas as s
from tests.support.faces import FACES, FacesServer, assert_error, face_server
from tests.support.images import b64, img

LIVENESS = "/api/v1/liveness"


def item(data: str, index: int = 0, **extra: Any) -> dict[str, Any]:
    return {"index": index, "type": "RGB", "data": data, **extra}


def live(srv: FacesServer, *images: dict[str, Any], model: str = "EDGE_LIVENESS_V1") -> Any:
    return srv.call("POST", LIVENESS, {"model": model, "images": list(images)})


def test_scores_live_below_spoof_on_real_samples(srv: FacesServer, testdata: Path) -> None:
    scores: dict[str, list[float]] = {}
    for kind in ("live", "spoof"):
        files = sorted((testdata / "liveness" / kind).iterdir())[::6][:8]
        for f in files:
            r = live(srv, item(b64(f)))
            assert r.status == 200, (f.name, r.raw)
            out = s.LivenessOut.model_validate(r.json)
            assert out.model == "EDGE_LIVENESS_V1"
            scores.setdefault(kind, []).append(out.spoofScore)
    assert np.mean(scores["spoof"]) > np.mean(scores["live"])


def test_position_matches_the_face_endpoints(srv: FacesServer, testdata: Path) -> None:
    photo = testdata / "multi_face" / "fr_two_people.jpg"
    r = live(srv, item(b64(photo)), model="JCV_2D_I25000")
    assert r.status == 200 and r.json["model"] == "JCV_2D_I25000"
    found = srv.call(
        "POST",
        f"{FACES}/search",
        {"model": "EDGE_FACE_V1", "image": img(photo, returnDetails={"position": True})},
    ).json
    assert r.json["position"] == found["entityUploaded"]["details"]["position"]


def test_extra_images_are_ignored_and_order_is_by_index(srv: FacesServer, testdata: Path) -> None:
    face = b64(testdata / "awkward" / "hopper_reference_upright.jpg")
    alone = live(srv, item(face)).json
    # images[1] (index 0) is the one analysed; the other is not decoded (not even valid base64)
    r = live(srv, item("!!not-base64!!", index=1), item(face, index=0))
    assert r.status == 200, r.raw
    assert r.json == alone
    before = srv.count()
    assert srv.count() == before  # liveness never stores


def test_auto_rotate(srv: FacesServer, testdata: Path) -> None:
    data = b64(testdata / "awkward" / "exif_orientation_6_hopper.jpg")
    assert_error(live(srv, item(data)), 400, 223, "images[0]")
    r = live(srv, item(data, autoRotate=True))
    assert r.status == 200, r.raw
    p = r.json["position"]
    assert p["width"] >= 32 and p["height"] >= 32


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"images": [item("x")]}, 110, "model"),
        ({"model": "EDGE_FACE_V1", "images": [item("x")]}, 113, "model"),
        ({"model": "EDGE_LIVENESS_V1"}, 110, "images"),
        ({"model": "EDGE_LIVENESS_V1", "images": "x"}, 111, "images"),
        ({"model": "EDGE_LIVENESS_V1", "images": []}, 219, "images"),
        ({"model": "EDGE_LIVENESS_V1", "images": [item("FACE", index=1)]}, 112, "images[0].index"),
        (
            {"model": "EDGE_LIVENESS_V1", "images": [item("FACE"), item("FACE", index=2)]},
            112,
            "images[1].index",
        ),
        (
            {"model": "EDGE_LIVENESS_V1", "images": [item("FACE"), item("FACE")]},
            116,
            "images[1].index",
        ),
        (
            {"model": "EDGE_LIVENESS_V1", "images": [item("FACE", type="NIR")]},
            112,
            "images[0].type",
        ),
        (
            {"model": "EDGE_LIVENESS_V1", "images": [item("FACE"), item("FACE", 1, type="IR")]},
            112,
            "images[1].type",
        ),
        (
            {"model": "EDGE_LIVENESS_V1", "images": [{"index": 0, "data": "FACE"}]},
            110,
            "images[0].type",
        ),
        (
            {"model": "EDGE_LIVENESS_V1", "images": [{"index": 0, "type": "RGB"}]},
            110,
            "images[0].data",
        ),
        (
            {"model": "EDGE_LIVENESS_V1", "images": [item("FACE"), item("  ", 1)]},
            110,
            "images[1].data",
        ),
        (
            {"model": "EDGE_LIVENESS_V1", "images": [item("FACE", index="0")]},
            111,
            "images[0].index",
        ),
        (
            {"model": "EDGE_LIVENESS_V1", "images": [item("FACE", autoRotate="no")]},
            111,
            "images[0].autoRotate",
        ),
        ({"model": "EDGE_LIVENESS_V1", "images": [item("%%%")]}, 214, "images[0].data"),
        ({"model": "EDGE_LIVENESS_V1", "images": [item("WEBP")]}, 215, "images[0].data"),
        ({"model": "EDGE_LIVENESS_V1", "images": [item("GRAY")]}, 216, "images[0].data"),
        ({"model": "EDGE_LIVENESS_V1", "images": [item("DOGS")]}, 223, "images[0]"),
        ({"model": "EDGE_LIVENESS_V1", "images": [item("TINY")]}, 224, "images[0]"),
    ],
)
def test_liveness_errors(
    srv: FacesServer, testdata: Path, body: dict, code: int, field: str
) -> None:
    aw = testdata / "awkward"
    named = {
        "FACE": aw / "hopper_reference_upright.jpg",
        "WEBP": aw / "hopper.webp",
        "GRAY": aw / "hopper_gray.jpg",
        "DOGS": aw / "no_face_dogs.jpg",
        "TINY": aw / "hopper_64px.gif",
    }
    for im in body.get("images", []) if isinstance(body.get("images"), list) else []:
        if im.get("data") in named:
            im["data"] = b64(named[im["data"]])
    assert_error(srv.call("POST", LIVENESS, body), 400, code, field)


def test_liveness_over_the_pixel_cap_is_217(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, testdata: Path
) -> None:
    with face_server(tmp_path_factory.mktemp("cap"), model_dir, max_pixels=100_000) as small:
        data = b64(testdata / "awkward" / "obama_1080p.jpg")
        assert_error(live(small, item(data)), 400, 217, "images[0].data")


def test_liveness_path_is_configurable(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, testdata: Path
) -> None:
    with face_server(
        tmp_path_factory.mktemp("path"), model_dir, liveness_path="/liveness/v1/check"
    ) as other:
        face = b64(testdata / "awkward" / "hopper_reference_upright.jpg")
        body = {"model": "EDGE_LIVENESS_V1", "images": [item(face)]}
        assert other.call("POST", "/liveness/v1/check", body).status == 200
        assert_error(other.call("POST", LIVENESS, body), 404, 404)
