"""1:N search over real loopback HTTP: ranking, threshold, limits, filters, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.api import schemas as s
from tests.support.faces import ALL_DETAILS, FACES, FacesServer, assert_error
from tests.support.images import img, pic
from tests.support.servers import KEY_A

SEARCH = FACES + "/search"


@pytest.fixture(scope="module")
def people(srv: FacesServer, testdata: Path) -> dict[str, Any]:
    """Four people enrolled in collection `g` (two photos of obama), plus probe photos."""
    fbi = testdata / "faces_by_identity"
    enrolled: dict[str, list[str]] = {}
    for person, photos in (
        ("barack_obama", ["1", "3"]),
        ("angelina_jolie", ["1"]),
        ("tom_hanks", ["1"]),
        ("keanu_reeves", ["1"]),
    ):
        for p in photos:
            r = srv.create(img(pic(fbi / person, p)), collection="g", key=person)
            assert r.status == 201, r.raw
            enrolled.setdefault(person, []).append(r.json["uuid"])
    return {"uuids": enrolled, "fbi": fbi}


def search(srv: FacesServer, photo: Path, **fields: Any) -> Any:
    body = {"model": "EDGE_FACE_V1", "image": img(photo), "collection": "g", **fields}
    return srv.call("POST", SEARCH, body)


def test_search_ranks_the_same_person_first(srv: FacesServer, people: dict) -> None:
    r = search(srv, pic(people["fbi"] / "barack_obama", "2"))
    assert r.status == 200, r.raw
    out = s.SearchOut.model_validate(r.json)
    assert (out.model, out.maxEntities, out.threshold) == ("EDGE_FACE_V1", 10, 0.0)
    assert out.count == len(out.entitiesFound) == 5
    keys = [e.key for e in out.entitiesFound]
    assert keys[:2] == ["barack_obama", "barack_obama"]
    scores = [e.similarityScore for e in out.entitiesFound]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] >= 0.9 > scores[2]
    assert out.entityUploaded.details.model_dump(exclude_none=True) == {}


def test_threshold_and_max_entities(srv: FacesServer, people: dict) -> None:
    probe = pic(people["fbi"] / "barack_obama", "2")
    strict = search(srv, probe, threshold=0.9).json
    assert strict["threshold"] == 0.9
    assert {e["key"] for e in strict["entitiesFound"]} == {"barack_obama"}
    assert all(e["similarityScore"] >= 0.9 for e in strict["entitiesFound"])
    one = search(srv, probe, maxEntities=1).json
    assert (one["count"], one["maxEntities"]) == (1, 1)
    assert one["entitiesFound"][0]["uuid"] == search(srv, probe).json["entitiesFound"][0]["uuid"]
    alias = search(srv, probe, maxFaces=2).json
    assert (alias["count"], alias["maxEntities"]) == (2, 2)
    assert search(srv, probe, threshold=1).json["count"] == 0


def test_no_hit_is_count_zero(srv: FacesServer, people: dict) -> None:
    r = search(srv, pic(people["fbi"] / "barack_obama", "2"), collection="nobody-here")
    assert r.status == 200
    assert (r.json["count"], r.json["entitiesFound"]) == (0, [])
    r = search(srv, pic(people["fbi"] / "barack_obama", "2"), key="nobody")
    assert r.json["count"] == 0


def test_key_filter_and_alias_echo(srv: FacesServer, people: dict) -> None:
    r = search(
        srv, pic(people["fbi"] / "tom_hanks", "2"), key="keanu_reeves", model="JCV_FACE_K25000"
    )
    out = r.json
    assert out["model"] == "JCV_FACE_K25000"
    assert [e["uuid"] for e in out["entitiesFound"]] == people["uuids"]["keanu_reeves"]
    assert out["entitiesFound"][0]["model"] == "EDGE_FACE_V1"  # as enrolled


def test_search_details(srv: FacesServer, people: dict) -> None:
    probe = pic(people["fbi"] / "angelina_jolie", "2")
    body = {"model": "EDGE_FACE_V1", "image": img(probe, returnDetails=ALL_DETAILS)}
    out = s.SearchOut.model_validate(srv.call("POST", SEARCH, body).json)
    d = out.entityUploaded.details
    assert d.position and d.angle and d.quality and d.landmarks and d.attributes
    assert out.entitiesFound[0].key == "angelina_jolie"


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"maxEntities": 0}, 112, "maxEntities"),
        ({"maxEntities": 1001}, 112, "maxEntities"),
        ({"maxFaces": "3"}, 111, "maxFaces"),
        ({"threshold": 1.5}, 112, "threshold"),
        ({"threshold": "high"}, 111, "threshold"),
        ({"model": "JCV_2D_I25000"}, 113, "model"),
        ({"collection": 7}, 111, "collection"),
        ({"image": {"data": ""}}, 110, "image.data"),
        ({"image": {"data": "@@@"}}, 214, "image.data"),
    ],
)
def test_search_errors(srv: FacesServer, people: dict, fields: dict, code: int, field: str) -> None:
    before = srv.count()
    r = search(srv, pic(people["fbi"] / "barack_obama", "2"), **fields)
    assert_error(r, 400, code, field)
    assert srv.count() == before


def test_search_image_errors(srv: FacesServer, people: dict, testdata: Path) -> None:
    aw = testdata / "awkward"
    for name, code in (
        ("no_face_dogs.jpg", 223),
        ("hopper_64px.gif", 224),
        ("hopper.webp", 215),
        ("hopper_gray.jpg", 216),
        ("broken_truncated.jpg", 214),
    ):
        assert_error(search(srv, aw / name), 400, code, "image")
    assert_error(srv.call("POST", SEARCH, {"model": "EDGE_FACE_V1"}), 400, 110, "image")
    assert_error(srv.call("POST", SEARCH, {"model": "EDGE_FACE_V1"}, key=None), 401, 401)


def test_search_sees_only_its_instance(srv: FacesServer, people: dict) -> None:
    from tests.support.servers import KEY_B

    r = srv.call(
        "POST",
        SEARCH,
        {"model": "EDGE_FACE_V1", "image": img(pic(people["fbi"] / "barack_obama", "2"))},
        key=KEY_B,
    )
    assert r.json["count"] == 0
    assert srv.call("GET", FACES, key=KEY_A).json["total"] >= 5


def test_empty_filters_mean_no_filter(srv: FacesServer, people: dict) -> None:
    probe = pic(people["fbi"] / "barack_obama", "2")
    body = {"model": "EDGE_FACE_V1", "image": img(probe), "collection": "", "key": ""}
    everything = srv.call("POST", SEARCH, body).json
    assert everything["count"] >= 5
    listed = srv.call("GET", f"{FACES}?collection=&key=").json
    assert listed["total"] == srv.count()
