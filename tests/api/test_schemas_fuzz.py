"""Property tests of the request parsers: any JSON body gives a parsed request or a contract
error naming a field, never another exception (api.md §1)."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from hostile_helpers import RawResp, assert_contract, exchange, request_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.api import schemas
from edge.api.middleware import MAX_MESSAGE, safe_message
from edge.config import Settings, load_settings
from edge.errors import EdgeError

SETTINGS: Settings = load_settings(None)
BODY_ERRORS = {110, 111, 112, 113, 116, 219}
FIELDS = [
    "model", "image", "imageOne", "imageTwo", "images", "collection", "key", "metadata",
    "ttl", "maxEntities", "maxFaces", "threshold", "data", "area", "autoRotate",
    "returnDetails", "index", "type", "name", "value", "top", "left", "width", "height",
]  # fmt: skip
MODELS = ["EDGE_FACE_V1", "JCV_FACE_K25000", "EDGE_LIVENESS_V1", "JCV_2D_I25000", "nope"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*MODELS, "RGB", "string", "integer", "float", "boolean", "", "x" * 300]),
    st.text(max_size=12),
    st.text(st.characters(blacklist_categories=()), max_size=6),  # lone surrogates too
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6),
    ),
    max_leaves=25,
)
bodies = st.one_of(json_values, st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8))

PARSERS = [
    schemas.parse_create,
    schemas.parse_patch,
    schemas.parse_search,
    schemas.parse_model_image,
    schemas.parse_compare,
    schemas.parse_liveness,
]


def _check(parser: Any, body: object) -> None:
    try:
        parser(body, SETTINGS)
    except EdgeError as e:
        assert e.code in BODY_ERRORS, (parser.__name__, e.code, e.message)
        assert e.message and len(e.message) < 300
        assert e.body() == {"code": e.code, "name": e.name, "message": e.message}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_every_parser_returns_or_raises_a_contract_error(body: object) -> None:
    for parser in PARSERS:
        _check(parser, body)


@settings(max_examples=200, deadline=None)
@given(
    limit=st.one_of(st.none(), st.text(max_size=8), st.integers().map(str)),
    after=st.one_of(st.none(), st.text(max_size=40)),
)
def test_query_parsers_only_raise_112(limit: str | None, after: str | None) -> None:
    query = {k: v for k, v in (("limit", limit), ("after", after)) if v is not None}
    for fn in (schemas.parse_limit, schemas.parse_after):
        try:
            fn(query)
        except EdgeError as e:
            assert e.code == 112, (fn.__name__, e.code)


@settings(max_examples=150, deadline=None)
@given(
    metadata=st.lists(
        st.fixed_dictionaries(
            {"name": st.one_of(st.sampled_from(["a", "b", "key", "id", ""]), st.integers())},
            optional={
                "type": st.sampled_from(["string", "integer", "boolean", "float", "date", 3]),
                "value": scalars,
            },
        ),
        max_size=12,
    )
)
def test_metadata_is_validated_whole(metadata: list[dict[str, Any]]) -> None:
    """A metadata list is either accepted as a whole (≤ 10 typed, unique, non-reserved items)
    or refused with 110/111/112/116; accepted items keep their declared types."""
    body = {"model": "EDGE_FACE_V1", "image": {"data": "x"}, "metadata": metadata}
    try:
        req = schemas.parse_create(body, SETTINGS)
    except EdgeError as e:
        assert e.code in {110, 111, 112, 116}, e.code
        assert "metadata" in e.message
        return
    items = req.metadata or []
    assert len(items) <= 10
    names = [m["name"] for m in items]
    assert len(set(names)) == len(names)
    assert not set(names) & {"id", "instanceId", "model", "collection", "key"}
    for m in items:
        expected = {"string": str, "integer": int, "boolean": bool, "float": float}[m["type"]]
        assert isinstance(m["value"], expected)


ROUTES = [
    ("POST", "/api/v1/entities/faces"),
    ("POST", "/api/v1/entities/faces/search"),
    ("POST", "/api/v1/entities/faces/detect"),
    ("POST", "/api/v1/entities/faces/compare"),
    ("POST", "/api/v1/liveness"),
    ("PATCH", "/api/v1/entities/faces/01a204f2-3c9a-7754-b81f-fe2ed969598e"),
]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, route=st.sampled_from(ROUTES))
def test_server_answers_random_bodies_with_contract_errors(
    srv: Any, body: object, route: tuple[str, str]
) -> None:
    """Over real HTTP: a contract error body (or success), nothing written, still serving."""
    before = srv.count()
    r = srv.call(route[0], route[1], body)
    assert r.status in (200, 201, 400, 404), (r.status, r.raw[:200])
    assert "x-request-id" in {k.lower() for k in r.headers}
    if r.status >= 400:
        assert set(r.json) == {"code", "name", "message"}
        assert r.json["code"] in BODY_ERRORS | {214, 404}
    assert srv.count() == before
    assert srv.call("GET", "/healthz").status == 200


# Hostile bodies over real HTTP: deep nesting, compressed bodies, lone surrogates ----------------
def _raw(srv: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> RawResp:
    return exchange(srv.port, request_bytes(method, path, body, headers=headers))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    depth=st.one_of(st.integers(33, 1200), st.integers(1200, 60_000)),
    opener=st.sampled_from(["[", '{"a":', '{"":', "[1,"]),
    inside=st.sampled_from([None, "image", "metadata", "images", "model"]),
    route=st.sampled_from(ROUTES),
)
def test_deeply_nested_json_is_always_111(
    srv: Any, depth: int, opener: str, inside: str | None, route: tuple[str, str]
) -> None:
    """Any nesting past the limit, whole body or one field, is 111: never a RecursionError."""
    closer = "]" if opener.startswith("[") else "}"
    deep = (opener * depth + "0" + closer * depth).encode()
    body = deep if inside is None else b'{"model": "M", "%s": %s}' % (inside.encode(), deep)
    before = srv.count()
    assert_contract(_raw(srv, *route, body, {}), 400, 111)
    assert srv.count() == before
    assert srv.call("GET", "/healthz").status == 200


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    coding=st.one_of(
        st.sampled_from(["gzip", "deflate", "br", "compress", "zstd", "x-gzip", "GZip"]),
        st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,24}", fullmatch=True).filter(
            lambda c: c.lower() != "identity"
        ),
    ),
    identity_first=st.booleans(),
    body=bodies,
    route=st.sampled_from(ROUTES),
)
def test_any_content_encoding_is_415(
    srv: Any, coding: str, identity_first: bool, body: object, route: tuple[str, str]
) -> None:
    """A body with any coding but identity is refused before it is read, never decoded."""
    value = f"identity, {coding}" if identity_first else coding
    raw = json.dumps(body).encode()
    before = srv.count()
    assert_contract(_raw(srv, *route, raw, {"Content-Encoding": value}), 415, 415)
    assert srv.count() == before
    assert srv.call("GET", "/healthz").status == 200


surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TEXT_FIELDS = [
    ({"collection": "{}"}, "collection"),
    ({"key": "{}"}, "key"),
    ({"metadata": [{"name": "{}", "type": "string", "value": "v"}]}, "metadata[0].name"),
    ({"metadata": [{"name": "n", "type": "string", "value": "{}"}]}, "metadata[0].value"),
]


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.text(max_size=5),
    bad=surrogates,
    suffix=st.text(max_size=5),
    where=st.sampled_from(TEXT_FIELDS),
    parser=st.sampled_from([schemas.parse_create, schemas.parse_patch]),
)
def test_a_lone_surrogate_is_112_naming_its_field(
    prefix: str, bad: str, suffix: str, where: tuple[dict[str, Any], str], parser: Any
) -> None:
    text = prefix + bad + suffix
    fields = json.loads(json.dumps(where[0]).replace("{}", json.dumps(text)[1:-1]))
    body = {"model": "EDGE_FACE_V1", "image": {"data": "x"}, **fields}
    try:
        parser(body, SETTINGS)
    except EdgeError as e:
        assert e.code == 112, (e.code, e.message)
        assert e.message.startswith(where[1] + " "), e.message
        return
    raise AssertionError(f"{where[1]}={text!r} was accepted")


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=()), max_size=400))
def test_echoes_are_short_and_free_of_control_characters(text: str) -> None:
    """What a message quotes of client text: bounded, no raw control/format/surrogate
    characters (they come out as escapes), and a short clean text unchanged."""
    out = schemas.excerpt(text)
    assert len(out) <= schemas.ECHO_CHARS * 10 + 1
    bad = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
    assert not [c for c in out if unicodedata.category(c) in bad], out
    clean = not [c for c in text if unicodedata.category(c) in bad]
    if clean and len(text) <= schemas.ECHO_CHARS:
        assert out == text
    msg = safe_message("x " + text * 3)
    assert len(msg) <= MAX_MESSAGE
    assert not [c for c in msg if unicodedata.category(c) in {"Cc", "Cs", "Zl", "Zp"}], msg
    msg.encode("utf-8")  # always encodable in the JSON answer
