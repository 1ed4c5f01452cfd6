"""A small typed Python client for the edge-face REST API (api.md), sync and async.

Why a client of our own: integrators otherwise hand-roll base64, headers, paging and error
parsing for every call. `Client` needs only the stdlib (`http.client`), so scripts and the
`edge-face` commands add no dependency; `AsyncClient` rides on aiohttp, which the service
already depends on. Both share the request builders and result parsers below, so they cannot
drift apart. Images are read, base64-encoded into the request body and dropped: the client
never keeps or logs them.

    from edge_face.client import Client

    with Client("http://192.168.1.20:8080", api_key="...") as c:
        alice = c.create("alice.jpg", key="alice", collection="door")
        hit = c.search("visitor.jpg", collection="door").hits[0]
        print(hit.entity.key, hit.similarity_score)
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import http.client
import json
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

__all__ = [
    "DETAIL_BLOCKS",
    "ApiError",
    "AsyncClient",
    "Box",
    "Client",
    "CompareResult",
    "Details",
    "DetectResult",
    "DetectedFace",
    "Entity",
    "EntityCompareResult",
    "Image",
    "LivenessResult",
    "ModelInfo",
    "Page",
    "Readiness",
    "SearchHit",
    "SearchResult",
    "ServiceUnreachable",
]

API = "/api/v1"
FACES = API + "/entities/faces"
DEFAULT_FACE_MODEL = "EDGE_FACE_V1"
DEFAULT_LIVENESS_MODEL = "EDGE_LIVENESS_V1"
DETAIL_BLOCKS = ("position", "angle", "landmarks", "quality", "attributes")
MAX_PAGE = 1000  # api.md §3: the largest `limit` of GET /entities/faces
#: 429 (queue full / rate limit) and 503 (warming up) mean "not processed, try later".
TRANSIENT = frozenset({429, 503})

MetaValue = str | int | float | bool


# Errors ----------------------------------------------------------------------------------------
class ApiError(Exception):
    """Any error answer of the service, as the contract's `{code, name, message}` + HTTP status.

    One type for every contract error, so callers branch on `code` (api.md §1) instead of
    catching a zoo of classes: `except ApiError as e: if e.code == 223: ...`.
    """

    def __init__(
        self, status: int, code: int, name: str, message: str, request_id: str | None = None
    ) -> None:
        super().__init__(f"{status} {code} {name}: {message}")
        self.status = status
        self.code = code
        self.name = name
        self.message = message
        self.request_id = request_id


class ServiceUnreachable(ApiError):
    """No HTTP answer at all (refused, timed out, DNS): status and code are 0."""

    def __init__(self, url: str, reason: object) -> None:
        super().__init__(
            0,
            0,
            "service_unreachable",
            f"cannot reach the service ({reason}): is `edge-face serve` running at {url}?",
        )
        self.url = url


def _error(status: int, body: bytes, request_id: str | None) -> ApiError:
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("code"), int):
        return ApiError(
            status, doc["code"], str(doc.get("name", "")), str(doc.get("message", "")), request_id
        )
    # Not the contract's body (a proxy in between?): keep the status, say what came back.
    text = body[:200].decode("utf-8", "replace").strip()
    return ApiError(status, status, "http_error", f"HTTP {status}: {text}", request_id)


# Inputs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    """A rectangle in image pixels (request `area`, response `position`)."""

    top: int
    left: int
    width: int
    height: int

    def as_json(self) -> dict[str, int]:
        return {"top": self.top, "left": self.left, "width": self.width, "height": self.height}


ImageSource = bytes | str | os.PathLike[str]


@dataclass(frozen=True)
class Image:
    """A photo plus per-image options; plain bytes or a path are accepted wherever it is.

    `source`: raw image bytes (JPG/PNG/GIF) or a path to a file; the client base64-encodes it.
    """

    source: ImageSource
    area: Box | None = None
    auto_rotate: bool = False

    def read(self) -> bytes:
        if isinstance(self.source, bytes | bytearray | memoryview):
            return bytes(self.source)
        return Path(self.source).read_bytes()


ImageLike = Image | ImageSource
DetailsArg = bool | Iterable[str]


def _image(img: ImageLike, details: DetailsArg = False) -> dict[str, Any]:
    im = img if isinstance(img, Image) else Image(img)
    out: dict[str, Any] = {"data": base64.b64encode(im.read()).decode("ascii")}
    if im.area is not None:
        out["area"] = im.area.as_json()
    if im.auto_rotate:
        out["autoRotate"] = True
    blocks = _blocks(details)
    if blocks:
        out["returnDetails"] = {b: True for b in blocks}
    return out


def _blocks(details: DetailsArg) -> list[str]:
    if details is True:
        return list(DETAIL_BLOCKS)
    if details is False:
        return []
    blocks = list(details)
    unknown = sorted(set(blocks) - set(DETAIL_BLOCKS))
    if unknown:
        raise ValueError(f"unknown detail block(s) {unknown}; choose from {list(DETAIL_BLOCKS)}")
    return blocks


def _metadata(meta: Mapping[str, MetaValue]) -> list[dict[str, Any]]:
    """`{"floor": 3}` → the contract's typed list (bool is checked before int on purpose)."""
    items = []
    for name, value in meta.items():
        if isinstance(value, bool):
            kind = "boolean"
        elif isinstance(value, int):
            kind = "integer"
        elif isinstance(value, float):
            kind = "float"
        elif isinstance(value, str):
            kind = "string"
        else:
            raise TypeError(f"metadata {name!r}: {type(value).__name__} is not str/int/float/bool")
        items.append({"name": name, "type": kind, "value": value})
    return items


