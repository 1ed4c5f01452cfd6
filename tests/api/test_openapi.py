"""The OpenAPI document matches the router: every route, method and error status."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from edge.api import schemas
from edge.api.app import create_app
from edge.api.docs import DOCS_HTML
from edge.api.openapi import (
    FIELD_DOCS,
    IMAGE_PLACEHOLDER,
    _Schemas,
    build_document,
    doc_for,
    documented_routes,
    example_bodies,
    route_path,
    sketch,
)
from edge.api.ops import Health, Readiness
from edge.api.state import OPENAPI
from tests.support.servers import Gate, Server, api_settings


@pytest.fixture(scope="module")
def product_app(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Any:
    """The product app exactly as served (no test-only routes)."""
    settings = api_settings(tmp_path_factory.mktemp("openapi"), model_dir)
    return create_app(settings, load_models=False)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for v in node.values():
            out.extend(_refs(v))
        return out
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_route_is_documented_with_its_method(product_app: Any) -> None:
    doc = build_document(product_app)
    missing = []
    for route in documented_routes(product_app):
        path = route_path(route)
        if path is None or route.method.lower() not in doc["paths"].get(path, {}):
            missing.append(f"{route.method} {path}")
    assert not missing, f"undocumented routes: {missing}"
    served = {(r.method.lower(), route_path(r)) for r in documented_routes(product_app)}
    listed = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert listed == served  # nothing documented that is not served


def test_every_error_status_a_route_can_return_is_documented(product_app: Any) -> None:
    doc = build_document(product_app)
    for route in documented_routes(product_app):
        op_doc = doc_for(route, product_app[OPENAPI])
        assert op_doc is not None
        op = doc["paths"][route_path(route)][route.method.lower()]
        statuses = {int(s) for s in op["responses"]}
        # what the skeleton itself can answer on any route
        expected = {414, 431, 500, 503}  # 503: refused while draining
        if op_doc.auth:
            expected |= {401, 429}
        if route.method in ("POST", "PUT", "PATCH"):
            expected |= {400, 413, 415}
        if op_doc.inference:
            expected |= {429, 503}
        expected |= set(op_doc.error_statuses())
        assert expected <= statuses, (route.method, route_path(route), expected - statuses)
        assert any(200 <= s < 300 for s in statuses)
        for s, resp in op["responses"].items():
            if int(s) >= 400:
                schema = resp["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}
                assert resp["x-error-codes"]


def test_document_is_consistent(product_app: Any) -> None:
    doc = build_document(product_app)
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref
    assert doc["components"]["securitySchemes"]["apiKey"]["name"] == "api-key"
    public = {"/healthz", "/readyz", "/api/v1/openapi.json", "/docs", "/metrics"}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert (op.get("security") == []) == (path in public), path
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_served_document_and_ops_responses_match_their_schemas(
    warm_server: tuple[Server, Gate],
) -> None:
    srv, _ = warm_server
    served = srv.call("GET", "/api/v1/openapi.json", key=None).json
    assert "/test/echo" not in served["paths"]  # undocumented test routes stay out
    assert {"/healthz", "/readyz", "/metrics", "/docs"} <= set(served["paths"])
    Health.model_validate(srv.call("GET", "/healthz", key=None).json, strict=True)
    Readiness.model_validate(srv.call("GET", "/readyz", key=None).json, strict=True)


# Descriptions and try-it examples (what /docs shows) -----------------------------------------
def _resolve(node: Any, schemas: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """`node` with each $ref replaced by its component, as the docs page shows it."""
    if isinstance(node, list):
        return [_resolve(v, schemas, seen) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        assert name not in seen, f"recursive schema {name}"
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**_resolve(schemas[name], schemas, (*seen, name)), **rest}
    return {k: _resolve(v, schemas, seen) for k, v in node.items()}


def _undescribed(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the properties (nested ones too) that carry no description."""
    if "anyOf" in schema:  # `X | None`
        out = []
        for alt in schema["anyOf"]:
            out += _undescribed(alt, prefix)
        return out
    if schema.get("type") == "array":
        return _undescribed(schema.get("items", {}), prefix + "[].")
    out = []
    for name, prop in schema.get("properties", {}).items():
        words = prop.get("description") or next(
            (a.get("description") for a in prop.get("anyOf", []) if a.get("description")), None
        )
        if not words:
            out.append(prefix + name)
        out += _undescribed(prop, f"{prefix}{name}.")
    return out


def _image_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Key paths of the image `data` fields of a body, as the page's file pickers find them."""
    out: list[tuple[Any, ...]] = []
    if isinstance(node, list):
        items: Any = enumerate(node)
    elif isinstance(node, dict):
        items = node.items()
    else:
        return out
    for k, v in items:
        if k == "data" and isinstance(v, str):
            out.append((*path, k))
        else:
            out += _image_paths(v, (*path, k))
    return out


def _body_ops(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if "requestBody" in op
    ]


