"""Request parsing with the contract's exact error codes, and the response wire shapes.

pydantic's own error types do not map 1:1 onto the AnySee codes (110 missing, 111 wrong
JSON type, 112 bad value, 113 unknown model, 116 duplicate), and the messages must name the
field the way a client wrote it (`metadata[2].value`), so parsing is done by hand here. The
pydantic models at the bottom describe the wire shapes; the OpenAPI document is generated
from them and the tests validate real responses against them, so the two cannot drift.
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid as uuid_mod
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.config import Settings
from edge.errors import EdgeError
from edge.vision.types import DetailFlags

# Limits of the contract (api.md §2.3, §3) ----------------------------------------------------
MAX_TEXT = 256
MAX_METADATA = 10
RESERVED_METADATA = frozenset(
    {"id", "instanceId", "model", "collection", "key", "createdAt", "updatedAt", "expiresAt"}
)
METADATA_TYPES = ("string", "integer", "boolean", "float")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FLOAT32_MAX = 3.4028234663852886e38
#: [decision] the largest ttl accepted: keeps `now + ttl` far below the "never" sentinel.
TTL_MAX = 2**31 - 1
MAX_ENTITIES_DEFAULT, MAX_ENTITIES_MAX = 10, 1000
LIMIT_DEFAULT, LIMIT_MAX = 20, 1000
DETAIL_BLOCKS = ("position", "angle", "landmarks", "quality", "attributes")
LIVENESS_IMAGE_TYPES = ("RGB",)

_DIGITS_RE = re.compile(r"^[0-9]{1,9}$")
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)  # used with fullmatch: `$` would also match before a trailing newline
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

#: how much of a client's own text an error message quotes back
ECHO_CHARS = 64


def excerpt(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` as an error message may quote it: at most `limit` characters plus "…", with
    control, format and surrogate characters written as escapes.

    A message must help the client find its mistake, not reflect an 8 KB path or a
    terminal escape sequence back at whoever reads the log or the answer.
    """
    cut = text[:limit]
    out = "".join(
        ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
        else ch
        for ch in cut
    )
    return out + ("…" if len(text) > limit else "")


def has_surrogate(text: str) -> bool:
    """A lone UTF-16 surrogate (JSON `"\\ud800"`) parses into a str that is not valid
    Unicode: it cannot be stored or encoded as UTF-8, so it is refused as a bad value."""
    return _SURROGATE_RE.search(text) is not None


# Small typed readers -------------------------------------------------------------------------
_JSON_TYPE = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    dict: "an object",
    list: "an array",
}


def missing(name: str) -> EdgeError:
    return EdgeError(110, f"{name} is required")


def wrong_type(name: str, expected: str) -> EdgeError:
    return EdgeError(111, f"{name} must be {expected}")


def bad_value(name: str, why: str) -> EdgeError:
    return EdgeError(112, f"{name} {why}")


def check_text(v: str, name: str) -> str:
    """112 when `v` holds a lone surrogate (a bad value, like any other unusable string)."""
    if has_surrogate(v):
        raise bad_value(
            name, "must be valid Unicode text (it holds a lone UTF-16 surrogate); send UTF-8"
        )
    return v


