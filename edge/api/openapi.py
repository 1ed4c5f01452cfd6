"""OpenAPI 3.1 built from the live router plus per-handler documentation.

Route modules decorate their handlers with `@operation(...)`; the document is then built by
walking `app.router`, so a route that exists but is not documented is detectable (a test
asserts there is none), and the method and path in the document are always the real ones.
Errors every route can produce (auth, limits, admission, 500) are added automatically, so a
route only lists the codes specific to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field

from edge.errors import ERROR_CATALOGUE

H = TypeVar("H", bound=Callable[..., Any])

_DOC_ATTR = "__edge_openapi__"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ErrorBody(BaseModel):
    """Every non-2xx answer."""

    code: int = Field(description="contract error code (api.md §1)", examples=[111])
    name: str = Field(description="snake_case name of the code", examples=["unauthorized"])
    message: str = Field(description="what is wrong and where")


@dataclass(frozen=True)
class OperationDoc:
    method: str
    path: str
    summary: str
    responses: dict[int, type[BaseModel] | str]
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    auth: bool = True
    inference: bool = False
    tags: tuple[str, ...] = ()
    description: str = ""
    content_type: str = "application/json"  # of the 2xx answers

    def error_codes(self) -> list[int]:
        """Route-specific codes plus those the skeleton can answer for this route."""
        # 503 on every route: requests arriving while the server drains are refused
        codes = set(self.errors) | {414, 431, 500, 503}
        if self.auth:
            codes |= {401, 429}
        if self.request is not None or self.method in BODY_METHODS:
            codes |= {111, 413, 415}
        if self.inference:
            codes |= {429, 503}
        return sorted(codes)

    def error_statuses(self) -> list[int]:
        return sorted({ERROR_CATALOGUE[c][0] for c in self.error_codes()})


def operation(
    method: str,
    path: str,
    *,
    summary: str,
    responses: dict[int, type[BaseModel] | str],
    request: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    errors: Iterable[int] = (),
    auth: bool = True,
    inference: bool = False,
    tags: Iterable[str] = (),
    description: str = "",
    content_type: str = "application/json",
) -> Callable[[H], H]:
    """Decorator documenting a handler. `errors` are api.md codes (e.g. 110, 214, 404).

    `inference=True` for handlers that call `run_inference` (adds 429/503). The method and
    path actually served come from the router; `path` here is informative (a configurable
    path such as the liveness one still matches).
    """
    unknown = [c for c in errors if c not in ERROR_CATALOGUE]
    if unknown:
        raise ValueError(f"unknown error codes {unknown}")
    doc = OperationDoc(
        method=method.upper(),
        path=path,
        summary=summary,
        responses=dict(responses),
        request=request,
        query=query,
        errors=tuple(errors),
        auth=auth,
        inference=inference,
        tags=tuple(tags),
        description=description,
        content_type=content_type,
    )

    def deco(handler: H) -> H:
        docs = list(getattr(handler, _DOC_ATTR, ()))
        docs.append(doc)
        setattr(handler, _DOC_ATTR, docs)
        return handler

    return deco


@dataclass
class OpenApiRegistry:
    """Extra documentation for routes whose handler cannot carry a decorator."""

    title: str = "edge-face"
    version: str = "0.1.0"
    extra: dict[tuple[str, str], OperationDoc] = field(default_factory=dict)

    def add(self, doc: OperationDoc) -> None:
        self.extra[(doc.method, doc.path)] = doc


def doc_for(
    route: web.AbstractRoute, registry: OpenApiRegistry | None = None
) -> OperationDoc | None:
    """The documentation of one router entry (None when undocumented)."""
    path = route_path(route)
    if path is None:
        return None
    if registry is not None and (route.method, path) in registry.extra:
        return registry.extra[(route.method, path)]
    docs: list[OperationDoc] = list(getattr(route.handler, _DOC_ATTR, ()))
    same_method = [d for d in docs if d.method == route.method]
    exact = [d for d in same_method if d.path == path]
    if exact:
        return exact[0]
    return same_method[0] if len(same_method) == 1 else None


def route_path(route: web.AbstractRoute) -> str | None:
    if route.resource is None:
        return None
    return route.resource.canonical


def documented_routes(app: web.Application) -> Iterable[web.AbstractRoute]:
    """Every route a client can call (HEAD twins of GET routes excluded)."""
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        yield route


# Document building ------------------------------------------------------------------------
class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str = "serialization") -> dict[str, Any]:
        schema = model.model_json_schema(
            ref_template="#/components/schemas/{model}",
            mode=mode,  # type: ignore[arg-type]
            by_alias=True,
        )
        for name, sub in schema.pop("$defs", {}).items():
            self.components.setdefault(name, sub)
        self.components.setdefault(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}


def _path_params(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{([^}:]+)(?::[^}]*)?}", path)
    ]


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    out = []
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
        }
        if "description" in prop:
            param["description"] = prop["description"]
        out.append(param)
    return out


def _operation(doc: OperationDoc, path: str, schemas: _Schemas) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": doc.summary,
        "operationId": _operation_id(doc.method, path),
        "responses": {},
    }
    if doc.description:
        op["description"] = doc.description
    if doc.tags:
        op["tags"] = list(doc.tags)
    params = _path_params(path) + (_query_params(doc.query) if doc.query else [])
    if params:
        op["parameters"] = params
    if doc.request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(doc.request, "validation")}},
        }
    if not doc.auth:
        op["security"] = []
    for status, body in sorted(doc.responses.items()):
        if isinstance(body, str):
            op["responses"][str(status)] = {"description": body}
        else:
            op["responses"][str(status)] = {
                "description": body.__doc__.strip().splitlines()[0] if body.__doc__ else "OK",
                "content": {doc.content_type: {"schema": schemas.ref(body)}},
            }
    by_status: dict[int, list[int]] = {}
    for code in doc.error_codes():
        by_status.setdefault(ERROR_CATALOGUE[code][0], []).append(code)
    err_ref = schemas.ref(ErrorBody)
    for status, codes in sorted(by_status.items()):
        text = "; ".join(f"{c} {ERROR_CATALOGUE[c][1]}" for c in codes)
        op["responses"][str(status)] = {
            "description": text,
            "content": {"application/json": {"schema": err_ref}},
            "x-error-codes": codes,
        }
    return op


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[{}]", "", path).strip("/").replace("-", "/").split("/")
    return method.lower() + "".join(w[:1].upper() + w[1:] for w in words if w)


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every documented route of `app`."""
    from edge.api.state import OPENAPI

    registry = app.get(OPENAPI)
    schemas = _Schemas()
    schemas.ref(ErrorBody)
    paths: dict[str, dict[str, Any]] = {}
    for route in documented_routes(app):
        doc = doc_for(route, registry)
        path = route_path(route)
        if doc is None or path is None:
            continue
        paths.setdefault(path, {})[route.method.lower()] = _operation(doc, path, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": registry.title if registry else "edge-face",
            "version": registry.version if registry else "0.1.0",
            "description": "AnySee-compatible face recognition and liveness, served locally.",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "api-key",
                    "description": "also accepted as `x-api-key`",
                }
            },
        },
    }