# Results ---------------------------------------------------------------------------------------
def _time(s: Any) -> datetime | None:
    if not isinstance(s, str) or not s:
        return None
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(timezone.utc)


def _box(d: Any) -> Box | None:
    if not isinstance(d, dict):
        return None
    return Box(int(d["top"]), int(d["left"]), int(d["width"]), int(d["height"]))


@dataclass(frozen=True)
class Details:
    """The requested `details` blocks of one face; a block not requested is None."""

    position: Box | None = None
    angle: dict[str, float] | None = None
    landmarks: list[tuple[int, int]] | None = None
    quality: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None

    @classmethod
    def parse(cls, d: Any) -> Details:
        if not isinstance(d, dict):
            return cls()
        marks = d.get("landmarks")
        return cls(
            position=_box(d.get("position")),
            angle=d.get("angle"),
            landmarks=[(int(p["x"]), int(p["y"])) for p in marks] if marks is not None else None,
            quality=d.get("quality"),
            attributes=d.get("attributes"),
        )


def _details_of(d: Any) -> Details:
    return Details.parse(d.get("details") if isinstance(d, dict) else None)


@dataclass(frozen=True)
class Entity:
    """A stored face (api.md §2.3). `uploaded`: details of the sent photo, when requested."""

    uuid: str
    model: str
    collection: str
    key: str
    metadata: dict[str, MetaValue]
    created_at: datetime | None
    updated_at: datetime | None
    expires_at: datetime | None
    uploaded: Details | None = None

    @property
    def never_expires(self) -> bool:
        return self.expires_at is not None and self.expires_at.year >= 3000

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Entity:
        up = d.get("entityUploaded")
        return cls(
            uuid=str(d["uuid"]),
            model=str(d.get("model", "")),
            collection=str(d.get("collection", "")),
            key=str(d.get("key", "")),
            metadata={str(m["name"]): m["value"] for m in d.get("metadata") or []},
            created_at=_time(d.get("createdAt")),
            updated_at=_time(d.get("updatedAt")),
            expires_at=_time(d.get("expiresAt")),
            uploaded=_details_of(up) if up is not None else None,
        )


@dataclass(frozen=True)
class Page:
    """One page of GET /entities/faces; pass `next_after` as `after` for the next ("" = end)."""

    total: int
    count: int
    limit: int
    next_after: str
    entities: list[Entity]

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Page:
        return cls(
            total=int(d["total"]),
            count=int(d["count"]),
            limit=int(d["limit"]),
            next_after=str(d.get("nextAfter") or ""),
            entities=[Entity.parse(e) for e in d.get("entities") or []],
        )


@dataclass(frozen=True)
class SearchHit:
    entity: Entity
    similarity_score: float


@dataclass(frozen=True)
class SearchResult:
    model: str
    count: int
    max_entities: int
    threshold: float
    hits: list[SearchHit]
    uploaded: Details

    @classmethod
    def parse(cls, d: dict[str, Any]) -> SearchResult:
        return cls(
            model=str(d["model"]),
            count=int(d["count"]),
            max_entities=int(d["maxEntities"]),
            threshold=float(d["threshold"]),
            hits=[
                SearchHit(Entity.parse(e), float(e["similarityScore"]))
                for e in d.get("entitiesFound") or []
            ],
            uploaded=_details_of(d.get("entityUploaded")),
        )