def is_int(v: object) -> bool:
    """A JSON integer (bool is a subclass of int in Python, but not in JSON)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def require_object(body: object, name: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise wrong_type(name, "a JSON object")
    return body


def _get(obj: dict[str, Any], key: str, name: str, kind: type, *, required: bool) -> Any:
    """The value of `key` checked against a JSON type; None when absent (or null) and optional.

    [decision] a JSON null counts as absent: required → 110, optional → the default.
    """
    v = obj.get(key)
    if v is None:
        if required:
            raise missing(name)
        return None
    ok = (
        is_int(v)
        if kind is int
        else isinstance(v, kind) and not (kind is not bool and isinstance(v, bool))
    )
    if not ok:
        raise wrong_type(name, _JSON_TYPE[kind])
    return v


def _text(obj: dict[str, Any], key: str, prefix: str = "") -> str | None:
    """`collection` / `key`: a string of at most 256 characters ("" = none)."""
    name = prefix + key
    v = _get(obj, key, name, str, required=False)
    if v is not None and len(v) > MAX_TEXT:
        raise bad_value(name, f"must be at most {MAX_TEXT} characters")
    return None if v is None else check_text(v, name)


# Model names ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRef:
    """A model as the request named it (echoed back) and the local model it resolves to."""

    given: str
    canonical: str


def model_names(settings: Settings, entity: Literal["faces", "liveness"]) -> dict[str, str]:
    """Every accepted name (canonical + enabled aliases) → the canonical name."""
    n = settings.names
    canonical = n.face if entity == "faces" else n.liveness
    aliases = n.face_aliases if entity == "faces" else n.liveness_aliases
    out = {canonical: canonical}
    if n.aliases_enabled:
        out.update({a: canonical for a in aliases})
    return out


def resolve_model(
    name: str, settings: Settings, entity: Literal["faces", "liveness"], field_name: str = "model"
) -> ModelRef:
    names = model_names(settings, entity)
    canonical = names.get(name)
    if canonical is None:
        valid = ", ".join(names)
        raise EdgeError(
            113, f"{field_name} '{excerpt(name)}' is not a known {entity} model; use {valid}"
        )
    return ModelRef(given=name, canonical=canonical)


def parse_model(
    body: dict[str, Any], settings: Settings, entity: Literal["faces", "liveness"] = "faces"
) -> ModelRef:
    name = _get(body, "model", "model", str, required=True)
    return resolve_model(name, settings, entity)


# Image ---------------------------------------------------------------------------------------
@dataclass
class ImageRequest:
    """A validated `image` object; `data` is still base64 (decoded later, off the loop)."""

    field: str
    data: str
    area: dict[str, Any] | None = None
    auto_rotate: bool = False
    flags: DetailFlags = field(default_factory=DetailFlags)


def _data(obj: dict[str, Any], name: str) -> str:
    """`data`: a non-blank string (missing, null or blank → 110)."""
    v = _get(obj, "data", name, str, required=True)
    if not v.strip():
        raise EdgeError(110, f"{name} must not be empty")
    return v


def parse_return_details(obj: dict[str, Any], prefix: str) -> DetailFlags:
    rd = _get(obj, "returnDetails", prefix + "returnDetails", dict, required=False)
    if rd is None:
        return DetailFlags()
    vals = {}
    for block in DETAIL_BLOCKS:
        v = _get(rd, block, f"{prefix}returnDetails.{block}", bool, required=False)
        vals[block] = bool(v)
    return DetailFlags(**vals)


def parse_image(
    body: dict[str, Any], key: str = "image", *, required: bool = True
) -> ImageRequest | None:
    obj = _get(body, key, key, dict, required=required)
    if obj is None:
        return None
    data = _data(obj, f"{key}.data")
    area = _get(obj, "area", f"{key}.area", dict, required=False)
    auto = _get(obj, "autoRotate", f"{key}.autoRotate", bool, required=False)
    flags = parse_return_details(obj, f"{key}.")
    return ImageRequest(field=key, data=data, area=area, auto_rotate=bool(auto), flags=flags)


# Metadata ------------------------------------------------------------------------------------
def parse_metadata(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    items = _get(body, "metadata", "metadata", list, required=False)
    if items is None:
        return None
    if len(items) > MAX_METADATA:
        raise bad_value("metadata", f"must hold at most {MAX_METADATA} items (got {len(items)})")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        p = f"metadata[{i}]"
        if not isinstance(item, dict):
            raise wrong_type(p, "an object")
        name = _get(item, "name", f"{p}.name", str, required=True)
        if not name:
            raise bad_value(f"{p}.name", "must not be empty")
        check_text(name, f"{p}.name")
        if name in RESERVED_METADATA:
            raise bad_value(f"{p}.name", f"{name!r} is reserved")
        typ = _get(item, "type", f"{p}.type", str, required=True)
        if typ not in METADATA_TYPES:
            raise bad_value(f"{p}.type", f"must be one of {', '.join(METADATA_TYPES)}")
        if "value" not in item or item["value"] is None:
            raise missing(f"{p}.value")
        value = _metadata_value(item["value"], typ, f"{p}.value")
        if name in seen:
            raise EdgeError(116, f"{p}.name '{excerpt(name)}' is duplicated")
        seen.add(name)
        out.append({"name": name, "type": typ, "value": value})
    return out


def _metadata_value(v: object, typ: str, name: str) -> str | int | bool | float:
    """A value must match its declared type; a mismatch is a bad value (112), not a bad type."""
    if typ == "string":
        if not isinstance(v, str):
            raise bad_value(name, "must be a string")
        return check_text(v, name)
    if typ == "boolean":
        if not isinstance(v, bool):
            raise bad_value(name, "must be a boolean")
        return v
    if typ == "integer":
        if not is_int(v):
            raise bad_value(name, "must be an integer")
        if not INT32_MIN <= v <= INT32_MAX:  # type: ignore[operator]
            raise bad_value(name, "must fit in a 32-bit signed integer")
        return int(v)  # type: ignore[call-overload]
    if not is_number(v):
        raise bad_value(name, "must be a float")
    f = float(v)  # type: ignore[arg-type]
    if not math.isfinite(f) or abs(f) > FLOAT32_MAX:
        raise bad_value(name, "must be a finite 32-bit float")
    return f


# Simple scalars ------------------------------------------------------------------------------
def parse_ttl(body: dict[str, Any]) -> int | None:
    v = _get(body, "ttl", "ttl", int, required=False)
    if v is None:
        return None
    if v != -1 and v < 1:
        raise bad_value("ttl", "must be -1 (never expires) or >= 1")
    if v > TTL_MAX:
        raise bad_value("ttl", f"must be <= {TTL_MAX}")
    return v


def parse_max_entities(body: dict[str, Any]) -> int:
    key = "maxEntities" if body.get("maxEntities") is not None else "maxFaces"
    v = _get(body, key, key, int, required=False)
    if v is None:
        return MAX_ENTITIES_DEFAULT
    if not 1 <= v <= MAX_ENTITIES_MAX:
        raise bad_value(key, f"must be between 1 and {MAX_ENTITIES_MAX}")
    return v


def parse_threshold(body: dict[str, Any]) -> float:
    v = body.get("threshold")
    if v is None:
        return 0.0
    if not is_number(v):
        raise wrong_type("threshold", "a number")
    f = float(v)
    if not math.isfinite(f) or not 0.0 <= f <= 1.0:
        raise bad_value("threshold", "must be between 0 and 1")
    return f


# Query parameters and path ids ---------------------------------------------------------------
def parse_uuid(text: str) -> str | None:
    """The canonical lower-case form, or None when `text` is not a uuid."""
    if not _UUID_RE.fullmatch(text):
        return None
    return str(uuid_mod.UUID(text))


def parse_limit(query: dict[str, str] | Any) -> int:
    raw = query.get("limit")
    if raw is None:
        return LIMIT_DEFAULT
    if not _DIGITS_RE.fullmatch(raw):
        raise bad_value("limit", f"must be an integer between 1 and {LIMIT_MAX}")
    v = int(raw)
    if not 1 <= v <= LIMIT_MAX:
        raise bad_value("limit", f"must be between 1 and {LIMIT_MAX}")
    return v


def parse_after(query: dict[str, str] | Any) -> str | None:
    raw = query.get("after")
    if raw is None or raw == "":
        return None
    u = parse_uuid(raw)
    if u is None:
        raise bad_value("after", "must be a uuid")
    return u


def parse_query_text(query: dict[str, str] | Any, key: str) -> str | None:
    """A `collection`/`key` filter; [decision] an empty value means "no filter"."""
    v = query.get(key)
    if v is not None and len(v) > MAX_TEXT:
        raise bad_value(key, f"must be at most {MAX_TEXT} characters")
    return check_text(v, key) if v else None


# Whole requests ------------------------------------------------------------------------------
@dataclass
class CreateRequest:
    model: ModelRef
    image: ImageRequest
    collection: str = ""
    key: str = ""
    metadata: list[dict[str, Any]] = field(default_factory=list)
    ttl: int = -1


def _model_and_image(
    body: object, settings: Settings
) -> tuple[dict[str, Any], ModelRef, ImageRequest]:
    """The body object, its `model` and its required `image`, checked in that order."""
    b = require_object(body)
    model = parse_model(b, settings)
    image = parse_image(b)
    assert image is not None  # required=True raises instead of returning None
    return b, model, image


def parse_create(body: object, settings: Settings) -> CreateRequest:
    b, model, image = _model_and_image(body, settings)
    return CreateRequest(
        model=model,
        image=image,
        collection=_text(b, "collection") or "",
        key=_text(b, "key") or "",
        metadata=parse_metadata(b) or [],
        ttl=parse_ttl(b) or -1,
    )


@dataclass
class PatchRequest:
    """Fields a PATCH carries; None = not given (left unchanged)."""

    model: ModelRef | None
    image: ImageRequest | None
    collection: str | None
    key: str | None
    metadata: list[dict[str, Any]] | None
    ttl: int | None

    @property
    def updates_anything(self) -> bool:
        return any(
            v is not None for v in (self.image, self.collection, self.key, self.metadata, self.ttl)
        )


def parse_patch(body: object, settings: Settings) -> PatchRequest:
    b = require_object(body)
    model = None
    if b.get("model") is not None:
        model = parse_model(b, settings)
    req = PatchRequest(
        model=model,
        image=parse_image(b, required=False),
        collection=_text(b, "collection"),
        key=_text(b, "key"),
        metadata=parse_metadata(b),
        ttl=parse_ttl(b),
    )
    if not req.updates_anything:
        raise EdgeError(110, "at least one of collection, key, metadata, ttl, image is required")
    return req


@dataclass
class SearchRequest:
    model: ModelRef
    image: ImageRequest
    collection: str | None
    key: str | None
    max_entities: int
    threshold: float


def parse_search(body: object, settings: Settings) -> SearchRequest:
    b, model, image = _model_and_image(body, settings)
    return SearchRequest(
        model=model,
        image=image,
        # [decision] "" filters nothing: cloud clients send empty strings for "any"
        collection=_text(b, "collection") or None,
        key=_text(b, "key") or None,
        max_entities=parse_max_entities(b),
        threshold=parse_threshold(b),
    )


@dataclass
class ImageOnlyRequest:
    """detect and /{uuid}/compare: a model and one image."""

    model: ModelRef
    image: ImageRequest


def parse_model_image(body: object, settings: Settings) -> ImageOnlyRequest:
    _, model, image = _model_and_image(body, settings)
    return ImageOnlyRequest(model=model, image=image)


@dataclass
class CompareRequest:
    model: ModelRef
    image_one: ImageRequest
    image_two: ImageRequest


def parse_compare(body: object, settings: Settings) -> CompareRequest:
    b = require_object(body)
    model = parse_model(b, settings)
    one = parse_image(b, "imageOne")
    two = parse_image(b, "imageTwo")
    assert one is not None and two is not None
    return CompareRequest(model=model, image_one=one, image_two=two)


# Liveness (api.md §4) ------------------------------------------------------------------------
@dataclass
class LivenessImage:
    index: int
    type: str
    data: str
    auto_rotate: bool
    position: int  # where it stood in the request's array, to name it in errors

    @property
    def field(self) -> str:
        return f"images[{self.position}]"


@dataclass
class LivenessRequest:
    model: ModelRef
    images: list[LivenessImage]  # ordered by index, all validated


def parse_liveness(body: object, settings: Settings, images_needed: int = 1) -> LivenessRequest:
    b = require_object(body)
    model = parse_model(b, settings, "liveness")
    items = _get(b, "images", "images", list, required=True)
    parsed: list[LivenessImage] = []
    for i, item in enumerate(items):
        p = f"images[{i}]"
        if not isinstance(item, dict):
            raise wrong_type(p, "an object")
        index = _get(item, "index", f"{p}.index", int, required=True)
        if index < 0:
            raise bad_value(f"{p}.index", "must be >= 0")
        typ = _get(item, "type", f"{p}.type", str, required=True)
        if typ not in LIVENESS_IMAGE_TYPES:
            raise bad_value(f"{p}.type", f"must be one of {', '.join(LIVENESS_IMAGE_TYPES)}")
        data = _data(item, f"{p}.data")
        auto = _get(item, "autoRotate", f"{p}.autoRotate", bool, required=False)
        parsed.append(
            LivenessImage(index=index, type=typ, data=data, auto_rotate=bool(auto), position=i)
        )
    seen: dict[int, int] = {}
    for pos, img in enumerate(parsed):
        if img.index in seen:
            raise EdgeError(
                116, f"images[{pos}].index {img.index} repeats images[{seen[img.index]}].index"
            )
        seen[img.index] = pos
    parsed.sort(key=lambda im: im.index)
    for expected, img in enumerate(parsed):
        if img.index != expected:
            raise bad_value(
                f"images[{seen[img.index]}].index",
                f"must count up from 0 by 1 (index {expected} is missing)",
            )
    if len(parsed) < images_needed:
        raise EdgeError(
            219, f"images holds {len(parsed)} image(s); model {model.given} needs {images_needed}"
        )
    return LivenessRequest(model=model, images=parsed)


# Response wire shapes (documentation + response validation in tests) --------------------------
class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AreaIn(Wire):
    top: int
    left: int
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class ReturnDetailsIn(Wire):
    position: bool = False
    angle: bool = False
    landmarks: bool = False
    quality: bool = False
    attributes: bool = False


class ImageIn(Wire):
    data: str = Field(description="base64 JPG/PNG/GIF; a data: URL prefix is accepted")
    area: AreaIn | None = None
    autoRotate: bool = False
    returnDetails: ReturnDetailsIn | None = None


class MetadataItem(Wire):
    name: str
    type: Literal["string", "integer", "boolean", "float"]
    value: str | int | bool | float


class CreateFaceIn(Wire):
    model: str
    image: ImageIn
    collection: str = Field("", max_length=MAX_TEXT)
    key: str = Field("", max_length=MAX_TEXT)
    metadata: list[MetadataItem] = Field(default_factory=list, max_length=MAX_METADATA)
    ttl: int = Field(-1, description="seconds; -1 = never expires")


class PatchFaceIn(Wire):
    model: str | None = Field(None, description="must equal the entity's model if given")
    image: ImageIn | None = None
    collection: str | None = Field(None, max_length=MAX_TEXT)
    key: str | None = Field(None, max_length=MAX_TEXT)
    metadata: list[MetadataItem] | None = Field(None, max_length=MAX_METADATA)
    ttl: int | None = None


class SearchIn(Wire):
    model: str
    image: ImageIn
    collection: str | None = Field(None, max_length=MAX_TEXT)
    key: str | None = Field(None, max_length=MAX_TEXT)
    maxEntities: int = Field(MAX_ENTITIES_DEFAULT, ge=1, le=MAX_ENTITIES_MAX)
    maxFaces: int | None = Field(None, description="alias of maxEntities (older clients)")
    threshold: float = Field(0.0, ge=0, le=1)


class ModelImageIn(Wire):
    model: str
    image: ImageIn


class CompareIn(Wire):
    model: str
    imageOne: ImageIn
    imageTwo: ImageIn


class LivenessImageIn(Wire):
    index: int = Field(ge=0)
    type: Literal["RGB"]
    data: str
    autoRotate: bool = False


class LivenessIn(Wire):
    model: str
    images: list[LivenessImageIn]


class Position(Wire):
    top: int
    left: int
    width: int
    height: int


class Angle(Wire):
    pitch: float
    yaw: float
    roll: float
    centerX: int
    centerY: int


class Point(Wire):
    x: int
    y: int


class Completeness(Wire):
    total: float
    leftEyeBrow: float
    rightEyeBrow: float
    leftEye: float
    rightEye: float
    nose: float
    mouth: float
    faceContour: float


class Quality(Wire):
    brightness: float = Field(ge=-1, le=1)
    sharpness: float = Field(ge=0, le=1)
    mouthClosed: float = Field(ge=0, le=1)
    centered: float = Field(ge=0, le=1)
    size: float = Field(ge=0, le=1)
    integrity: float = Field(ge=0, le=1)
    completeness: Completeness


class Age(Wire):
    value: int
    upperLimit: int
    lowerLimit: int


class Estimate(Wire):
    value: str
    certainty: float = Field(ge=0, le=1)


class Attributes(Wire):
    age: Age | None = None
    gender: Estimate | None = None
    emotions: list[Estimate] | None = Field(None, min_length=8, max_length=8)
    mask: Estimate | None = None
    glasses: Estimate | None = None
    hat: Estimate | None = None
    helmet: Estimate | None = None
    bangs: Estimate | None = None
    facialHair: Estimate | None = None
    headphones: Estimate | None = None


class Details(Wire):
    """Only the blocks a request asked for appear."""

    position: Position | None = None
    angle: Angle | None = None
    landmarks: list[Point] | None = Field(None, min_length=106, max_length=106)
    quality: Quality | None = None
    attributes: Attributes | None = None


class Uploaded(Wire):
    details: Details


class EntityOut(Wire):
    uuid: str
    model: str
    collection: str
    key: str
    metadata: list[MetadataItem]
    createdAt: str
    updatedAt: str
    expiresAt: str


class CreatedEntityOut(EntityOut):
    entityUploaded: Uploaded | None = None


class EntityListOut(Wire):
    total: int
    count: int
    limit: int
    nextAfter: str
    entities: list[EntityOut]


class FoundEntity(EntityOut):
    similarityScore: float = Field(ge=0, le=1)


class SearchOut(Wire):
    model: str
    count: int
    maxEntities: int
    threshold: float
    entitiesFound: list[FoundEntity]
    entityUploaded: Uploaded


class DetectedEntity(Wire):
    details: Details
    rotated: int | None = Field(None, description="only when autoRotate was requested")


class DetectOut(Wire):
    model: str
    count: int
    entities: list[DetectedEntity]


class ComparedImages(Wire):
    imageOne: Uploaded
    imageTwo: Uploaded


class CompareOut(Wire):
    model: str
    similarityScore: float = Field(ge=0, le=1)
    entities: ComparedImages


class CompareEntityOut(Wire):
    model: str
    similarityScore: float = Field(ge=0, le=1)
    entity: EntityOut
    entityUploaded: Uploaded


class LivenessOut(Wire):
    model: str
    spoofScore: float = Field(ge=0, le=1)
    position: Position


class ModelOut(BaseModel):
    """One entry of GET /models; `measured` and `components` carry evaluation/runtime facts."""

    model_config = ConfigDict(extra="allow")

    name: str
    aliases: list[str]
    entity: Literal["faces", "liveness"]
    vectorDimension: int | None = None
    capabilities: dict[str, bool]
    attributes: list[str]
    recommendedThreshold: float
    measured: dict[str, Any]
    components: list[dict[str, Any]]


class ModelsOut(Wire):
    models: list[ModelOut]


class ErrorOut(Wire):
    code: int
    name: str
    message: str
