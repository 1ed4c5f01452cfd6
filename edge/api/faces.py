"""The AnySee face endpoints (api.md §3): entities CRUD, search, detect, compare.

Each handler validates the whole body first (cheap, on the event loop, contract-exact codes
from `schemas`), then runs decode + detection + embedding + the store write as ONE call in
the inference pool, so the loop never blocks and a request costs one admission slot. The
store write comes last: any error before it leaves nothing written.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from edge.api import schemas as s
from edge.api.inference import run_inference
from edge.api.middleware import json_body
from edge.api.routes import RouteTable
from edge.api.state import PIPELINE, SETTINGS, STORE, instance_of
from edge.api.wire import request_error, uploaded_json
from edge.errors import EdgeError
from edge.imaging.area import parse_area
from edge.imaging.decode import DecodedImage, decode_image
from edge.imaging.errors import ImageInputError
from edge.store import UNSET
from edge.timefmt import iso_utc
from edge.vision.errors import FaceError
from edge.vision.types import Area, FaceAnalysis

FACES = "/api/v1/entities/faces"
ENTITY = FACES + "/{uuid}"

IMAGE_ERRORS = (110, 111, 112, 214, 215, 216, 217)
FACE_ERRORS = (*IMAGE_ERRORS, 113, 223, 224)
WRITE_ERRORS = (*FACE_ERRORS, 116)

routes = RouteTable()


# Wire helpers ------------------------------------------------------------------------------
def entity_out(e: Any) -> dict[str, Any]:
    """The Entity wire object; `model` is the name the creating request used."""
    return {
        "uuid": e.uuid,
        "model": e.model_name,
        "collection": e.collection,
        "key": e.key,
        "metadata": e.metadata,
        "createdAt": iso_utc(e.created_at),
        "updatedAt": iso_utc(e.updated_at),
        "expiresAt": iso_utc(e.expires_at),
    }


def not_found(uuid: str) -> EdgeError:
    return EdgeError(404, f"entity {uuid} not found")


def path_uuid(request: web.Request) -> str:
    """The path's uuid in canonical form; a malformed one is 404 like an unknown one."""
    raw = request.match_info["uuid"]
    u = s.parse_uuid(raw)
    if u is None:
        raise not_found(raw)
    return u


# Image work (runs in the inference pool) ---------------------------------------------------
def decode_request_image(
    app: web.Application, img: s.ImageRequest
) -> tuple[DecodedImage, Area | None]:
    """The decoded pixels (214-217) and `area` checked against them (112)."""
    try:
        decoded = decode_image(
            img.data,
            auto_rotate=img.auto_rotate,
            max_pixels=app[SETTINGS].server.max_pixels,
            require_color=True,
        )
        area = parse_area(img.area, decoded.width, decoded.height)
    except ImageInputError as e:
        raise request_error(e, img.field) from None
    return decoded, area


def analyze_image(
    app: web.Application, img: s.ImageRequest, *, embed: bool = True
) -> tuple[FaceAnalysis, DecodedImage]:
    """Decode, then the largest face (fast detector, slow fallback); 214-217, 112, 223, 224."""
    decoded, area = decode_request_image(app, img)
    try:
        fa = app[PIPELINE].analyze_largest(
            decoded, area=area, flags=img.flags, embed=embed, auto_rotate=img.auto_rotate
        )
    except FaceError as e:
        raise request_error(e, img.field) from None
    return fa, decoded


async def in_thread(fn: Any, *args: Any) -> Any:
    """Store calls without inference: off the loop, but not through admission (no models)."""
    return await asyncio.to_thread(fn, *args)


# Handlers ----------------------------------------------------------------------------------
@routes.route(
    "POST",
    FACES,
    summary="Enrol the largest face of an image as a new entity",
    request=s.CreateFaceIn,
    responses={201: s.CreatedEntityOut},
    errors=WRITE_ERRORS,
    inference=True,
    tags=["faces"],
)
async def create_face(request: web.Request) -> web.Response:
    app = request.app
    req = s.parse_create(await json_body(request), app[SETTINGS])
    instance = instance_of(request)

    def work() -> tuple[Any, FaceAnalysis]:
        fa, _ = analyze_image(app, req.image)
        ent = app[STORE].create(
            instance=instance,
            model=req.model.canonical,
            model_name=req.model.given,
            collection=req.collection,
            key=req.key,
            metadata=req.metadata,
            ttl=req.ttl,
            vector=fa.embedding,
        )
        return ent, fa

    ent, fa = await run_inference(request, work)
    out = entity_out(ent)
    if req.image.flags.any:
        out["entityUploaded"] = uploaded_json(fa)
    return web.json_response(out, status=201)