@dataclass(frozen=True)
class DetectedFace:
    details: Details
    rotated: int | None = None  # clockwise degrees applied, only with auto_rotate


@dataclass(frozen=True)
class DetectResult:
    model: str
    count: int
    faces: list[DetectedFace]  # largest first

    @classmethod
    def parse(cls, d: dict[str, Any]) -> DetectResult:
        return cls(
            model=str(d["model"]),
            count=int(d["count"]),
            faces=[DetectedFace(_details_of(e), e.get("rotated")) for e in d.get("entities") or []],
        )


@dataclass(frozen=True)
class CompareResult:
    model: str
    similarity_score: float
    one: Details
    two: Details

    @classmethod
    def parse(cls, d: dict[str, Any]) -> CompareResult:
        ents = d.get("entities") or {}
        return cls(
            model=str(d["model"]),
            similarity_score=float(d["similarityScore"]),
            one=_details_of(ents.get("imageOne")),
            two=_details_of(ents.get("imageTwo")),
        )


@dataclass(frozen=True)
class EntityCompareResult:
    model: str
    similarity_score: float
    entity: Entity
    uploaded: Details

    @classmethod
    def parse(cls, d: dict[str, Any]) -> EntityCompareResult:
        return cls(
            model=str(d["model"]),
            similarity_score=float(d["similarityScore"]),
            entity=Entity.parse(d["entity"]),
            uploaded=_details_of(d.get("entityUploaded")),
        )


@dataclass(frozen=True)
class LivenessResult:
    model: str
    spoof_score: float  # probability of a spoof; the model's recommended threshold decides
    position: Box

    @classmethod
    def parse(cls, d: dict[str, Any]) -> LivenessResult:
        pos = _box(d.get("position"))
        assert pos is not None, "liveness answer without position"
        return cls(model=str(d["model"]), spoof_score=float(d["spoofScore"]), position=pos)


@dataclass(frozen=True)
class ModelInfo:
    """One entry of GET /models; `raw` keeps every field (components, measured figures...)."""

    name: str
    aliases: list[str]
    entity: Literal["faces", "liveness"] | str
    recommended_threshold: float | None
    attributes: list[str]
    capabilities: dict[str, bool]
    vector_dimension: int | None
    measured: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> ModelInfo:
        thr = d.get("recommendedThreshold")
        dim = d.get("vectorDimension")
        return cls(
            name=str(d["name"]),
            aliases=[str(a) for a in d.get("aliases") or []],
            entity=str(d.get("entity", "")),
            recommended_threshold=float(thr) if thr is not None else None,
            attributes=[str(a) for a in d.get("attributes") or []],
            capabilities=dict(d.get("capabilities") or {}),
            vector_dimension=int(dim) if dim is not None else None,
            measured=dict(d.get("measured") or {}),
            raw=d,
        )


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str = ""  # why not, from the 503's message


# Requests, shared by both clients --------------------------------------------------------------
@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    body: dict[str, Any] | None = None
    ok: int = 200


