"""Face entities over real loopback HTTP: create/list/get/patch/delete, paging, TTL, tenants."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.api import schemas as s
from tests.support.faces import ALL_DETAILS, FACES, FacesServer, assert_error, face_server
from tests.support.images import img
from tests.support.servers import KEY_A, KEY_B


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[FacesServer]:
    # A low pixel cap so that a real 12.6 MP photo exercises 217.
    with face_server(tmp_path_factory.mktemp("entities"), model_dir, max_pixels=4_000_000) as srv:
        yield srv


@pytest.fixture(scope="module")
def photos(testdata: Path) -> dict[str, Path]:
    fbi = testdata / "faces_by_identity"
    aw = testdata / "awkward"
    return {
        "obama": fbi / "barack_obama" / "1.jpg",
        "obama2": fbi / "barack_obama" / "2.jpg",
        "jolie": fbi / "angelina_jolie" / "1.jpg",
        "jolie2": fbi / "angelina_jolie" / "2.jpg",
        "two": testdata / "multi_face" / "fr_two_people.jpg",
        "dogs": aw / "no_face_dogs.jpg",
        "tiny": aw / "hopper_64px.gif",
        "small_ratio": testdata / "multi_face" / "compreface_010_2.jpg",
        "truncated": aw / "broken_truncated.jpg",
        "corrupt": aw / "broken_corrupted.png",
        "webp": aw / "hopper.webp",
        "webp_as_jpg": aw / "masked_face_3.jpg",
        "pgm": aw / "orl_s01_1.pgm",
        "gray": aw / "hopper_gray.jpg",
        "gray_gif": aw / "yale_subject01_happy_GIF_without_extension",
        "big": aw / "scarlett_johansson_4352x2903.jpg",
    }


def parse_time(t: str) -> datetime:
    assert len(t) == 20 and t.endswith("Z"), t
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def new(srv: FacesServer, photo: Path, api_key: str = KEY_A, **fields: Any) -> dict[str, Any]:
    r = srv.create(img(photo), api_key=api_key, **fields)
    assert r.status == 201, r.raw
    return r.json


# Create ----------------------------------------------------------------------------------------
def test_create_returns_the_entity_and_stores_it(srv: FacesServer, photos: dict) -> None:
    before = srv.count()
    meta = [
        {"name": "employee", "type": "integer", "value": 42},
        {"name": "vip", "type": "boolean", "value": True},
        {"name": "height", "type": "float", "value": 1.85},
        {"name": "name", "type": "string", "value": "Barack"},
    ]
    r = srv.create(img(photos["obama"]), collection="staff", key="obama", metadata=meta)
    assert r.status == 201, r.raw
    ent = s.CreatedEntityOut.model_validate(r.json).model_dump(exclude_none=True)
    assert "entityUploaded" not in r.json  # no detail asked for
    assert (ent["model"], ent["collection"], ent["key"]) == ("EDGE_FACE_V1", "staff", "obama")
    assert ent["metadata"] == meta
    assert ent["expiresAt"] == "3000-01-01T00:00:00Z"
    created = parse_time(ent["createdAt"])
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 30
    assert ent["updatedAt"] == ent["createdAt"]
    assert srv.count() == before + 1
    got = srv.call("GET", f"{FACES}/{ent['uuid']}")
    assert got.status == 200 and got.json == {k: v for k, v in r.json.items()}
    stored = srv.store.get("inst-a", ent["uuid"], with_vector=True)
    assert stored.vector.shape == (128,)
    assert abs(float(np.linalg.norm(stored.vector)) - 1.0) < 1e-5


def test_create_with_details_returns_entity_uploaded(srv: FacesServer, photos: dict) -> None:
    r = srv.create(img(photos["obama"], returnDetails=ALL_DETAILS))
    assert r.status == 201, r.raw
    out = s.CreatedEntityOut.model_validate(r.json)
    d = out.entityUploaded.details  # type: ignore[union-attr]
    assert d.position and d.angle and d.quality and d.attributes
    assert d.landmarks is not None and len(d.landmarks) == 106
    p = d.position
    assert p.width >= 32 and p.height >= 32
    assert d.angle.centerX == p.left + p.width // 2
    r = srv.create(img(photos["obama"], returnDetails={"position": True}))
    assert set(r.json["entityUploaded"]["details"]) == {"position"}


def test_alias_is_echoed_everywhere(srv: FacesServer, photos: dict) -> None:
    body = {"model": "JCV_FACE_J10000", "image": img(photos["jolie"]), "collection": "alias"}
    r = srv.call("POST", FACES, body)
    assert r.status == 201 and r.json["model"] == "JCV_FACE_J10000"
    u = r.json["uuid"]
    assert srv.call("GET", f"{FACES}/{u}").json["model"] == "JCV_FACE_J10000"
    listed = srv.call("GET", f"{FACES}?collection=alias").json["entities"]
    assert [e["model"] for e in listed] == ["JCV_FACE_J10000"]
    # the canonical name and the other alias filter the same entities
    for name in ("EDGE_FACE_V1", "JCV_FACE_K25000"):
        page = srv.call("GET", f"{FACES}?collection=alias&model={name}").json
        assert [e["uuid"] for e in page["entities"]] == [u]


def test_unknown_body_fields_are_ignored(srv: FacesServer, photos: dict) -> None:
    r = srv.create(
        img(photos["obama"], foo=1), collection="extras", **{"class": "Person", "x": {"y": []}}
    )
    assert r.status == 201, r.raw
    assert "class" not in r.json and "x" not in r.json


def test_area_selects_the_face_inside_it(srv: FacesServer, photos: dict) -> None:
    whole = srv.create(img(photos["two"], returnDetails={"position": True}))
    big = whole.json["entityUploaded"]["details"]["position"]
    # the other (smaller) person stands left of the largest face
    area = {"top": 0, "left": 0, "width": big["left"] - 10, "height": 400}
    r = srv.create(img(photos["two"], area=area, returnDetails={"position": True}))
    assert r.status == 201, r.raw
    p = r.json["entityUploaded"]["details"]["position"]
    assert p["left"] < area["width"] and p != big
    # an area far outside the image
    r = srv.create(img(photos["two"], area={"top": 0, "left": 99999, "width": 5, "height": 5}))
    assert_error(r, 400, 112, "image.area")


# Create errors: exact code, field, nothing written ------------------------------------------------
DROP = object()  # leave the field out of the body
CREATE_ERRORS: list[tuple[str, Any, int, str]] = [
    ("body is an array", [], 111, ""),
    ("model missing", {"model": DROP, "image": "obama"}, 110, "model"),
    ("model null", {"model": None, "image": "obama"}, 110, "model"),
    ("model not a string", {"model": 1, "image": "obama"}, 111, "model"),
    ("model unknown", {"model": "JCV_FACE_X", "image": "obama"}, 113, "model"),
    ("liveness model", {"model": "EDGE_LIVENESS_V1", "image": "obama"}, 113, "model"),
    ("image missing", {"model": "EDGE_FACE_V1"}, 110, "image"),
    ("image.data empty", {"model": "EDGE_FACE_V1", "image": {"data": ""}}, 110, "image.data"),
    (
        "image.data absent",
        {"model": "EDGE_FACE_V1", "image": {"autoRotate": True}},
        110,
        "image.data",
    ),
    (
        "image.data not base64",
        {"model": "EDGE_FACE_V1", "image": {"data": "!!!not b64***"}},
        214,
        "image.data",
    ),
    ("ttl 0", {"image": "obama", "ttl": 0}, 112, "ttl"),
    ("ttl string", {"image": "obama", "ttl": "5"}, 111, "ttl"),
    ("collection too long", {"image": "obama", "collection": "c" * 257}, 112, "collection"),
    ("key wrong type", {"image": "obama", "key": ["k"]}, 111, "key"),
    (
        "area width 0",
        {"image": ("obama", {"area": {"top": 0, "left": 0, "width": 0, "height": 9}})},
        112,
        "image.area.width",
    ),
    (
        "area field missing",
        {"image": ("obama", {"area": {"top": 0, "left": 0, "width": 9}})},
        110,
        "image.area.height",
    ),
    (
        "area not ints",
        {"image": ("obama", {"area": {"top": 0, "left": 0, "width": 9.5, "height": 9}})},
        111,
        "image.area.width",
    ),
    ("autoRotate not bool", {"image": ("obama", {"autoRotate": "true"})}, 111, "image.autoRotate"),
    (
        "too many metadata",
        {
            "image": "obama",
            "metadata": [{"name": f"m{i}", "type": "string", "value": "v"} for i in range(11)],
        },
        112,
        "metadata",
    ),
    (
        "reserved metadata",
        {"image": "obama", "metadata": [{"name": "expiresAt", "type": "string", "value": "v"}]},
        112,
        "metadata[0].name",
    ),
    (
        "metadata value type",
        {
            "image": "obama",
            "metadata": [
                {"name": "a", "type": "string", "value": "v"},
                {"name": "b", "type": "string", "value": "v"},
                {"name": "c", "type": "integer", "value": 1.5},
            ],
        },
        112,
        "metadata[2].value",
    ),
    (
        "metadata int32",
        {"image": "obama", "metadata": [{"name": "a", "type": "integer", "value": 2**31}]},
        112,
        "metadata[0].value",
    ),
    (
        "metadata bad enum",
        {"image": "obama", "metadata": [{"name": "a", "type": "date", "value": "x"}]},
        112,
        "metadata[0].type",
    ),
    (
        "metadata duplicate",
        {
            "image": "obama",
            "metadata": [
                {"name": "a", "type": "string", "value": "x"},
                {"name": "a", "type": "boolean", "value": True},
            ],
        },
        116,
        "metadata[1].name",
    ),
    ("not an image", {"image": "corrupt"}, 214, "image.data"),
    ("truncated jpeg", {"image": "truncated"}, 214, "image.data"),
    ("webp", {"image": "webp"}, 215, "image.data"),
    ("webp named .jpg", {"image": "webp_as_jpg"}, 215, "image.data"),
    ("pgm", {"image": "pgm"}, 215, "image.data"),
    ("grayscale jpeg", {"image": "gray"}, 216, "image.data"),
    ("grayscale gif", {"image": "gray_gif"}, 216, "image.data"),
    ("over the pixel cap", {"image": "big"}, 217, "image.data"),
    ("no face", {"image": "dogs"}, 223, "image"),
    ("face under 32 px", {"image": "tiny"}, 224, "image"),
    ("face under 10 %", {"image": "small_ratio"}, 224, "image"),
]


def _materialise(body: Any, photos: dict[str, Path]) -> Any:
    if not isinstance(body, dict):
        return body
    out = {"model": "EDGE_FACE_V1", **body}
    if out["model"] is DROP:
        del out["model"]
    im = out.get("image")
    if isinstance(im, str):
        out["image"] = img(photos[im])
    elif isinstance(im, tuple):
        out["image"] = img(photos[im[0]], **im[1])
    return out


@pytest.mark.parametrize(
    ("case", "body", "code", "field"), CREATE_ERRORS, ids=[c[0] for c in CREATE_ERRORS]
)
def test_create_errors_write_nothing(
    srv: FacesServer, photos: dict, case: str, body: Any, code: int, field: str
) -> None:
    before = srv.count()
    changes = len(srv.store.changes_since(0, 100000))
    r = srv.call("POST", FACES, _materialise(body, photos))
    assert_error(r, 400, code, field)
    assert srv.count() == before
    assert len(srv.store.changes_since(0, 100000)) == changes
    assert srv.call("GET", "/healthz", key=None).status == 200  # still serving


def test_create_without_key_is_401_and_writes_nothing(srv: FacesServer, photos: dict) -> None:
    before = srv.count()
    r = srv.call("POST", FACES, _materialise({"image": "obama"}, photos), key=None)
    assert_error(r, 401, 401)
    assert srv.count() == before


# List and paging ---------------------------------------------------------------------------------
def test_paging_follows_next_after(srv: FacesServer, photos: dict) -> None:
    made = [new(srv, photos["obama"], collection="paging")["uuid"] for _ in range(5)]
    assert made == sorted(made)  # uuids sort in creation order
    seen, after, pages = [], "", []
    while True:
        q = f"{FACES}?collection=paging&limit=2" + (f"&after={after}" if after else "")
        page = s.EntityListOut.model_validate(srv.call("GET", q).json)
        assert page.total == 5 and page.limit == 2
        pages.append((page.count, page.nextAfter))
        seen += [e.uuid for e in page.entities]
        if not page.nextAfter:
            break
        assert page.nextAfter == page.entities[-1].uuid
        after = page.nextAfter
    assert seen == made
    assert pages == [(2, made[1]), (2, made[3]), (1, "")]


def test_full_last_page_gives_next_after_then_empty_page(srv: FacesServer, photos: dict) -> None:
    made = [new(srv, photos["jolie"], collection="fullpage")["uuid"] for _ in range(3)]
    page = srv.call("GET", f"{FACES}?collection=fullpage&limit=3").json
    assert (page["count"], page["nextAfter"]) == (3, made[-1])
    last = srv.call("GET", f"{FACES}?collection=fullpage&limit=3&after={made[-1]}").json
    assert last == {"total": 3, "count": 0, "limit": 3, "nextAfter": "", "entities": []}


def test_list_defaults_and_filters(srv: FacesServer, photos: dict) -> None:
    a = new(srv, photos["obama"], collection="filt", key="k1")["uuid"]
    b = new(srv, photos["obama"], collection="filt", key="k2")["uuid"]
    c = new(srv, photos["obama"], collection="filt", key="k1")["uuid"]
    page = srv.call("GET", f"{FACES}?collection=filt").json
    assert page["limit"] == 20 and page["nextAfter"] == ""
    assert [e["uuid"] for e in page["entities"]] == [a, b, c]
    page = srv.call("GET", f"{FACES}?collection=filt&key=k1").json
    assert (page["total"], [e["uuid"] for e in page["entities"]]) == (2, [a, c])
    page = srv.call("GET", f"{FACES}?collection=filt&after={a}").json
    assert page["total"] == 3 and [e["uuid"] for e in page["entities"]] == [b, c]
    everything = srv.call("GET", f"{FACES}?limit=1000").json
    assert everything["total"] == srv.count() == everything["count"]


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("limit=abc", 112, "limit"),
        ("limit=0", 112, "limit"),
        ("limit=1001", 112, "limit"),
        ("limit=2.5", 112, "limit"),
        ("after=not-a-uuid", 112, "after"),
        ("model=NOPE", 113, "model"),
        ("collection=" + "c" * 257, 112, "collection"),
    ],
)
def test_list_query_errors(srv: FacesServer, query: str, code: int, field: str) -> None:
    assert_error(srv.call("GET", f"{FACES}?{query}"), 400, code, field)


# Get / delete -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH"])
@pytest.mark.parametrize(
    "uuid", ["not-a-uuid", "01a204d1-8acf-71b5-a452-488015f3c71a", "01a204d1", "%20"]
)
def test_unknown_or_malformed_uuid_is_404(srv: FacesServer, method: str, uuid: str) -> None:
    body = {"key": "x"} if method == "PATCH" else None
    r = srv.call(method, f"{FACES}/{uuid}", body)
    b = assert_error(r, 404, 404)
    assert b["name"] == "entity_not_found"


def test_delete_removes_the_entity(srv: FacesServer, photos: dict) -> None:
    u = new(srv, photos["obama"], collection="del")["uuid"]
    before = srv.count()
    r = srv.call("DELETE", f"{FACES}/{u}")
    assert r.status == 204 and r.raw == b""
    assert srv.count() == before - 1
    assert_error(srv.call("GET", f"{FACES}/{u}"), 404, 404)
    assert_error(srv.call("DELETE", f"{FACES}/{u}"), 404, 404)
    assert srv.call("GET", f"{FACES}?collection=del").json["total"] == 0


def test_uppercase_uuid_finds_the_entity(srv: FacesServer, photos: dict) -> None:
    u = new(srv, photos["obama"])["uuid"]
    assert srv.call("GET", f"{FACES}/{u.upper()}").json["uuid"] == u


# Patch --------------------------------------------------------------------------------------------
def test_patch_updates_fields_and_advances_updated_at(srv: FacesServer, photos: dict) -> None:
    meta = [{"name": "a", "type": "string", "value": "1"}]
    ent = new(srv, photos["obama"], collection="p1", key="k", metadata=meta, ttl=3600)
    time.sleep(1.1)  # second precision: make "advanced" observable
    new_meta = [{"name": "b", "type": "float", "value": 2.5}]
    r = srv.call(
        "PATCH",
        f"{FACES}/{ent['uuid']}",
        {"collection": "p2", "metadata": new_meta, "model": "JCV_FACE_K25000", "class": "x"},
    )
    assert r.status == 200, r.raw
    out = s.EntityOut.model_validate(r.json).model_dump()
    assert (out["collection"], out["key"], out["metadata"]) == ("p2", "k", new_meta)
    assert out["model"] == "EDGE_FACE_V1"  # a model in a PATCH changes nothing
    assert out["createdAt"] == ent["createdAt"]
    assert parse_time(out["updatedAt"]) > parse_time(ent["updatedAt"])
    assert out["expiresAt"] == ent["expiresAt"]  # no ttl given: expiry unchanged
    assert srv.call("GET", f"{FACES}/{ent['uuid']}").json == r.json


def test_patch_ttl_restarts_from_now(srv: FacesServer, photos: dict) -> None:
    ent = new(srv, photos["obama"])
    assert ent["expiresAt"] == "3000-01-01T00:00:00Z"
    r = srv.call("PATCH", f"{FACES}/{ent['uuid']}", {"ttl": 600})
    expires = parse_time(r.json["expiresAt"])
    expected = parse_time(r.json["updatedAt"]) + timedelta(seconds=600)
    assert expires == expected
    r = srv.call("PATCH", f"{FACES}/{ent['uuid']}", {"ttl": -1})
    assert r.json["expiresAt"] == "3000-01-01T00:00:00Z"
    r = srv.call("PATCH", f"{FACES}/{ent['uuid']}", {"key": "", "metadata": []})
    assert (r.json["key"], r.json["metadata"]) == ("", [])


def test_patch_image_replaces_the_feature(srv: FacesServer, photos: dict) -> None:
    u = new(srv, photos["obama"], collection="reimg")["uuid"]
    probe = {"model": "EDGE_FACE_V1", "image": img(photos["jolie2"])}
    before = srv.call("POST", f"{FACES}/{u}/compare", probe).json["similarityScore"]
    r = srv.call("PATCH", f"{FACES}/{u}", {"image": img(photos["jolie"])})
    assert r.status == 200, r.raw
    after = srv.call("POST", f"{FACES}/{u}/compare", probe).json["similarityScore"]
    assert before < 0.9 <= after
    hits = srv.call(
        "POST", f"{FACES}/search", {**probe, "collection": "reimg", "threshold": 0.9}
    ).json
    assert [h["uuid"] for h in hits["entitiesFound"]] == [u]


PATCH_ERRORS: list[tuple[str, Any, int, str]] = [
    ("empty body object", {}, 110, ""),
    ("only model", {"model": "EDGE_FACE_V1"}, 110, ""),
    ("only unknown fields", {"class": "x"}, 110, ""),
    ("body not an object", [1], 111, ""),
    ("unknown model", {"model": "NOPE", "key": "x"}, 113, "model"),
    ("ttl -5", {"ttl": -5}, 112, "ttl"),
    (
        "metadata dup",
        {"metadata": [{"name": "a", "type": "string", "value": "x"}] * 2},
        116,
        "metadata[1].name",
    ),
    ("image no face", {"image": "dogs"}, 223, "image"),
    ("image gray", {"image": "gray"}, 216, "image.data"),
    ("image empty data", {"image": {"data": ""}}, 110, "image.data"),
    ("image not object", {"image": 5}, 111, "image"),
]


@pytest.mark.parametrize(
    ("case", "body", "code", "field"), PATCH_ERRORS, ids=[c[0] for c in PATCH_ERRORS]
)
def test_patch_errors_change_nothing(
    srv: FacesServer, photos: dict, case: str, body: Any, code: int, field: str
) -> None:
    ent = new(srv, photos["obama"], key="keep")
    vec = srv.store.get("inst-a", ent["uuid"], with_vector=True).vector
    changes = len(srv.store.changes_since(0, 100000))
    if isinstance(body, dict) and "image" in body:
        body = {**body}
        im = body["image"]
        body["image"] = img(photos[im]) if isinstance(im, str) else im
    assert_error(srv.call("PATCH", f"{FACES}/{ent['uuid']}", body), 400, code, field)
    assert srv.call("GET", f"{FACES}/{ent['uuid']}").json == {
        k: v for k, v in ent.items() if k != "entityUploaded"
    }
    assert np.array_equal(srv.store.get("inst-a", ent["uuid"], with_vector=True).vector, vec)
    assert len(srv.store.changes_since(0, 100000)) == changes


def test_patch_model_of_another_model_is_112(srv: FacesServer) -> None:
    # An entity of another local face model (as after a pack change), written in the real store.
    other = srv.store.create(
        instance="inst-a", model="OTHER_FACE_MODEL", model_name="OTHER_FACE_MODEL",
        collection="", key="", metadata=[], ttl=-1, vector=np.ones(64, np.float32),
    )  # fmt: skip
    r = srv.call("PATCH", f"{FACES}/{other.uuid}", {"model": "EDGE_FACE_V1", "key": "x"})
    assert_error(r, 400, 112, "model")
    assert srv.call("GET", f"{FACES}/{other.uuid}").json["key"] == ""
    # nor does search or compare of EDGE_FACE_V1 see it
    assert srv.call("DELETE", f"{FACES}/{other.uuid}").status == 204


# TTL and tenants ----------------------------------------------------------------------------------
def test_expired_entity_is_gone_for_every_call(srv: FacesServer, photos: dict) -> None:
    u = new(srv, photos["jolie"], collection="ttl", ttl=1)["uuid"]
    search = {"model": "EDGE_FACE_V1", "image": img(photos["jolie2"]), "collection": "ttl"}
    assert srv.call("POST", f"{FACES}/search", search).json["count"] == 1
    time.sleep(2.2)
    assert_error(srv.call("GET", f"{FACES}/{u}"), 404, 404)
    assert srv.call("GET", f"{FACES}?collection=ttl").json["total"] == 0
    assert srv.call("POST", f"{FACES}/search", search).json["count"] == 0
    compare = {"model": "EDGE_FACE_V1", "image": img(photos["jolie2"])}
    assert_error(srv.call("POST", f"{FACES}/{u}/compare", compare), 404, 404)
    assert_error(srv.call("PATCH", f"{FACES}/{u}", {"key": "x"}), 404, 404)
    assert_error(srv.call("DELETE", f"{FACES}/{u}"), 404, 404)


def test_instances_never_see_each_other(srv: FacesServer, photos: dict) -> None:
    a = new(srv, photos["obama"], api_key=KEY_A, collection="tenant")["uuid"]
    b = new(srv, photos["obama"], api_key=KEY_B, collection="tenant")["uuid"]
    for mine, theirs, key in ((a, b, KEY_A), (b, a, KEY_B)):
        assert srv.call("GET", f"{FACES}/{mine}", key=key).status == 200
        assert_error(srv.call("GET", f"{FACES}/{theirs}", key=key), 404, 404)
        page = srv.call("GET", f"{FACES}?collection=tenant", key=key).json
        assert [e["uuid"] for e in page["entities"]] == [mine]
        found = srv.call(
            "POST",
            f"{FACES}/search",
            {"model": "EDGE_FACE_V1", "image": img(photos["obama2"]), "collection": "tenant"},
            key=key,
        ).json
        assert [e["uuid"] for e in found["entitiesFound"]] == [mine]
        body = {"model": "EDGE_FACE_V1", "image": img(photos["obama2"])}
        assert_error(srv.call("POST", f"{FACES}/{theirs}/compare", body, key=key), 404, 404)
        assert_error(srv.call("PATCH", f"{FACES}/{theirs}", {"key": "x"}, key=key), 404, 404)
    assert_error(srv.call("DELETE", f"{FACES}/{a}", key=KEY_B), 404, 404)
    assert srv.call("GET", f"{FACES}/{a}", key=KEY_A).status == 200
