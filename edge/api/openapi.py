"""OpenAPI 3.1 built from the live router and the operations its route tables declared.

Route modules declare each route once in a `RouteTable` (`edge.api.routes`); adding the
tables to the app records each served route's operation in the app's `OpenApiRegistry`.
The document is built by walking `app.router`, so a route that exists but is not documented
is detectable (a test asserts there is none), and the method and path in the document are
always the real ones. Errors every route can produce (auth, limits, admission, 500) are
added automatically, so a route only lists the codes specific to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from edge.api.routes import OpenApiRegistry, OperationDoc
from edge.api.state import OPENAPI, SETTINGS
from edge.errors import ERROR_CATALOGUE


class ErrorBody(BaseModel):
    """Every non-2xx answer."""

    code: int = Field(description="contract error code (api.md §1)", examples=[111])
    name: str = Field(description="snake_case name of the code", examples=["unauthorized"])
    message: str = Field(description="what is wrong and where")


def doc_for(route: web.AbstractRoute, registry: OpenApiRegistry | None) -> OperationDoc | None:
    """The documentation of one router entry (None when undocumented)."""
    path = route_path(route)
    if path is None or registry is None:
        return None
    return registry.get(route.method, path)


def route_path(route: web.AbstractRoute) -> str | None:
    if route.resource is None:
        return None
    return route.resource.canonical


def documented_routes(app: web.Application) -> Iterable[web.AbstractRoute]:
    """Every route a client can call (HEAD twins of GET routes excluded)."""
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        if route.resource is not None and route.resource.canonical.startswith("/console"):
            continue  # the web console's pages and session (edge.api.console), not the API
        yield route


# Document building ------------------------------------------------------------------------
class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(
        self,
        model: type[BaseModel],
        mode: Literal["validation", "serialization"] = "serialization",
    ) -> dict[str, Any]:
        schema = model.model_json_schema(
            ref_template="#/components/schemas/{model}", mode=mode, by_alias=True
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
    out: list[dict[str, Any]] = []
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
    document: dict[str, Any] = {
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
    annotate(document, _example_models(app))
    return document


# Descriptions and examples ----------------------------------------------------------------
# Written from the API contract (api.md) and applied to the generated document, so the wire
# models in schemas.py stay about parsing and the words a reader sees live in one place.
# A test asserts every entry names a real schema property and every request field has words.

_TEXT = "at most 256 characters"
_IMAGE_DATA = (
    "base64 of a JPG, PNG or GIF file (GIF: its first frame). A `data:image/...;base64,` "
    "prefix and embedded whitespace or newlines are accepted. The image is decoded, analysed "
    "and dropped: the service never stores or logs image data."
)
_METADATA = "at most 10 typed items, names unique; not filterable; a write replaces the whole list"

FIELD_DOCS: dict[str, dict[str, str]] = {
    "ImageIn": {
        "data": _IMAGE_DATA,
        "area": "only faces whose box overlaps this rectangle are considered; it is clipped "
        "to the image and answers keep full-image pixel coordinates (default: whole image)",
        "autoRotate": "apply the EXIF orientation and, if still no face is found, also try "
        "the image turned 90/180/270°; coordinates then refer to the turned image. Without "
        "it the raw pixel grid is used, as the cloud does",
        "returnDetails": "which blocks of `details` the answer carries (all false by default)",
    },
    "AreaIn": {
        "top": "pixels from the top edge of the image",
        "left": "pixels from the left edge of the image",
        "width": "pixels, >= 1; the rectangle must overlap the image",
        "height": "pixels, >= 1; the rectangle must overlap the image",
    },
    "ReturnDetailsIn": {
        "position": "the face box {top, left, width, height} in pixels",
        "angle": "head pose: pitch, yaw, roll in degrees (-90…90) and the box centre",
        "landmarks": "106 {x, y} points, in the order of the landmark table",
        "quality": "brightness, sharpness, mouthClosed, centered, size, integrity and "
        "completeness of the face, each measured on the image",
        "attributes": "age, gender, emotions, mask, glasses … (only those the model can "
        "estimate; GET /api/v1/models lists them)",
    },
    "MetadataItem": {
        "name": "unique within the list; reserved: id, instanceId, model, collection, key, "
        "createdAt, updatedAt, expiresAt",
        "type": "string, integer (32-bit), boolean or float (finite 32-bit)",
        "value": "must match `type`",
    },
    "CreateFaceIn": {
        "model": "face model name or alias (GET /api/v1/models lists them); search and "
        "compare only see entities of the same model",
        "image": "the photo; its largest face is enrolled",
        "collection": f'free grouping label, filterable; {_TEXT}; "" = none',
        "key": f"e.g. the person's id, filterable; need not be unique (several photos of "
        f'one person share a key); {_TEXT}; "" = none',
        "metadata": _METADATA,
        "ttl": "seconds until the entity expires; -1 (default) = never (expiresAt "
        "3000-01-01T00:00:00Z); 0 and values below -1 are invalid",
    },
    "PatchFaceIn": {
        "model": "must equal the entity's model if given; changes nothing",
        "image": "a new photo: its largest face replaces the stored one",
        "collection": f"new collection; {_TEXT}",
        "key": f"new key; {_TEXT}",
        "metadata": _METADATA,
        "ttl": "seconds from now (the clock restarts); -1 = never expires",
    },
    "SearchIn": {
        "model": "face model name or alias; only entities enrolled with it are searched",
        "image": "the probe photo; its largest face is searched for",
        "collection": 'only entities of this collection ("" or absent = any)',
        "key": 'only entities with this key ("" or absent = any)',
        "maxEntities": "at most this many entities are returned, best first (1…1000, default 10)",
        "maxFaces": "alias of maxEntities for older clients",
        "threshold": "only entities whose similarityScore is >= threshold are returned "
        "(0…1, default 0 = the best maxEntities whatever their score). 0.9 is a strict "
        "operating point (false-accept rate <= 1e-4); GET /api/v1/models publishes the "
        "recommended threshold with the FAR/TAR measured at it",
    },
    "ModelImageIn": {
        "model": "face model name or alias (GET /api/v1/models lists them)",
        "image": "the photo to analyse",
    },
    "CompareIn": {
        "model": "face model name or alias (GET /api/v1/models lists them)",
        "imageOne": "the first photo; its largest face is compared",
        "imageTwo": "the second photo; its largest face is compared",
    },
    "LivenessIn": {
        "model": "liveness model name or alias (GET /api/v1/models lists them)",
        "images": "the largest face of images[0] is analysed; images beyond what the model "
        "needs are ignored, fewer is error 219",
    },
    "LivenessImageIn": {
        "index": "0, 1, 2 … with no gap or repeat; defines the order (the array itself may "
        "come in any order)",
        "type": "the kind of image; RGB today",
        "data": _IMAGE_DATA,
        "autoRotate": "apply the EXIF orientation and try the image turned 90/180/270° when "
        "no face is found",
    },
    "EntityOut": {
        "uuid": "made by the server; sorts as a string in creation order (UUIDv7 layout)",
        "model": "the model name exactly as the creating request gave it",
        "createdAt": "ISO-8601 UTC, second precision",
        "updatedAt": "ISO-8601 UTC, second precision",
        "expiresAt": "ISO-8601 UTC; 3000-01-01T00:00:00Z = never",
    },
    "FoundEntity": {
        "similarityScore": "0…1, calibrated; >= 0.99 for the same photo twice",
    },
    "SearchOut": {
        "count": "number of entities found (0 is not an error)",
        "entitiesFound": "best first",
        "entityUploaded": "the probe face's requested details",
    },
    "EntityListOut": {
        "total": "entities matching the filters",
        "count": "entities on this page",
        "nextAfter": 'pass as `after` for the next page; "" when this page is the last',
    },
    "CompareOut": {"similarityScore": "0…1, the same as search gives for this pair"},
    "CompareEntityOut": {"similarityScore": "0…1, the same as search gives for this pair"},
    "LivenessOut": {
        "spoofScore": "probability that the face is a spoof, 0…1; the client decides with "
        "its own threshold (recommended 0.5: >= 0.5 means spoof)",
        "position": "the analysed face of images[0]",
    },
}

QUERY_DOCS: dict[str, str] = {
    "model": "only entities of this model (name or alias)",
    "collection": 'only entities of this collection ("" = any)',
    "key": 'only entities with this key ("" = any)',
    "limit": "page size, 1…1000 (default 20)",
    "after": "uuid cursor: the previous page's nextAfter",
}

#: What a client sees in place of image bytes; the docs page offers a file picker for it.
IMAGE_PLACEHOLDER = "<base64 of a JPG, PNG or GIF: pick a photo>"


def example_bodies(face_model: str, liveness_model: str) -> dict[str, dict[str, Any]]:
    """One ready-to-send body per request schema (image data left as the placeholder)."""
    image = {"data": IMAGE_PLACEHOLDER}
    meta = [{"name": "department", "type": "string", "value": "logistics"}]
    return {
        "CreateFaceIn": {
            "model": face_model,
            "image": image,
            "collection": "staff",
            "key": "person-0042",
            "metadata": meta,
            "ttl": -1,
        },
        "PatchFaceIn": {"key": "person-0042", "metadata": meta},
        "SearchIn": {
            "model": face_model,
            "image": image,
            "collection": "",
            "maxEntities": 5,
            "threshold": 0.9,
        },
        "ModelImageIn": {
            "model": face_model,
            "image": {**image, "returnDetails": {"position": True, "angle": True}},
        },
        "CompareIn": {"model": face_model, "imageOne": image, "imageTwo": dict(image)},
        "LivenessIn": {
            "model": liveness_model,
            "images": [{"index": 0, "type": "RGB", "data": IMAGE_PLACEHOLDER}],
        },
    }


def _example_models(app: web.Application) -> tuple[str, str]:
    settings = app.get(SETTINGS)
    if settings is None:
        return "EDGE_FACE_V1", "EDGE_LIVENESS_V1"
    return settings.names.face, settings.names.liveness


def annotate(doc: dict[str, Any], models: tuple[str, str]) -> None:
    """Add the field descriptions, query parameter words and request examples in place."""
    schemas = doc["components"]["schemas"]
    for name, fields in FIELD_DOCS.items():
        props = schemas.get(name, {}).get("properties", {})
        for field_name, text in fields.items():
            if field_name in props:
                props[field_name]["description"] = text
    examples = example_bodies(*models)
    for ops in doc["paths"].values():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param["in"] == "query" and param["name"] in QUERY_DOCS:
                    param.setdefault("description", QUERY_DOCS[param["name"]])
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            ref = body["schema"].get("$ref", "")
            example = examples.get(ref.rsplit("/", 1)[-1])
            if example is None:  # a body without a hand-written example still gets one
                example = sketch(body["schema"], schemas, models[0])
            body["example"] = example


def sketch(schema: dict[str, Any], schemas: dict[str, Any], face_model: str) -> Any:
    """A minimal value of `schema`: required fields only, images as the placeholder."""
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        real = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return sketch(real[0], schemas, face_model) if real else None
    if "examples" in schema:
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "array":  # one item of objects (so their images get a picker), else none
        item = sketch(schema.get("items", {}), schemas, face_model)
        return [item] if isinstance(item, dict) else []
    if kind == "object" or "properties" in schema:
        out = {}
        for name in schema.get("required", []):
            prop = schema["properties"][name]
            if name == "data":
                out[name] = IMAGE_PLACEHOLDER
            elif name == "model":
                out[name] = face_model
            else:
                out[name] = sketch(prop, schemas, face_model)
        return out
    if "default" in schema:
        return schema["default"]
    zero: dict[str, Any] = {"string": "", "integer": 0, "number": 0.0, "boolean": False}
    if kind == "integer" and "minimum" in schema:
        return schema["minimum"]
    return zero.get(str(kind))
