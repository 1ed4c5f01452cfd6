"""Detect over real loopback HTTP: all faces, largest first, area, autoRotate, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.api import schemas as s
from tests.support.faces import ALL_DETAILS, FACES, FacesServer, assert_error
from tests.support.images import img

DETECT = FACES + "/detect"


def detect(srv: FacesServer, photo: Path, model: str = "EDGE_FACE_V1", **opts: Any) -> Any:
    return srv.call("POST", DETECT, {"model": model, "image": img(photo, **opts)})


def area_of(p: dict[str, int]) -> int:
    return p["width"] * p["height"]


def test_detect_lists_every_face_largest_first(srv: FacesServer, testdata: Path) -> None:
    before = srv.count()
    r = detect(
        srv,
        testdata / "multi_face" / "deepface_selfie_many_people.jpg",
        returnDetails={"position": True},
    )
    assert r.status == 200, r.raw
    out = s.DetectOut.model_validate(r.json)
    assert out.count == len(out.entities) >= 4
    areas = [area_of(e.details.position.model_dump()) for e in out.entities]  # type: ignore[union-attr]
    assert areas == sorted(areas, reverse=True)
    assert all("rotated" not in e for e in r.json["entities"])  # only with autoRotate
    assert srv.count() == before  # detect stores nothing


def test_detect_keeps_faces_under_10_percent(srv: FacesServer, testdata: Path) -> None:
    photo = testdata / "multi_face" / "compreface_010_2.jpg"  # largest face < 10 % wide
    assert_error(srv.create(img(photo)), 400, 224, "image")
    out = detect(srv, photo, returnDetails={"position": True}).json
    assert out["count"] >= 1
    assert all(
        min(e["details"]["position"]["width"], e["details"]["position"]["height"]) >= 32
        for e in out["entities"]
    )


def test_detect_details_and_alias(srv: FacesServer, testdata: Path) -> None:
    r = detect(
        srv,
        testdata / "multi_face" / "fr_two_people.jpg",
        model="JCV_FACE_K25000",
        returnDetails=ALL_DETAILS,
    )
    out = s.DetectOut.model_validate(r.json)
    assert out.model == "JCV_FACE_K25000" and out.count == 2
    for e in out.entities:
        d = e.details
        assert d.position and d.angle and d.quality and d.attributes
        assert d.landmarks is not None and len(d.landmarks) == 106
    bare = detect(srv, testdata / "multi_face" / "fr_two_people.jpg").json
    assert [e["details"] for e in bare["entities"]] == [{}, {}]


def test_area_keeps_only_overlapping_faces(srv: FacesServer, testdata: Path) -> None:
    photo = testdata / "multi_face" / "fr_two_people.jpg"
    full = detect(srv, photo, returnDetails={"position": True}).json["entities"]
    left = min((e["details"]["position"] for e in full), key=lambda p: p["left"])
    area = {"top": left["top"], "left": left["left"], "width": 10, "height": 10}
    out = detect(srv, photo, area=area, returnDetails={"position": True}).json
    assert out["count"] == 1
    assert out["entities"][0]["details"]["position"] == left  # full-image coordinates


def test_no_face_is_count_zero(srv: FacesServer, testdata: Path) -> None:
    for name in ("no_face_dogs.jpg", "no_face_landscape_view.jpg"):
        r = detect(srv, testdata / "awkward" / name)
        assert r.status == 200 and r.json == {"model": "EDGE_FACE_V1", "count": 0, "entities": []}


def test_auto_rotate_reports_the_turn(srv: FacesServer, testdata: Path) -> None:
    aw = testdata / "awkward"
    photo = aw / "exif_orientation_6_hopper.jpg"  # EXIF says: turn 90 degrees clockwise
    assert detect(srv, photo).json["count"] == 0  # raw pixel grid: the face lies sideways
    out = detect(srv, photo, autoRotate=True, returnDetails={"position": True}).json
    assert out["count"] == 1 and out["entities"][0]["rotated"] == 90
    upright = detect(srv, aw / "hopper_reference_upright.jpg", autoRotate=True).json
    assert [e["rotated"] for e in upright["entities"]] == [0]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"image": {"data": "aGk="}}, 110, "model"),
        ({"model": "JCV_2D_I25000", "image": {"data": "aGk="}}, 113, "model"),
        ({"model": "EDGE_FACE_V1"}, 110, "image"),
        ({"model": "EDGE_FACE_V1", "image": {"data": None}}, 110, "image.data"),
        (
            {"model": "EDGE_FACE_V1", "image": {"data": "aGk=", "returnDetails": []}},
            111,
            "image.returnDetails",
        ),
        ({"model": "EDGE_FACE_V1", "image": {"data": "aGk="}}, 214, "image.data"),
    ],
)
def test_detect_errors(srv: FacesServer, body: dict, code: int, field: str) -> None:
    assert_error(srv.call("POST", DETECT, body), 400, code, field)


def test_detect_image_errors(srv: FacesServer, testdata: Path) -> None:
    aw = testdata / "awkward"
    for name, code in (("hopper.webp", 215), ("hopper_gray.jpg", 216), ("broken_empty.png", 214)):
        assert_error(detect(srv, aw / name), 400, code, "image.data")
    far = {"top": 5000, "left": 0, "width": 10, "height": 10}
    assert_error(detect(srv, aw / "hopper_reference_upright.jpg", area=far), 400, 112, "image.area")
