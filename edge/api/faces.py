"""The AnySee face endpoints (api.md §3): entities CRUD, search, detect, compare.

Each handler validates the whole body first (cheap, on the event loop, contract-exact codes
from `schemas`), then runs the image work (`edge.recognition`: decode, detection, embedding,
search with the calibrated score and threshold rule, the store write) as ONE call in the
inference pool, so the loop never blocks and a request costs one admission slot. The store
write comes last: any error before it leaves nothing written.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from edge.api import schemas as s
from edge.api.images import image_query, on_image
from edge.api.inference import run_inference
from edge.api.middleware import json_body
from edge.api.routes import RouteTable
from edge.api.state import ENGINE, SETTINGS, instance_of, recognition
from edge.api.wire import uploaded_json
from edge.errors import EdgeError
from edge.recognition import Analyzed, Comparison, Enrolled, Recognition, SearchResult
from edge.store import UNSET, Entity
from edge.timefmt import iso_utc
from edge.vision.types import FaceAnalysis

FACES = "/api/v1/entities/faces"
ENTITY = FACES + "/{uuid}"

IMAGE_ERRORS = (110, 111, 112, 214, 215, 216, 217)
FACE_ERRORS = (*IMAGE_ERRORS, 113, 223, 224)
WRITE_ERRORS = (*FACE_ERRORS, 116)

routes = RouteTable()


# Wire helpers ------------------------------------------------------------------------------
def entity_out(e: Entity) -> dict[str, Any]:
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
def analyze(rec: Recognition, img: s.ImageRequest) -> Analyzed:
    """The largest face of a request image; errors name the image's field."""
    return on_image(img.field, lambda: rec.analyze(image_query(img)))


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
    rec = recognition(app)

    def work() -> Enrolled:
        return on_image(
            req.image.field,
            lambda: rec.enrol_image(
                instance,
                image_query(req.image),
                model=req.model.canonical,
                model_name=req.model.given,
                collection=req.collection,
                key=req.key,
                metadata=req.metadata,
                ttl=req.ttl,
            ),
        )

    enrolled = await run_inference(request, work)
    out = entity_out(enrolled.entity)
    if req.image.flags.any:
        out["entityUploaded"] = uploaded_json(enrolled.face)
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
    store = request.app[ENGINE].store
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
    ent = await in_thread(request.app[ENGINE].store.get, instance_of(request), uuid)
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
    rec = recognition(app)
    store = rec.store
    current = await in_thread(store.get, instance, uuid)
    if current is None:
        raise not_found(uuid)
    if req.model is not None and req.model.canonical != current.model:
        raise EdgeError(
            112, f"model {req.model.given!r} differs from the entity's model {current.model_name!r}"
        )

    def unset(v: Any) -> Any:
        return UNSET if v is None else v

    def work() -> Entity | None:
        vector: Any = UNSET
        if req.image is not None:
            vector = analyze(rec, req.image).embedding
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
    if not await in_thread(request.app[ENGINE].store.delete, instance_of(request), uuid):
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
    rec = recognition(app)

    def work() -> SearchResult:
        return on_image(
            req.image.field,
            lambda: rec.search_image(
                instance,
                image_query(req.image),
                model=req.model.canonical,
                collection=req.collection,
                key=req.key,
                limit=req.max_entities,
                threshold=req.threshold,
            ),
        )

    result = await run_inference(request, work)
    found = [{**entity_out(m.entity), "similarityScore": m.score} for m in result.matches]
    return web.json_response(
        {
            "model": req.model.given,
            "count": len(found),
            "maxEntities": req.max_entities,
            "threshold": req.threshold,
            "entitiesFound": found,
            "entityUploaded": uploaded_json(result.face),
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
    rec = recognition(app)

    def work() -> list[FaceAnalysis]:
        return on_image(img.field, lambda: rec.detect_all(image_query(img)))

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
    rec = recognition(app)

    def work() -> Comparison:
        return rec.compare(analyze(rec, req.image_one), analyze(rec, req.image_two))

    cmp = await run_inference(request, work)
    return web.json_response(
        {
            "model": req.model.given,
            "similarityScore": cmp.score,
            "entities": {"imageOne": uploaded_json(cmp.one), "imageTwo": uploaded_json(cmp.two)},
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
    rec = recognition(app)
    instance = instance_of(request)
    # Compare only sees entities of the same model whose vectors are comparable (same weights).
    ent = await in_thread(rec.comparable_entity, instance, uuid, req.model.canonical)
    if ent is None or ent.vector is None:
        raise not_found(uuid)
    vector = ent.vector

    def work() -> Analyzed:
        return analyze(rec, req.image)

    analyzed = await run_inference(request, work)
    return web.json_response(
        {
            "model": req.model.given,
            "similarityScore": rec.similarity(vector, analyzed.embedding),
            "entity": entity_out(ent),
            "entityUploaded": uploaded_json(analyzed.face),
        }
    )
