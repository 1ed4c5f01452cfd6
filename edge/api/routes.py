"""Each route declared once: method, path, handler and OpenAPI operation together.

Like aiohttp's `RouteTableDef`, a route module collects its handlers in a table with a
decorator (`@routes.route("POST", PATH, summary=...)`); unlike it, each entry also carries the
operation's documentation, so the router and the OpenAPI document are filled from the same
declaration and cannot disagree. Adding a table to an app records every route it serves in
an `OpenApiRegistry`, under the path actually served (the liveness path is configurable).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from edge.config import Settings
from edge.errors import ERROR_CATALOGUE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class OperationDoc:
    """What the OpenAPI document says of one route. `errors` are api.md codes specific to
    the route; those every route can answer are added by `error_codes`."""

    method: str
    path: str
    summary: str
    responses: dict[int, type[BaseModel] | str]
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    auth: bool = True
    inference: bool = False  # runs models: 429 when the admission queue is full, 503 unready
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


@dataclass(frozen=True)
class RouteDef:
    doc: OperationDoc
    handler: Handler
    #: where the route is served when the settings choose it (`doc.path` is the default)
    served_at: Callable[[Settings], str] | None = None


@dataclass
class OpenApiRegistry:
    """The documented operations an app serves, by (method, path as served)."""

    title: str = "edge-face"
    version: str = "0.1.0"
    operations: dict[tuple[str, str], OperationDoc] = field(default_factory=dict)

    def add(self, doc: OperationDoc) -> None:
        self.operations[(doc.method, doc.path)] = doc

    def get(self, method: str, path: str) -> OperationDoc | None:
        return self.operations.get((method, path))


class RouteTable:
    """The routes of one module, each declared with `@table.route(METHOD, PATH, ...)`."""

    def __init__(self) -> None:
        self.routes: list[RouteDef] = []

    def route(
        self,
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
        served_at: Callable[[Settings], str] | None = None,
    ) -> Callable[[H], H]:
        unknown = [c for c in errors if c not in ERROR_CATALOGUE]
        if unknown:
            raise ValueError(f"unknown error codes {unknown}; add them to ERROR_CATALOGUE")
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
            self.routes.append(RouteDef(doc, handler, served_at))
            return handler

        return deco

    def add_to(self, router: web.UrlDispatcher, docs: OpenApiRegistry, settings: Settings) -> None:
        """Serve every route (fixed paths before `{id}` ones) and record its operation."""
        for r in sorted(self.routes, key=lambda r: "{" in r.doc.path):
            path = r.served_at(settings) if r.served_at is not None else r.doc.path
            if r.doc.method == "GET":
                router.add_get(path, r.handler)  # with its HEAD twin
            else:
                router.add_route(r.doc.method, path, r.handler)
            docs.add(replace(r.doc, path=path))