@routes.route(
    "GET",
    FACES,
    summary="List entities, ascending uuid, paged with `after`",
    query=s.ListQuery,
    responses={200: s.EntityListOut},
    errors=(112, 113),
    tags=["faces"],
)
async def list_faces(request: web.Request) -> web.Response:
    q = s.parse_list_query(request.query, request.app[SETTINGS])
    model, collection, key, limit, after = q.model, q.collection, q.key, q.limit, q.after
    store = request.app[STORE]
    total, ents = await asyncio.to_thread(
        lambda: store.list(
            instance_of(request),
            model=model,
            collection=collection,
            key=key,
            limit=limit,
            after=after,
        )
    )
    return web.json_response(
        {
            "total": total,
            "count": len(ents),
            "limit": limit,
            # §2.3: the last uuid of a FULL page, even when nothing follows.
            "nextAfter": ents[-1].uuid if len(ents) == limit else "",
            "entities": [entity_out(e) for e in ents],
        }
    )


@routes.route(
    "GET",
    ENTITY,
    summary="One entity",
    responses={200: s.EntityOut},
    errors=(404,),
    tags=["faces"],
)
async def get_face(request: web.Request) -> web.Response:
    uuid = path_uuid(request)
    ent = await in_thread(request.app[STORE].get, instance_of(request), uuid)
    if ent is None:
        raise not_found(uuid)
    return web.json_response(entity_out(ent))


@routes.route(
    "PATCH",
    ENTITY,
    summary="Change collection, key, metadata, ttl or the face (a new image)",
    request=s.PatchFaceIn,
    responses={200: s.EntityOut},
    errors=(*WRITE_ERRORS, 404),
    inference=True,
    tags=["faces"],
)
async def patch_face(request: web.Request) -> web.Response:
    app = request.app
    uuid = path_uuid(request)
    req = s.parse_patch(await json_body(request), app[SETTINGS])
    instance = instance_of(request)
    store = app[STORE]
    current = await in_thread(store.get, instance, uuid)
    if current is None:
        raise not_found(uuid)
    if req.model is not None and req.model.canonical != current.model:
        raise EdgeError(
            112, f"model {req.model.given!r} differs from the entity's model {current.model_name!r}"
        )

    def unset(v: Any) -> Any:
        return UNSET if v is None else v

    def work() -> Any:
        vector: Any = UNSET
        if req.image is not None:
            fa, _ = analyze_image(app, req.image)
            vector = fa.embedding
        return store.update(
            instance,
            uuid,
            collection=unset(req.collection),
            key=unset(req.key),
            metadata=unset(req.metadata),
            ttl=unset(req.ttl),
            vector=vector,
        )

    if req.image is not None:
        ent = await run_inference(request, work)
    else:
        ent = await in_thread(work)
    if ent is None:  # deleted or expired while we worked
        raise not_found(uuid)
    return web.json_response(entity_out(ent))


@routes.route(
    "DELETE",
    ENTITY,
    summary="Delete an entity",
    responses={204: "deleted; empty body"},
    errors=(404,),
    tags=["faces"],
)
async def delete_face(request: web.Request) -> web.Response:
    uuid = path_uuid(request)
    if not await in_thread(request.app[STORE].delete, instance_of(request), uuid):
        raise not_found(uuid)
    return web.Response(status=204)


