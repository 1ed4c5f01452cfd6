"""1:1 compare (two images, and an entity vs an image) over real loopback HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.api import schemas as s
from tests.support.faces import ALL_DETAILS, FACES, FacesServer, assert_error
from tests.support.images import img, pic

COMPARE = FACES + "/compare"


@pytest.fixture(scope="module")
def fbi(testdata: Path) -> Path:
    return testdata / "faces_by_identity"


def compare(srv: FacesServer, one: dict, two: dict, model: str = "EDGE_FACE_V1") -> object:
    return srv.call("POST", COMPARE, {"model": model, "imageOne": one, "imageTwo": two})


def test_same_photo_twice_scores_at_least_099(srv: FacesServer, fbi: Path) -> None:
    p = pic(fbi / "tom_hanks", "1")
    r = compare(srv, img(p), img(p))
    assert r.status == 200, r.raw
    out = s.CompareOut.model_validate(r.json)
    assert out.similarityScore >= 0.99
    assert out.entities.imageOne.details.model_dump(exclude_none=True) == {}


def test_same_person_above_and_strangers_below_threshold(srv: FacesServer, fbi: Path) -> None:
    same = compare(srv, img(pic(fbi / "keanu_reeves", "1")), img(pic(fbi / "keanu_reeves", "12")))
    other = compare(srv, img(pic(fbi / "keanu_reeves", "1")), img(pic(fbi / "tom_hanks", "1")))
    assert same.json["similarityScore"] >= 0.9 > other.json["similarityScore"] >= 0.0


def test_compare_is_symmetric_and_returns_details(srv: FacesServer, fbi: Path) -> None:
    a = img(pic(fbi / "halle_berry", "1"), returnDetails={"position": True, "angle": True})
    b = img(pic(fbi / "halle_berry", "2"), returnDetails={"quality": True})
    ab = compare(srv, a, b, model="JCV_FACE_K25000").json
    ba = compare(srv, b, a).json
    assert ab["model"] == "JCV_FACE_K25000"
    assert abs(ab["similarityScore"] - ba["similarityScore"]) < 1e-6
    assert set(ab["entities"]["imageOne"]["details"]) == {"position", "angle"}
    assert set(ab["entities"]["imageTwo"]["details"]) == {"quality"}


def test_entity_compare_matches_compare_and_search(srv: FacesServer, fbi: Path) -> None:
    enrol, probe = pic(fbi / "jessica_alba", "1"), pic(fbi / "jessica_alba", "3")
    r = srv.create(img(enrol), collection="cmp", key="alba")
    u = r.json["uuid"]
    one = srv.call(
        "POST",
        f"{FACES}/{u}/compare",
        {"model": "JCV_FACE_J10000", "image": img(probe, returnDetails=ALL_DETAILS)},
    )
    assert one.status == 200, one.raw
    out = s.CompareEntityOut.model_validate(one.json)
    assert out.model == "JCV_FACE_J10000"
    assert out.entity.uuid == u and out.entity.key == "alba"
    assert out.entityUploaded.details.landmarks is not None
    pair = compare(srv, img(enrol), img(probe)).json["similarityScore"]
    found = srv.call(
        "POST",
        f"{FACES}/search",
        {"model": "EDGE_FACE_V1", "image": img(probe), "collection": "cmp"},
    ).json["entitiesFound"]
    assert abs(out.similarityScore - pair) < 1e-5
    assert abs(found[0]["similarityScore"] - pair) < 1e-5


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"imageOne": "A", "imageTwo": "B"}, 110, "model"),
        ({"model": "X", "imageOne": "A", "imageTwo": "B"}, 113, "model"),
        ({"model": "EDGE_FACE_V1", "imageOne": "A"}, 110, "imageTwo"),
        ({"model": "EDGE_FACE_V1", "imageOne": [], "imageTwo": "B"}, 111, "imageOne"),
        (
            {"model": "EDGE_FACE_V1", "imageOne": {"data": " "}, "imageTwo": "B"},
            110,
            "imageOne.data",
        ),
        ({"model": "EDGE_FACE_V1", "imageOne": "A", "imageTwo": "DOGS"}, 223, "imageTwo"),
        ({"model": "EDGE_FACE_V1", "imageOne": "TINY", "imageTwo": "A"}, 224, "imageOne"),
        ({"model": "EDGE_FACE_V1", "imageOne": "A", "imageTwo": "GRAY"}, 216, "imageTwo.data"),
        ({"model": "EDGE_FACE_V1", "imageOne": "WEBP", "imageTwo": "A"}, 215, "imageOne.data"),
        (
            {
                "model": "EDGE_FACE_V1",
                "imageOne": "A",
                "imageTwo": {"data": "x", "area": {"top": 0, "left": 0, "width": -1, "height": 1}},
            },
            214,
            "imageTwo.data",
        ),
    ],
)
def test_compare_errors(
    srv: FacesServer, fbi: Path, testdata: Path, body: dict, code: int, field: str
) -> None:
    aw = testdata / "awkward"
    named = {
        "A": pic(fbi / "tom_hanks", "1"),
        "B": pic(fbi / "tom_hanks", "2"),
        "DOGS": aw / "no_face_dogs.jpg",
        "TINY": aw / "hopper_64px.gif",
        "GRAY": aw / "hopper_gray.jpg",
        "WEBP": aw / "hopper.webp",
    }
    body = {k: img(named[v]) if isinstance(v, str) and v in named else v for k, v in body.items()}
    assert_error(srv.call("POST", COMPARE, body), 400, code, field)


def test_entity_compare_errors(srv: FacesServer, fbi: Path, testdata: Path) -> None:
    u = srv.create(img(pic(fbi / "tom_hanks", "1"))).json["uuid"]
    good = {"model": "EDGE_FACE_V1", "image": img(pic(fbi / "tom_hanks", "2"))}
    for bad in ("nope", "01a204d1-8acf-71b5-a452-488015f3c71a"):
        assert_error(srv.call("POST", f"{FACES}/{bad}/compare", good), 404, 404)
    assert_error(srv.call("POST", f"{FACES}/{u}/compare", {"image": good["image"]}), 400, 110)
    assert_error(
        srv.call("POST", f"{FACES}/{u}/compare", {**good, "model": "NOPE"}), 400, 113, "model"
    )
    dogs = {"model": "EDGE_FACE_V1", "image": img(testdata / "awkward" / "no_face_dogs.jpg")}
    assert_error(srv.call("POST", f"{FACES}/{u}/compare", dogs), 400, 223, "image")
    from tests.support.servers import KEY_B

    assert_error(srv.call("POST", f"{FACES}/{u}/compare", good, key=KEY_B), 404, 404)