def test_every_request_field_and_query_parameter_is_described(product_app: Any) -> None:
    doc = build_document(product_app)
    schemas = doc["components"]["schemas"]
    missing = []
    for path, method, op in _body_ops(doc):
        schema = _resolve(op["requestBody"]["content"]["application/json"]["schema"], schemas)
        assert "$ref" not in json.dumps(schema)
        missing += [f"{method} {path}: {f}" for f in _undescribed(schema)]
        missing += [
            f"{method} {path}: ?{p['name']}"
            for p in op.get("parameters", [])
            if p["in"] == "query" and not p.get("description")
        ]
    list_params = doc["paths"]["/api/v1/entities/faces"]["get"]["parameters"]
    missing += [f"GET list: ?{p['name']}" for p in list_params if not p.get("description")]
    assert not missing, missing
    search = schemas["SearchIn"]["properties"]
    assert "similarityScore" in search["threshold"]["description"]
    assert "1…1000" in search["maxEntities"]["description"]


def test_field_docs_name_only_real_fields(product_app: Any) -> None:
    """A renamed field cannot leave its words behind unnoticed."""
    schemas = build_document(product_app)["components"]["schemas"]
    stale = [
        f"{name}.{field}"
        for name, fields in FIELD_DOCS.items()
        for field in fields
        if field not in schemas.get(name, {}).get("properties", {})
    ]
    assert not stale, stale


def test_each_request_body_has_an_example_of_its_schema(tmp_path: Path, model_dir: Path) -> None:
    """The examples use the configured model names and fit the request model's types."""
    settings = api_settings(tmp_path, model_dir)
    settings = settings.model_copy(
        update={"names": settings.names.model_copy(update={"face": "SITE_FACE"})}
    )
    app = create_app(settings, load_models=False)
    doc = build_document(app)
    ops = _body_ops(doc)
    assert len(ops) >= 7  # create, patch, search, detect, compare, entity compare, liveness
    hand_written = example_bodies("SITE_FACE", settings.names.liveness)
    assert set(hand_written) <= set(doc["components"]["schemas"])
    for path, method, op in ops:
        example = op["requestBody"]["content"]["application/json"]["example"]
        route = next(
            r
            for r in documented_routes(app)
            if route_path(r) == path and r.method.lower() == method
        )
        op_doc = doc_for(route, app[OPENAPI])
        assert op_doc is not None and op_doc.request is not None
        op_doc.request.model_validate(example)  # right names and JSON types
        assert example.get("model") in (None, "SITE_FACE", settings.names.liveness), path
        for p in _image_paths(example):
            node: Any = example
            for k in p:
                node = node[k]
            assert node == IMAGE_PLACEHOLDER, (path, p)
        if method == "post":
            assert _image_paths(example), f"{path}: no image field for the file picker"


def test_every_example_with_a_real_photo_is_accepted_by_the_service(
    warm_server: tuple[Server, Gate], testdata: Path
) -> None:
    """What the docs page sends after a photo is picked works as it stands."""
    srv, _ = warm_server
    doc = srv.call("GET", "/api/v1/openapi.json", key=None).json
    photo = base64.b64encode(
        (testdata / "faces_by_identity" / "guido_van_rossum" / "1.jpg").read_bytes()
    ).decode("ascii")
    uuid = ""
    hand_written = {f"#/components/schemas/{name}" for name in example_bodies("", "")}
    ops = [
        o
        for o in _body_ops(doc)
        if o[2]["requestBody"]["content"]["application/json"]["schema"]["$ref"] in hand_written
    ]
    assert len(ops) == 7  # create, patch, search, detect, compare, entity compare, liveness
    # creation first: the uuid is then used where a path asks for one
    for path, method, op in sorted(ops, key=lambda o: o[0].count("{")):
        body = op["requestBody"]["content"]["application/json"]["example"]
        for p in _image_paths(body):
            node: Any = body
            for k in p[:-1]:
                node = node[k]
            node[p[-1]] = photo
        r = srv.call(method.upper(), path.replace("{uuid}", uuid), body)
        success = min(s for s in op["responses"] if s.startswith("2"))
        assert str(r.status) == success, (method, path, r.status, r.raw[:300])
        if path == "/api/v1/entities/faces" and method == "post":
            uuid = r.json["uuid"]
    assert uuid


def test_docs_page_policy_pins_its_own_script_and_style_and_origin() -> None:
    """The CSP lets the browser run exactly the inlined code and talk to this box only."""
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', DOCS_HTML)
    assert csp is not None
    rules = dict(r.strip().split(" ", 1) for r in csp.group(1).split(";"))
    assert rules["default-src"] == "'none'" and rules["connect-src"] == "'self'"
    for tag in ("style", "script"):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", DOCS_HTML, re.S)
        assert body is not None
        digest = base64.b64encode(hashlib.sha256(body.group(1).encode()).digest()).decode()
        assert rules[f"{tag}-src"] == f"'sha256-{digest}'"
    assert "/*DOCS_" not in DOCS_HTML  # every marker was filled


def test_a_body_without_a_hand_written_example_gets_a_valid_sketch() -> None:
    """A route added later still shows a body to try (required fields, image placeholder)."""
    reg = _Schemas()
    for model in (
        schemas.CreateFaceIn,
        schemas.SearchIn,
        schemas.CompareIn,
        schemas.LivenessIn,
        schemas.ModelImageIn,
    ):
        ref = reg.ref(model, "validation")
        example = sketch(ref, reg.components, "SITE_FACE")
        model.model_validate(example)
        assert example["model"] == "SITE_FACE"
        assert _image_paths(example), model.__name__
        for p in _image_paths(example):
            node: Any = example
            for k in p:
                node = node[k]
            assert node == IMAGE_PLACEHOLDER
