"""The OpenAPI document matches the router: every route, method and error status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from skeleton_helpers import Gate, Server, api_settings

from edge.api.app import create_app
from edge.api.openapi import build_document, doc_for, documented_routes, route_path
from edge.api.ops import Health, Readiness
from edge.api.state import OPENAPI


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
