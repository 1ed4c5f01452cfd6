"""Parsing and documentation agree: bodies generated from the served OpenAPI document are
accepted, and a body that breaks exactly one constraint of the document is refused with the
code api.md gives that kind of constraint, naming the field as the client wrote it.

A few rules the schema states only in words are applied by the generator, each said once
here: model names come from GET /api/v1/models (they are configurable), a metadata `value`
matches its item's `type` and metadata names are unique, liveness indices count up from 0,
a PATCH names at least one field to change, and `image.area` is checked against the decoded
image (later, so its fields are left out of the one-constraint violations).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.api import schemas
from edge.api.app import create_app
from edge.api.openapi import build_document
from edge.config import Settings, load_settings
from edge.errors import EdgeError
from tests.support.servers import api_settings

SETTINGS: Settings = load_settings(None)
PARSERS: dict[str, Callable[[object, Settings], object]] = {
    "CreateFaceIn": schemas.parse_create,
    "PatchFaceIn": schemas.parse_patch,
    "SearchIn": schemas.parse_search,
    "ModelImageIn": schemas.parse_model_image,
    "CompareIn": schemas.parse_compare,
    "LivenessIn": schemas.parse_liveness,
}
UPDATABLE = ("collection", "key", "metadata", "ttl", "image")
INT32 = 2**31
DELETE = object()  # a violation that removes the field
Schema = dict[str, Any]
Loc = tuple[str | int, ...]


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> dict[str, Any]:
    """The OpenAPI document exactly as the product app serves it."""
    app = create_app(api_settings(tmp_path_factory.mktemp("doc"), model_dir), load_models=False)
    return build_document(app)


def request_schemas(doc: dict[str, Any]) -> dict[str, Schema]:
    """Request component name → schema, for every operation with a body."""
    out = {}
    for ops in doc["paths"].values():
        for op in ops.values():
            body = op.get("requestBody")
            if body is not None:
                name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                out[name] = doc["components"]["schemas"][name]
    return out


def resolve(schema: Schema, components: dict[str, Schema]) -> Schema:
    """Follow `$ref` and unwrap `X | None` (null is accepted as absent everywhere)."""
    while True:
        if "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
            continue
        alts = [a for a in schema.get("anyOf", []) if a.get("type") != "null"]
        if "anyOf" in schema and len(alts) == 1:
            schema = alts[0]
            continue
        return schema


def field_name(path: Loc) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


# Bodies from the document -------------------------------------------------------------------
METADATA_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=8),
    "integer": st.integers(-INT32, INT32 - 1),
    "boolean": st.booleans(),
    "float": st.floats(-3e38, 3e38, allow_nan=False),
}


class Generator:
    def __init__(self, components: dict[str, Schema], models: list[str]) -> None:
        self.components = components
        self.models = models

    def value(self, schema: Schema, name: str = "") -> st.SearchStrategy[Any]:
        s = resolve(schema, self.components)
        if name == "model":
            return st.sampled_from(self.models)
        if "enum" in s:
            return st.sampled_from(s["enum"])
        if "anyOf" in s:
            return st.one_of([self.value(a) for a in s["anyOf"]])
        kind = s.get("type")
        if kind == "integer":
            lo, hi = s.get("minimum", -INT32), s.get("maximum", INT32)
            ints = st.integers(lo, hi)
            if "not" in s:
                ints = ints.filter(lambda v: v != s["not"]["const"])
            return ints
        if kind == "number":
            return st.floats(s.get("minimum", -1e9), s.get("maximum", 1e9), allow_nan=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "string" and s.get("format") == "uuid":
            return st.uuids().map(str)
        if kind == "string":
            text = st.text(min_size=s.get("minLength", 0), max_size=min(s.get("maxLength", 12), 12))
            if "maxLength" in s:  # the documented limit itself is accepted
                text = text | st.text(min_size=s["maxLength"], max_size=s["maxLength"])
            if s.get("pattern") == r"\S":
                text = text.filter(lambda v: v.strip() != "")
            if "not" in s:
                text = text.filter(lambda v: v not in s["not"]["enum"])
            return text
        if kind == "array":
            return self.array(s)
        assert kind == "object", s
        return self.obj(s)

    def array(self, s: Schema) -> st.SearchStrategy[list[Any]]:
        item = resolve(s["items"], self.components)
        props = item.get("properties", {})
        lo, hi = s.get("minItems", 0), s.get("maxItems", 3)
        if "index" in props:  # indices count up from 0, the array in any order
            return st.lists(self.obj(item), min_size=lo, max_size=hi).flatmap(
                lambda items: st.permutations(list(range(len(items)))).map(
                    lambda order: [{**it, "index": i} for it, i in zip(items, order, strict=True)]
                )
            )
        if "name" in props:  # metadata names are unique
            return st.lists(
                self.obj(item), min_size=lo, max_size=hi, unique_by=lambda it: it["name"]
            )
        return st.lists(self.obj(item), min_size=lo, max_size=hi)

    def obj(self, s: Schema) -> st.SearchStrategy[dict[str, Any]]:
        props, required = s.get("properties", {}), set(s.get("required", []))
        if {"name", "type", "value"} <= set(props):  # a metadata item: value by its type
            return st.sampled_from(list(METADATA_VALUES)).flatmap(
                lambda t: st.fixed_dictionaries(
                    {
                        "name": self.value(props["name"]),
                        "type": st.just(t),
                        "value": METADATA_VALUES[t],
                    }
                )
            )
        return st.fixed_dictionaries(
            {k: self.value(v, k) for k, v in props.items() if k in required},
            optional={k: self.value(v, k) for k, v in props.items() if k not in required},
        )


def bodies(doc: dict[str, Any], name: str) -> st.SearchStrategy[dict[str, Any]]:
    models = list(schemas.model_names(SETTINGS, "liveness" if name == "LivenessIn" else "faces"))
    gen = Generator(doc["components"]["schemas"], models)
    out = gen.obj(request_schemas(doc)[name])
    if name == "PatchFaceIn":
        out = out.filter(lambda b: any(k in b for k in UPDATABLE))
    return out


# One-constraint violations ------------------------------------------------------------------
WRONG_TYPE: dict[str, list[Any]] = {
    "string": [5, True, [], {}],
    "integer": ["5", 1.5, True, []],
    "number": ["0.5", True, {}],
    "boolean": [1, "true", []],
    "object": [[], "x", 3],
    "array": [{}, "x", 3],
}


def violations(
    body: Any, schema: Schema, components: dict[str, Schema], path: Loc = ()
) -> Iterator[tuple[Loc, Any, int]]:
    """(where, the value that breaks one constraint there or DELETE, the code api.md gives)."""
    s = resolve(schema, components)
    if "area" in path:
        return  # checked against the decoded image (edge.imaging.area)
    kind = s.get("type")
    if kind in WRONG_TYPE and path:
        for wrong in WRONG_TYPE[kind]:
            yield path, wrong, 111
    if "enum" in s:
        yield path, "not-one-of-them", 112
    if kind in ("integer", "number"):
        step = 1 if kind == "integer" else 0.5
        if "minimum" in s:
            yield path, s["minimum"] - step, 112
        if "maximum" in s:
            yield path, s["maximum"] + step, 112
        if "not" in s:
            yield path, s["not"]["const"], 112
    if kind == "string":
        if "maxLength" in s:
            yield path, "x" * (s["maxLength"] + 1), 112
        if s.get("minLength"):
            yield path, "", 112
        if "not" in s:
            yield path, s["not"]["enum"][0], 112
        if s.get("pattern") == r"\S":
            yield path, " \n", 110  # api.md: image data missing or empty
    if kind == "array":
        if "maxItems" in s and body:
            yield path, [body[0]] * (s["maxItems"] + 1), 112
        if s.get("minItems"):
            yield path, [], 219  # liveness: fewer images than the model needs
        for i, item in enumerate(body):
            yield from violations(item, s["items"], components, (*path, i))
    if kind == "object":
        props = s.get("properties", {})
        for key in s.get("required", []):
            yield (*path, key), DELETE, 110
            yield (*path, key), None, 110  # null counts as absent
        for key, value in body.items():
            if key == "maxFaces" and "maxEntities" in body:
                continue  # ignored, unread, when maxEntities is given
            if key in props and not (key == "value" and "type" in body):
                yield from violations(value, props[key], components, (*path, key))


def broken(body: dict[str, Any], where: Loc, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    node: Any = out
    for part in where[:-1]:
        node = node[part]
    if value is DELETE:
        del node[where[-1]]
    else:
        node[where[-1]] = value
    return out


NAMES = list(PARSERS)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), name=st.sampled_from(NAMES))
def test_bodies_generated_from_the_document_are_accepted(
    document: dict[str, Any], data: st.DataObject, name: str
) -> None:
    body = data.draw(bodies(document, name))
    PARSERS[name](body, SETTINGS)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), name=st.sampled_from(NAMES))
def test_a_body_breaking_one_documented_constraint_gets_its_code(
    document: dict[str, Any], data: st.DataObject, name: str
) -> None:
    body = data.draw(bodies(document, name))
    components = document["components"]["schemas"]
    options = list(violations(body, request_schemas(document)[name], components))
    where, value, code = data.draw(st.sampled_from(options))
    with pytest.raises(EdgeError) as e:
        PARSERS[name](broken(body, where, value), SETTINGS)
    assert e.value.code == code, (where, value, e.value.message)
    assert e.value.message.startswith(field_name(where) + " "), (where, e.value.message)


# The list query: every parameter is a string on the wire ----------------------------------------
def query_schemas(doc: dict[str, Any]) -> dict[str, Schema]:
    op = doc["paths"]["/api/v1/entities/faces"]["get"]
    return {p["name"]: p["schema"] for p in op["parameters"] if p["in"] == "query"}


def query_violations(name: str, schema: Schema) -> Iterator[str]:
    """Values breaking one documented constraint of a query parameter (all are 112: a query
    string has no JSON types, so a non-number is a bad value too)."""
    s = resolve(schema, {})
    if s.get("type") == "integer":
        yield from ("abc", "1.5", "-1", str(s["minimum"] - 1), str(s["maximum"] + 1))
    if "maxLength" in s:
        yield "x" * (s["maxLength"] + 1)
    if s.get("format") == "uuid":
        yield from ("nope", "0190a5f000007000800000000000001")


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_list_queries_from_the_document_are_accepted_and_one_break_is_112(
    document: dict[str, Any], data: st.DataObject
) -> None:
    gen = Generator(document["components"]["schemas"], list(schemas.model_names(SETTINGS, "faces")))
    params = query_schemas(document)
    query = data.draw(
        st.fixed_dictionaries({}, optional={k: gen.value(s, k).map(str) for k, s in params.items()})
    )
    schemas.parse_list_query(query, SETTINGS)
    options = [(k, v) for k, s in params.items() for v in query_violations(k, s)]
    name, value = data.draw(st.sampled_from(options))
    with pytest.raises(EdgeError) as e:
        schemas.parse_list_query({**query, name: value}, SETTINGS)
    assert e.value.code == 112 and e.value.message.startswith(name + " "), e.value.message


def test_every_request_schema_has_a_parser(document: dict[str, Any]) -> None:
    assert set(request_schemas(document)) == set(PARSERS)


def test_every_documented_constraint_kind_is_exercised(document: dict[str, Any]) -> None:
    """`violations` knows every keyword the request schemas use: a new kind of constraint
    cannot be added to the document without a check that the parser enforces it."""
    components = document["components"]["schemas"]
    used: set[str] = set()

    def walk(node: Schema) -> None:
        node = resolve(node, components)
        used.update(node)
        for sub in [*node.get("properties", {}).values(), *node.get("anyOf", [])]:
            walk(sub)
        if "items" in node:
            walk(node["items"])

    for schema in [*request_schemas(document).values(), *query_schemas(document).values()]:
        walk(schema)
    known = {"type", "enum", "minimum", "maximum", "not", "maxLength", "minLength", "pattern"}
    known |= {"maxItems", "minItems", "items", "properties", "required", "anyOf", "format"}
    words = {"title", "description", "default"}
    assert used - known - words == set()