@routes.route(
    "POST",
    FACES + "/search",
    summary="1:N search: the entities most similar to the largest face of an image",
    request=s.SearchIn,
    responses={200: s.SearchOut},
    errors=FACE_ERRORS,
    inference=True,
    tags=["faces"],
)
async def search_faces(request: web.Request) -> web.Response:
    app = request.app
    req = s.parse_search(await json_body(request), app[SETTINGS])
    instance = instance_of(request)
    pipeline = app[PIPELINE]

    def work() -> tuple[list[tuple[Any, float]], FaceAnalysis]:
        fa, _ = analyze_image(app, req.image)
        hits = app[STORE].search(
            instance,
            req.model.canonical,
            fa.embedding,
            collection=req.collection,
            key=req.key,
            limit=req.max_entities,
        )
        return hits, fa

    hits, fa = await run_inference(request, work)
    found = []
    for ent, cos in hits:
        score = pipeline.cosine_to_score(cos)
        if score >= req.threshold:
            found.append({**entity_out(ent), "similarityScore": score})
    return web.json_response(
        {
            "model": req.model.given,
            "count": len(found),
            "maxEntities": req.max_entities,
            "threshold": req.threshold,
            "entitiesFound": found,
            "entityUploaded": uploaded_json(fa),
        }
    )


@routes.route(
    "POST",
    FACES + "/detect",
    summary="All faces of an image (slow detector), largest first",
    request=s.ModelImageIn,
    responses={200: s.DetectOut},
    errors=(*IMAGE_ERRORS, 113),
    inference=True,
    tags=["faces"],
)
async def detect_faces(request: web.Request) -> web.Response:
    app = request.app
    req = s.parse_model_image(await json_body(request), app[SETTINGS])
    img = req.image

    def work() -> list[FaceAnalysis]:
        decoded, area = decode_request_image(app, img)
        return list(
            app[PIPELINE].detect_all(
                decoded, area=area, flags=img.flags, auto_rotate=img.auto_rotate
            )
        )

    faces = await run_inference(request, work)
    entities = []
    for fa in faces:
        item = uploaded_json(fa)
        if img.auto_rotate:
            item["rotated"] = fa.rotated
        entities.append(item)
    return web.json_response(
        {"model": req.model.given, "count": len(entities), "entities": entities}
    )


@routes.route(
    "POST",
    FACES + "/compare",
    summary="1:1 similarity of the largest faces of two images",
    request=s.CompareIn,
    responses={200: s.CompareOut},
    errors=FACE_ERRORS,
    inference=True,
    tags=["faces"],
)
async def compare_faces(request: web.Request) -> web.Response:
    app = request.app
    req = s.parse_compare(await json_body(request), app[SETTINGS])
    pipeline = app[PIPELINE]

    def work() -> tuple[FaceAnalysis, FaceAnalysis]:
        one, _ = analyze_image(app, req.image_one)
        two, _ = analyze_image(app, req.image_two)
        return one, two

    one, two = await run_inference(request, work)
    return web.json_response(
        {
            "model": req.model.given,
            "similarityScore": pipeline.similarity(one.embedding, two.embedding),
            "entities": {"imageOne": uploaded_json(one), "imageTwo": uploaded_json(two)},
        }
    )


@routes.route(
    "POST",
    ENTITY + "/compare",
    summary="1:1 similarity of a stored entity and the largest face of an image",
    request=s.ModelImageIn,
    responses={200: s.CompareEntityOut},
    errors=(*FACE_ERRORS, 404),
    inference=True,
    tags=["faces"],
)
async def compare_entity(request: web.Request) -> web.Response:
    app = request.app
    uuid = path_uuid(request)
    req = s.parse_model_image(await json_body(request), app[SETTINGS])
    store = app[STORE]
    ent = await in_thread(lambda: store.get(instance_of(request), uuid, with_vector=True))
    # Compare only sees entities of the same model whose vectors are comparable (same weights).
    if (
        ent is None
        or ent.model != req.model.canonical
        or ent.pack_fingerprint != store.pack_fingerprint
    ):
        raise not_found(uuid)
    pipeline = app[PIPELINE]

    def work() -> FaceAnalysis:
        return analyze_image(app, req.image)[0]

    fa = await run_inference(request, work)
    return web.json_response(
        {
            "model": req.model.given,
            "similarityScore": pipeline.similarity(ent.vector, fa.embedding),
            "entity": entity_out(ent),
            "entityUploaded": uploaded_json(fa),
        }
    )
