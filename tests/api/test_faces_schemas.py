"""Request parsing maps every bad field to the contract's exact code and names the field."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict

from edge.api import schemas
from edge.config import Settings, load_settings
from edge.errors import EdgeError

IMG = {"data": "aGVsbG8="}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(None)


def err(fn: Any, *args: Any) -> EdgeError:
    with pytest.raises(EdgeError) as ei:
        fn(*args)
    return ei.value


def create(**body: Any) -> dict[str, Any]:
    return {"model": "EDGE_FACE_V1", "image": dict(IMG), **body}


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ([], 111, "body"),
        ("x", 111, "body"),
        ({"image": IMG}, 110, "model"),
        ({"model": None, "image": IMG}, 110, "model"),
        ({"model": 5, "image": IMG}, 111, "model"),
        ({"model": "NOPE", "image": IMG}, 113, "model"),
        ({"model": "EDGE_FACE_V1"}, 110, "image"),
        ({"model": "EDGE_FACE_V1", "image": "abc"}, 111, "image"),
        ({"model": "EDGE_FACE_V1", "image": {}}, 110, "image.data"),
        ({"model": "EDGE_FACE_V1", "image": {"data": ""}}, 110, "image.data"),
        ({"model": "EDGE_FACE_V1", "image": {"data": "  \n"}}, 110, "image.data"),
        ({"model": "EDGE_FACE_V1", "image": {"data": 12}}, 111, "image.data"),
        (create(image={**IMG, "autoRotate": "yes"}), 111, "image.autoRotate"),
        (create(image={**IMG, "area": [1, 2]}), 111, "image.area"),
        (create(image={**IMG, "returnDetails": True}), 111, "image.returnDetails"),
        (
            create(image={**IMG, "returnDetails": {"angle": 1}}),
            111,
            "image.returnDetails.angle",
        ),
        (create(collection=3), 111, "collection"),
        (create(key="k" * 257), 112, "key"),
        (create(ttl=0), 112, "ttl"),
        (create(ttl=-2), 112, "ttl"),
        (create(ttl=True), 111, "ttl"),
        (create(ttl=1.5), 111, "ttl"),
        (create(ttl="60"), 111, "ttl"),
        (create(ttl=2**31), 112, "ttl"),
        (create(metadata={}), 111, "metadata"),
        (create(metadata=["x"]), 111, "metadata[0]"),
    ],
)
def test_create_errors(settings: Settings, body: Any, code: int, field: str) -> None:
    e = err(schemas.parse_create, body, settings)
    assert e.code == code
    assert e.message.startswith(field + " "), e.message


def md(name: str, typ: str, value: Any) -> dict[str, Any]:
    return {"name": name, "type": typ, "value": value}


@pytest.mark.parametrize(
    ("items", "code", "field"),
    [
        ([md(f"n{i}", "string", "v") for i in range(11)], 112, "metadata"),
        ([md("a", "string", "v"), {"type": "string", "value": "v"}], 110, "metadata[1].name"),
        ([md("a", "string", "v"), md(7, "string", "v")], 111, "metadata[1].name"),
        ([md("", "string", "v")], 112, "metadata[0].name"),
        ([md("ok", "string", "v"), md("createdAt", "string", "v")], 112, "metadata[1].name"),
        ([{"name": "a", "value": 1}], 110, "metadata[0].type"),
        ([md("a", "int", 1)], 112, "metadata[0].type"),
        ([md("a", 1, 1)], 111, "metadata[0].type"),
        ([{"name": "a", "type": "string"}], 110, "metadata[0].value"),
        (
            [md("a", "string", "x"), md("b", "string", "y"), md("c", "integer", "3")],
            112,
            "metadata[2].value",
        ),
        ([md("a", "integer", 1.0)], 112, "metadata[0].value"),
        ([md("a", "integer", True)], 112, "metadata[0].value"),
        ([md("a", "integer", 2**31)], 112, "metadata[0].value"),
        ([md("a", "integer", -(2**31) - 1)], 112, "metadata[0].value"),
        ([md("a", "float", "1.0")], 112, "metadata[0].value"),
        ([md("a", "float", float("nan"))], 112, "metadata[0].value"),
        ([md("a", "float", float("inf"))], 112, "metadata[0].value"),
        ([md("a", "float", 1e39)], 112, "metadata[0].value"),
        ([md("a", "float", False)], 112, "metadata[0].value"),
        ([md("a", "boolean", 1)], 112, "metadata[0].value"),
        ([md("a", "string", 1)], 112, "metadata[0].value"),
        ([md("a", "string", "x"), md("a", "integer", 1)], 116, "metadata[1].name"),
    ],
)
def test_metadata_errors(settings: Settings, items: list[Any], code: int, field: str) -> None:
    e = err(schemas.parse_create, create(metadata=items), settings)
    assert (e.code, e.message.split(" ")[0]) == (code, field), e.message


def test_metadata_accepts_every_type_at_its_limits(settings: Settings) -> None:
    items = [
        md("s", "string", ""),
        md("i", "integer", 2**31 - 1),
        md("j", "integer", -(2**31)),
        md("b", "boolean", False),
        md("f", "float", 3.4e38),
        md("g", "float", 2),
        *[md(f"x{i}", "string", "v") for i in range(4)],
    ]
    req = schemas.parse_create(create(metadata=items), settings)
    assert len(req.metadata) == 10
    assert req.metadata[1]["value"] == 2**31 - 1
    assert req.metadata[5] == {"name": "g", "type": "float", "value": 2.0}


def test_create_defaults_alias_and_unknown_fields(settings: Settings) -> None:
    req = schemas.parse_create(
        {"model": "JCV_FACE_K25000", "image": dict(IMG), "class": "x", "extra": {"a": 1}},
        settings,
    )
    assert req.model.given == "JCV_FACE_K25000"
    assert req.model.canonical == "EDGE_FACE_V1"
    assert (req.collection, req.key, req.metadata, req.ttl) == ("", "", [], -1)
    assert not req.image.flags.any


def test_aliases_can_be_switched_off() -> None:
    s = load_settings(None, names={"aliases_enabled": False})
    assert err(schemas.parse_create, create(model="JCV_FACE_K25000"), s).code == 113
    assert err(schemas.parse_create, create(model="EDGE_LIVENESS_V1"), s).code == 113


def test_return_details_flags(settings: Settings) -> None:
    req = schemas.parse_create(
        create(image={**IMG, "returnDetails": {"angle": True, "quality": False, "x": 1}}),
        settings,
    )
    f = req.image.flags
    assert (f.position, f.angle, f.landmarks, f.quality, f.attributes) == (
        False,
        True,
        False,
        False,
        False,
    )


def test_patch_needs_an_updatable_field(settings: Settings) -> None:
    for body in ({}, {"model": "EDGE_FACE_V1"}, {"class": 1}, {"collection": None}):
        e = err(schemas.parse_patch, body, settings)
        assert e.code == 110
    assert err(schemas.parse_patch, {"model": "X", "key": "k"}, settings).code == 113
    req = schemas.parse_patch({"ttl": 5}, settings)
    assert req.ttl == 5 and req.collection is None and req.image is None


@pytest.mark.parametrize(
    ("extra", "code", "field"),
    [
        ({"maxEntities": 0}, 112, "maxEntities"),
        ({"maxEntities": 1001}, 112, "maxEntities"),
        ({"maxEntities": "5"}, 111, "maxEntities"),
        ({"maxFaces": 0}, 112, "maxFaces"),
        ({"threshold": 1.01}, 112, "threshold"),
        ({"threshold": -0.1}, 112, "threshold"),
        ({"threshold": "0.5"}, 111, "threshold"),
        ({"threshold": True}, 111, "threshold"),
        ({"threshold": float("nan")}, 112, "threshold"),
    ],
)
def test_search_errors(settings: Settings, extra: dict[str, Any], code: int, field: str) -> None:
    e = err(schemas.parse_search, create(**extra), settings)
    assert (e.code, e.message.split(" ")[0]) == (code, field), e.message


def test_search_defaults_and_max_faces_alias(settings: Settings) -> None:
    req = schemas.parse_search(create(), settings)
    assert (req.max_entities, req.threshold) == (10, 0.0)
    assert schemas.parse_search(create(maxFaces=3), settings).max_entities == 3
    assert schemas.parse_search(create(maxFaces=3, maxEntities=4), settings).max_entities == 4
    assert schemas.parse_search(create(threshold=1), settings).threshold == 1.0


def test_compare_names_the_image(settings: Settings) -> None:
    e = err(schemas.parse_compare, {"model": "EDGE_FACE_V1", "imageOne": IMG}, settings)
    assert (e.code, e.message.split(" ")[0]) == (110, "imageTwo")
    e = err(
        schemas.parse_compare,
        {"model": "EDGE_FACE_V1", "imageOne": {"data": ""}, "imageTwo": IMG},
        settings,
    )
    assert (e.code, e.message.split(" ")[0]) == (110, "imageOne.data")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"limit": "abc"}, 112),
        ({"limit": "0"}, 112),
        ({"limit": "1001"}, 112),
        ({"limit": "-1"}, 112),
        ({"limit": "5_0"}, 112),
        ({"limit": ""}, 112),
    ],
)
def test_limit_errors(settings: Settings, query: dict[str, str], code: int) -> None:
    e = err(schemas.parse_list_query, MultiDict(query), settings)
    assert e.code == code and e.message.startswith("limit ")


def test_query_values(settings: Settings) -> None:
    def parse(**query: str) -> schemas.ListRequest:
        return schemas.parse_list_query(MultiDict(query), settings)

    assert parse() == schemas.ListRequest(None, None, None, 20, "")
    assert parse(limit="1000").limit == 1000
    assert err(schemas.parse_list_query, MultiDict({"after": "nope"}), settings).code == 112
    u = "0190A5F0-0000-7000-8000-000000000001"
    assert parse(after=u).after == u.lower()
    assert parse(model="JCV_FACE_K25000", collection="", key="k").model == "EDGE_FACE_V1"
    assert parse(collection="", key="").collection is None
    assert err(schemas.parse_list_query, MultiDict({"model": "X"}), settings).code == 113
    first = schemas.parse_list_query(MultiDict([("limit", "3"), ("limit", "x")]), settings)
    assert first.limit == 3  # a repeated parameter counts once: the first
    assert schemas.parse_uuid("0190a5f000007000800000000000001") is None


LIVE = {"index": 0, "type": "RGB", "data": "aGVsbG8="}


def live(*images: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "EDGE_LIVENESS_V1", "images": list(images), **extra}


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"images": [LIVE]}, 110, "model"),
        (live(LIVE, model="EDGE_FACE_V1"), 113, "model"),
        ({"model": "EDGE_LIVENESS_V1"}, 110, "images"),
        ({"model": "EDGE_LIVENESS_V1", "images": {}}, 111, "images"),
        (live(), 219, "images"),
        (live(1), 111, "images[0]"),
        (live({"type": "RGB", "data": "x"}), 110, "images[0].index"),
        (live({**LIVE, "index": "0"}), 111, "images[0].index"),
        (live({**LIVE, "index": -1}), 112, "images[0].index"),
        (live({**LIVE, "index": 1}), 112, "images[0].index"),
        (live(LIVE, {**LIVE, "index": 2}), 112, "images[1].index"),
        (live(LIVE, {**LIVE, "index": 0}), 116, "images[1].index"),
        (live({"index": 0, "data": "x"}), 110, "images[0].type"),
        (live({**LIVE, "type": "IR"}), 112, "images[0].type"),
        (live({**LIVE, "type": 3}), 111, "images[0].type"),
        (live({"index": 0, "type": "RGB"}), 110, "images[0].data"),
        (live({**LIVE, "data": " "}), 110, "images[0].data"),
        (live(LIVE, {"index": 1, "type": "RGB", "data": ""}), 110, "images[1].data"),
        (live(LIVE, {**LIVE, "index": 1, "type": "NIR"}), 112, "images[1].type"),
        (live({**LIVE, "autoRotate": 1}), 111, "images[0].autoRotate"),
    ],
)
def test_liveness_errors(settings: Settings, body: Any, code: int, field: str) -> None:
    e = err(schemas.parse_liveness, body, settings)
    assert (e.code, e.message.split(" ")[0]) == (code, field), e.message


def test_liveness_orders_by_index_and_accepts_alias(settings: Settings) -> None:
    body = live(
        {**LIVE, "index": 2}, {**LIVE, "data": "AAAA"}, {**LIVE, "index": 1}, model="JCV_2D_I25000"
    )
    req = schemas.parse_liveness(body, settings)
    assert [i.index for i in req.images] == [0, 1, 2]
    assert req.images[0].data == "AAAA"
    assert req.model.given == "JCV_2D_I25000" and req.model.canonical == "EDGE_LIVENESS_V1"