def _q(params: Mapping[str, Any]) -> str:
    kept = {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(kept) if kept else ""


def _uuid_path(uuid: str, tail: str = "") -> str:
    return f"{FACES}/{quote(uuid, safe='')}{tail}"


class _Base:
    """Base URL, api-key and the request builders; subclasses only move bytes."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        face_model: str = DEFAULT_FACE_MODEL,
        liveness_model: str = DEFAULT_LIVENESS_MODEL,
        timeout: float = 120,
        retries: int = 0,
    ) -> None:
        base = url.rstrip("/")
        if base.endswith(API):
            base = base[: -len(API)]
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL such as http://127.0.0.1:8080")
        self.url = base
        self.api_key = api_key
        self.face_model = face_model
        self.liveness_model = liveness_model
        self.timeout = timeout
        self.retries = retries

    def _headers(self, has_body: bool) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if self.api_key:
            h["api-key"] = self.api_key
        if has_body:
            h["Content-Type"] = "application/json"
        return h

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(0.5 * 2**attempt)

    # builders (one per endpoint) -----------------------------------------------------------
    def _create(
        self,
        image: ImageLike,
        model: str | None,
        collection: str,
        key: str,
        metadata: Mapping[str, MetaValue] | None,
        ttl: int | None,
        details: DetailsArg,
    ) -> _Call:
        body: dict[str, Any] = {
            "model": model or self.face_model,
            "image": _image(image, details),
            "collection": collection,
            "key": key,
        }
        if metadata is not None:
            body["metadata"] = _metadata(metadata)
        if ttl is not None:
            body["ttl"] = ttl
        return _Call("POST", FACES, body, ok=201)

    def _list(
        self,
        model: str | None,
        collection: str | None,
        key: str | None,
        limit: int | None,
        after: str | None,
    ) -> _Call:
        q = {"model": model, "collection": collection, "key": key, "limit": limit, "after": after}
        return _Call("GET", FACES + _q(q))

    def _patch(
        self,
        uuid: str,
        collection: str | None,
        key: str | None,
        metadata: Mapping[str, MetaValue] | None,
        ttl: int | None,
        image: ImageLike | None,
    ) -> _Call:
        body: dict[str, Any] = {}
        if collection is not None:
            body["collection"] = collection
        if key is not None:
            body["key"] = key
        if metadata is not None:
            body["metadata"] = _metadata(metadata)
        if ttl is not None:
            body["ttl"] = ttl
        if image is not None:
            body["image"] = _image(image)
        return _Call("PATCH", _uuid_path(uuid), body)

    def _detect(self, image: ImageLike, model: str | None, details: DetailsArg) -> _Call:
        body = {"model": model or self.face_model, "image": _image(image, details)}
        return _Call("POST", FACES + "/detect", body)

    def _search(
        self,
        image: ImageLike,
        model: str | None,
        collection: str | None,
        key: str | None,
        max_entities: int | None,
        threshold: float | None,
        details: DetailsArg,
    ) -> _Call:
        body: dict[str, Any] = {"model": model or self.face_model, "image": _image(image, details)}
        for name, v in (
            ("collection", collection),
            ("key", key),
            ("maxEntities", max_entities),
            ("threshold", threshold),
        ):
            if v is not None:
                body[name] = v
        return _Call("POST", FACES + "/search", body)

    def _compare(
        self, one: ImageLike, two: ImageLike, model: str | None, details: DetailsArg
    ) -> _Call:
        body = {
            "model": model or self.face_model,
            "imageOne": _image(one, details),
            "imageTwo": _image(two, details),
        }
        return _Call("POST", FACES + "/compare", body)

    def _compare_entity(
        self, uuid: str, image: ImageLike, model: str | None, details: DetailsArg
    ) -> _Call:
        body = {"model": model or self.face_model, "image": _image(image, details)}
        return _Call("POST", _uuid_path(uuid, "/compare"), body)

    def _liveness(self, images: ImageLike | Sequence[ImageLike], model: str | None) -> _Call:
        # A tuple/list is several images; anything else (bytes, a path, an Image) is one.
        seq: list[Any] = list(images) if isinstance(images, list | tuple) else [images]
        items = []
        for i, im in enumerate(seq):
            one = _image(im)
            items.append({"index": i, "type": "RGB", **one})
        return _Call(
            "POST", API + "/liveness", {"model": model or self.liveness_model, "images": items}
        )


def _json(raw: bytes) -> Any:
    return json.loads(raw) if raw else None


class Client(_Base):
    """Blocking client over `http.client`: one short connection per call, so it is safe to
    share between threads (the `enroll` command sends from a small thread pool).

    `retries`: how many times a 429/503 answer is retried (0.5 s, 1 s, 2 s ... apart); those
    two codes mean the request was not processed, so a retry never duplicates an entity.
    """

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing is held between calls; present so `with Client(...)` reads naturally."""

    def _send(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes, str | None]:
        parts = urlsplit(self.url)
        conn_cls = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        conn = conn_cls(parts.hostname or "", parts.port, timeout=self.timeout)
        prefix = parts.path.rstrip("/")
        try:
            conn.request(method, prefix + path, body=body, headers=self._headers(body is not None))
            r = conn.getresponse()
            return r.status, r.read(), r.getheader("x-request-id")
        except (OSError, http.client.HTTPException) as e:
            raise ServiceUnreachable(self.url, e) from None
        finally:
            conn.close()

    def _do(self, call: _Call) -> Any:
        data = json.dumps(call.body).encode() if call.body is not None else None
        for attempt in range(self.retries + 1):
            status, raw, rid = self._send(call.method, call.path, data)
            if status in TRANSIENT and attempt < self.retries:
                time.sleep(self._backoff(attempt))
                continue
            break
        if status != call.ok:
            raise _error(status, raw, rid)
        return _json(raw)

    # endpoints ---------------------------------------------------------------------------
    def create(
        self,
        image: ImageLike,
        *,
        key: str = "",
        collection: str = "",
        metadata: Mapping[str, MetaValue] | None = None,
        ttl: int | None = None,
        model: str | None = None,
        details: DetailsArg = False,
    ) -> Entity:
        """Enrol one face (the largest in the photo). `ttl` seconds; None = never expires."""
        call = self._create(image, model, collection, key, metadata, ttl, details)
        return Entity.parse(self._do(call))

    def list(
        self,
        *,
        model: str | None = None,
        collection: str | None = None,
        key: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page:
        """One page, ascending uuid (creation order); see `entities()` to walk them all."""
        return Page.parse(self._do(self._list(model, collection, key, limit, after)))

    def entities(
        self,
        *,
        model: str | None = None,
        collection: str | None = None,
        key: str | None = None,
        page_size: int = MAX_PAGE,
    ) -> Iterator[Entity]:
        """Every matching entity, fetching page after page through the `after` cursor."""
        after: str | None = None
        while True:
            page = self.list(
                model=model, collection=collection, key=key, limit=page_size, after=after
            )
            yield from page.entities
            if not page.next_after:
                return
            after = page.next_after

    def get(self, uuid: str) -> Entity:
        return Entity.parse(self._do(_Call("GET", _uuid_path(uuid))))

    def patch(
        self,
        uuid: str,
        *,
        collection: str | None = None,
        key: str | None = None,
        metadata: Mapping[str, MetaValue] | None = None,
        ttl: int | None = None,
        image: ImageLike | None = None,
    ) -> Entity:
        """Change the given fields only (None = keep); `image` replaces the stored face."""
        return Entity.parse(self._do(self._patch(uuid, collection, key, metadata, ttl, image)))

    def delete(self, uuid: str) -> None:
        self._do(_Call("DELETE", _uuid_path(uuid), ok=204))

    def detect(
        self, image: ImageLike, *, model: str | None = None, details: DetailsArg = True
    ) -> DetectResult:
        """Every face in the photo, largest first (no face = count 0, not an error)."""
        return DetectResult.parse(self._do(self._detect(image, model, details)))

    def search(
        self,
        image: ImageLike,
        *,
        collection: str | None = None,
        key: str | None = None,
        max_entities: int | None = None,
        threshold: float | None = None,
        model: str | None = None,
        details: DetailsArg = False,
    ) -> SearchResult:
        """Stored faces most like the photo's largest face, best first."""
        call = self._search(image, model, collection, key, max_entities, threshold, details)
        return SearchResult.parse(self._do(call))

    def compare(
        self,
        image_one: ImageLike,
        image_two: ImageLike,
        *,
        model: str | None = None,
        details: DetailsArg = False,
    ) -> CompareResult:
        return CompareResult.parse(self._do(self._compare(image_one, image_two, model, details)))

    def compare_entity(
        self, uuid: str, image: ImageLike, *, model: str | None = None, details: DetailsArg = False
    ) -> EntityCompareResult:
        """A photo against one stored entity (1:1 verification)."""
        call = self._compare_entity(uuid, image, model, details)
        return EntityCompareResult.parse(self._do(call))

    def liveness(
        self, images: ImageLike | Sequence[ImageLike], *, model: str | None = None
    ) -> LivenessResult:
        """Spoof probability of the largest face of the first image (indexes given in order)."""
        return LivenessResult.parse(self._do(self._liveness(images, model)))

    def models(self) -> builtins.list[ModelInfo]:
        return [ModelInfo.parse(m) for m in self._do(_Call("GET", API + "/models"))["models"]]

    def readyz(self) -> Readiness:
        """Ready (models loaded, warm-up done) or why not; never raises for a 503."""
        try:
            self._do(_Call("GET", "/readyz"))
        except ApiError as e:
            if e.status == 503:
                return Readiness(False, e.message)
            raise
        return Readiness(True)


class AsyncClient(_Base):
    """The same API on aiohttp, for asyncio programs: `async with AsyncClient(...) as c:`.

    One `aiohttp.ClientSession` (keep-alive connections) lives from the first call, or from
    `__aenter__`, until `close()`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: Any = None

    async def __aenter__(self) -> AsyncClient:
        self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _open(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _do(self, call: _Call) -> Any:
        import aiohttp

        session = self._open()
        data = json.dumps(call.body).encode() if call.body is not None else None
        for attempt in range(self.retries + 1):
            try:
                async with session.request(
                    call.method,
                    self.url + call.path,
                    data=data,
                    headers=self._headers(data is not None),
                ) as r:
                    status, raw, rid = r.status, await r.read(), r.headers.get("x-request-id")
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
                raise ServiceUnreachable(self.url, str(e) or type(e).__name__) from None
            if status in TRANSIENT and attempt < self.retries:
                await asyncio.sleep(self._backoff(attempt))
                continue
            break
        if status != call.ok:
            raise _error(status, raw, rid)
        return _json(raw)

    # endpoints (same meaning as in `Client`) ---------------------------------------------
    async def create(
        self,
        image: ImageLike,
        *,
        key: str = "",
        collection: str = "",
        metadata: Mapping[str, MetaValue] | None = None,
        ttl: int | None = None,
        model: str | None = None,
        details: DetailsArg = False,
    ) -> Entity:
        call = self._create(image, model, collection, key, metadata, ttl, details)
        return Entity.parse(await self._do(call))

    async def list(
        self,
        *,
        model: str | None = None,
        collection: str | None = None,
        key: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page:
        return Page.parse(await self._do(self._list(model, collection, key, limit, after)))

    async def entities(
        self,
        *,
        model: str | None = None,
        collection: str | None = None,
        key: str | None = None,
        page_size: int = MAX_PAGE,
    ) -> AsyncIterator[Entity]:
        after: str | None = None
        while True:
            page = await self.list(
                model=model, collection=collection, key=key, limit=page_size, after=after
            )
            for e in page.entities:
                yield e
            if not page.next_after:
                return
            after = page.next_after

    async def get(self, uuid: str) -> Entity:
        return Entity.parse(await self._do(_Call("GET", _uuid_path(uuid))))

    async def patch(
        self,
        uuid: str,
        *,
        collection: str | None = None,
        key: str | None = None,
        metadata: Mapping[str, MetaValue] | None = None,
        ttl: int | None = None,
        image: ImageLike | None = None,
    ) -> Entity:
        call = self._patch(uuid, collection, key, metadata, ttl, image)
        return Entity.parse(await self._do(call))

    async def delete(self, uuid: str) -> None:
        await self._do(_Call("DELETE", _uuid_path(uuid), ok=204))

    async def detect(
        self, image: ImageLike, *, model: str | None = None, details: DetailsArg = True
    ) -> DetectResult:
        return DetectResult.parse(await self._do(self._detect(image, model, details)))

    async def search(
        self,
        image: ImageLike,
        *,
        collection: str | None = None,
        key: str | None = None,
        max_entities: int | None = None,
        threshold: float | None = None,
        model: str | None = None,
        details: DetailsArg = False,
    ) -> SearchResult:
        call = self._search(image, model, collection, key, max_entities, threshold, details)
        return SearchResult.parse(await self._do(call))

    async def compare(
        self,
        image_one: ImageLike,
        image_two: ImageLike,
        *,
        model: str | None = None,
        details: DetailsArg = False,
    ) -> CompareResult:
        call = self._compare(image_one, image_two, model, details)
        return CompareResult.parse(await self._do(call))

    async def compare_entity(
        self, uuid: str, image: ImageLike, *, model: str | None = None, details: DetailsArg = False
    ) -> EntityCompareResult:
        call = self._compare_entity(uuid, image, model, details)
        return EntityCompareResult.parse(await self._do(call))

    async def liveness(
        self, images: ImageLike | Sequence[ImageLike], *, model: str | None = None
    ) -> LivenessResult:
        return LivenessResult.parse(await self._do(self._liveness(images, model)))

    async def models(self) -> builtins.list[ModelInfo]:
        doc = await self._do(_Call("GET", API + "/models"))
        return [ModelInfo.parse(m) for m in doc["models"]]

    async def readyz(self) -> Readiness:
        try:
            await self._do(_Call("GET", "/readyz"))
        except ApiError as e:
            if e.status == 503:
                return Readiness(False, e.message)
            raise
        return Readiness(True)
