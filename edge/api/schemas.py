"""Requests (bodies and the list query): one pydantic model per request parses and documents
it; at the bottom, the response wire shapes (documented, and checked against real answers by
the tests).

The models are validated in strict mode (JSON types as sent: `"5"` is not an integer, `true`
is not a number), fields in declaration order, and the FIRST error wins: declaration order
is the contract's precedence. What pydantic reports is turned into the contract's code by
one table, `ERROR_CODES` (110 missing, 111 wrong JSON type), and every rule pydantic has no
type for (ttl -1 or >= 1, reserved metadata names, 113 unknown model, 116 duplicates ...) is
a `Rule` annotation that checks the value, names its code and words, and adds its constraint
to the JSON schema: written once, so the OpenAPI document and the parser cannot drift (a
property test generates bodies from the document to prove it). Messages name the field the
way the client wrote it (`metadata[2].value`) and quote client text only as an `excerpt`.
Handlers get plain typed requests (`CreateRequest` ...) built from the validated models.

[decision] a JSON null counts as absent (a required field → 110, an optional one → its
default); unknown fields are ignored (cloud clients send extra fields). `image.area` is
checked later, against the decoded image (`edge.imaging.area`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import unicodedata
import uuid as uuid_mod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, ErrorDetails, PydanticCustomError, PydanticKnownError
from pydantic_core import core_schema as cs

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


def wrong_type(name: str, expected: str) -> EdgeError:
    return EdgeError(111, f"{name} must be {expected}")


UNICODE_WHY = "must be valid Unicode text (it holds a lone UTF-16 surrogate); send UTF-8"


# From pydantic's errors to the contract -----------------------------------------------------
#: pydantic error type -> (contract code, what the message says after the field name).
#: `Rule` failures carry their own code in their type (`edge_112`) and their own words.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "missing": (110, "is required"),
    "string_type": (111, "must be a string"),
    "int_type": (111, "must be an integer"),
    "float_type": (111, "must be a number"),
    "bool_type": (111, "must be a boolean"),
    "dict_type": (111, "must be an object"),
    "model_type": (111, "must be an object"),
    "list_type": (111, "must be an array"),
}
_RULE_TYPE = "edge_{code}"


def field_name(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as the client wrote the field: `("metadata", 2, "value")` →
    `metadata[2].value`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def contract_error(error: ErrorDetails) -> EdgeError:
    """The contract error of one pydantic error (a model-level rule names no field)."""
    kind = error["type"]
    if kind.startswith("edge_"):
        code, why = int(kind.removeprefix("edge_")), error["msg"]
    else:
        # an unmapped type would be a gap in this table: 112 keeps it a client error
        code, why = ERROR_CODES.get(kind, (112, f"is not valid ({kind})"))
    name = field_name(tuple(error["loc"]))
    return EdgeError(code, f"{name} {why}" if name else why)


class RuleError(PydanticCustomError):
    """A contract rule failed: `code` and `why` travel in pydantic's error list."""

    def __new__(cls, code: int, why: str) -> RuleError:
        return super().__new__(cls, _RULE_TYPE.format(code=code), "{why}", {"why": why})


def rule_failure(loc: tuple[int | str, ...], code: int, why: str, value: object) -> ValidationError:
    """A rule failure at a location inside the value being validated (a list item's field):
    pydantic prefixes the location of the value itself."""
    return ValidationError.from_exception_data(
        "rule", [{"type": RuleError(code, why), "loc": loc, "input": value}]
    )


@dataclass(frozen=True, eq=False)  # hashed by identity: `typing` hashes annotations
class Rule:
    """One contract rule of a field: the check, the code and words of a failure, and the
    JSON-schema keywords that document it. `raw` checks the value as sent, before its type
    and items (so a too-long list is refused before its items are looked at)."""

    ok: Callable[[Any], bool]
    why: str | Callable[[Any], str]
    code: int = 112
    schema: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    raw: bool = False

    def check(self, value: Any) -> Any:
        if not self.ok(value):
            why = self.why if isinstance(self.why, str) else self.why(value)
            raise RuleError(self.code, why)
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        inner = handler(source)
        if self.raw:
            return cs.no_info_before_validator_function(self.check, inner)
        return cs.no_info_after_validator_function(self.check, inner)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        out.update(self.schema)
        return out


def one_of(values: tuple[str, ...]) -> Rule:
    return Rule(
        lambda v: v in values, f"must be one of {', '.join(values)}", 112, {"enum": list(values)}
    )


@dataclass(frozen=True)
class JsonString:
    """A JSON string exactly as sent. pydantic's own `str` refuses a lone surrogate with a
    type error, but the contract calls it a bad value (112), an unknown model (113) or image
    data that does not decode (214), depending on the field: the rules decide."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return cs.no_info_plain_validator_function(_string)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string"}


def _string(v: object) -> str:
    if isinstance(v, str):
        return v
    raise PydanticKnownError("string_type")


@dataclass(frozen=True)
class CheckedLater:
    """An object whose fields are checked later, against the decoded image (`image.area`):
    parsed here only as a JSON object, documented as `model`."""

    model: type[BaseModel]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        # a wrap validator that never calls the model's validator: its schema documents
        return cs.no_info_wrap_validator_function(_object, handler.generate_schema(self.model))


def _object(v: object, _model: cs.ValidatorFunctionWrapHandler) -> dict[str, Any]:
    if isinstance(v, dict):
        return v
    raise PydanticKnownError("dict_type")


@dataclass(frozen=True)
class ParseContext:
    """What validation needs beyond the body: the served model names, images needed."""

    settings: Settings
    images_needed: int = 1


@dataclass(frozen=True)
class KnownModel:
    """113 unless the name (or an enabled alias) names the served model of `entity`."""

    entity: Literal["faces", "liveness"]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return cs.with_info_after_validator_function(self.check, handler(source))

    def check(self, name: str, info: ValidationInfo) -> str:
        ctx = info.context
        if isinstance(ctx, ParseContext) and name not in model_names(ctx.settings, self.entity):
            valid = ", ".join(model_names(ctx.settings, self.entity))
            raise RuleError(
                113, f"'{excerpt(name)}' is not a known {self.entity} model; use {valid}"
            )
        return name


# Field types ---------------------------------------------------------------------------------
Str = Annotated[str, JsonString()]
Text = Annotated[
    Str,
    Rule(
        lambda v: len(v) <= MAX_TEXT,
        f"must be at most {MAX_TEXT} characters",
        112,
        {"maxLength": MAX_TEXT},
    ),
    Rule(lambda v: not has_surrogate(v), UNICODE_WHY),
]
FaceModel = Annotated[Str, KnownModel("faces")]
LivenessModel = Annotated[Str, KnownModel("liveness")]
ImageData = Annotated[
    Str, Rule(lambda v: bool(v.strip()), "must not be empty", 110, {"pattern": r"\S"})
]
Count = Annotated[
    int,
    Rule(
        lambda v: 1 <= v <= MAX_ENTITIES_MAX,
        f"must be between 1 and {MAX_ENTITIES_MAX}",
        112,
        {"minimum": 1, "maximum": MAX_ENTITIES_MAX},
    ),
]
Ttl = Annotated[
    int,
    Rule(
        lambda v: v == -1 or v >= 1,
        "must be -1 (never expires) or >= 1",
        112,
        {"minimum": -1, "not": {"const": 0}},
    ),
    Rule(lambda v: v <= TTL_MAX, f"must be <= {TTL_MAX}", 112, {"maximum": TTL_MAX}),
]
Score = Annotated[
    float,
    Rule(
        lambda v: math.isfinite(v) and 0.0 <= v <= 1.0,
        "must be between 0 and 1",
        112,
        {"minimum": 0, "maximum": 1},
    ),
]


def _not_reserved(v: str) -> bool:
    return v not in RESERVED_METADATA


MetadataName = Annotated[
    Str,
    Rule(lambda v: v != "", "must not be empty", 112, {"minLength": 1}),
    Rule(lambda v: not has_surrogate(v), UNICODE_WHY),
    Rule(
        _not_reserved,
        lambda v: f"{v!r} is reserved",
        112,
        {"not": {"enum": sorted(RESERVED_METADATA)}},
    ),
]


@dataclass(frozen=True)
class JsonScalar:
    """A metadata value: any JSON scalar here; it must match its item's `type` (a mismatch
    is a bad value, 112, not a bad type), which `MetadataItem` checks."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return cs.any_schema()

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        kinds = ("string", "integer", "boolean", "number")
        return {"anyOf": [{"type": k} for k in kinds]}


def typed_value(v: object, typ: str) -> str | int | bool | float:
    """The value as its declared type stores it; RuleError(112) when it does not fit."""
    if typ == "string":
        if not isinstance(v, str):
            raise RuleError(112, "must be a string")
        if has_surrogate(v):
            raise RuleError(112, UNICODE_WHY)
        return v
    if typ == "boolean":
        if not isinstance(v, bool):
            raise RuleError(112, "must be a boolean")
        return v
    if typ == "integer":
        if not isinstance(v, int) or isinstance(v, bool):
            raise RuleError(112, "must be an integer")
        if not INT32_MIN <= v <= INT32_MAX:
            raise RuleError(112, "must fit in a 32-bit signed integer")
        return v
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise RuleError(112, "must be a float")
    f = float(v)
    if not math.isfinite(f) or abs(f) > FLOAT32_MAX:
        raise RuleError(112, "must be a finite 32-bit float")
    return f


def _unique_names(items: object, handler: cs.ValidatorFunctionWrapHandler) -> Any:
    """116 at the first repeated name, but only once every earlier item and the repeating
    item itself are valid: their own errors come first."""
    if isinstance(items, list):
        seen: set[str] = set()
        for i, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                handler(items[: i + 1])
                raise rule_failure((i, "name"), 116, f"'{excerpt(name)}' is duplicated", name)
            seen.add(name)
    return handler(items)


@dataclass(frozen=True)
class UniqueNames:
    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return cs.no_info_wrap_validator_function(_unique_names, handler(source))


# Request bodies ------------------------------------------------------------------------------
class Request(BaseModel):
    """Base of every request body: strict JSON types, unknown fields ignored, null = absent."""

    model_config = ConfigDict(strict=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class AreaIn(BaseModel):
    """`image.area`: checked against the decoded image by `edge.imaging.area`."""

    top: int
    left: int
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class ReturnDetailsIn(Request):
    position: bool = False
    angle: bool = False
    landmarks: bool = False
    quality: bool = False
    attributes: bool = False


class ImageIn(Request):
    data: ImageData
    area: Annotated[dict[str, Any], CheckedLater(AreaIn)] | None = None
    autoRotate: bool = False
    returnDetails: ReturnDetailsIn | None = None


class MetadataItem(Request):
    name: MetadataName
    type: Annotated[Str, one_of(METADATA_TYPES)]
    value: Annotated[Any, JsonScalar()]

    @field_validator("value")
    @classmethod
    def _matches_type(cls, v: object, info: ValidationInfo) -> object:
        typ = info.data.get("type")
        return v if typ is None else typed_value(v, typ)  # no type: its own error came first


Metadata = Annotated[
    list[MetadataItem],
    UniqueNames(),
    Rule(
        lambda v: not isinstance(v, list) or len(v) <= MAX_METADATA,
        lambda v: f"must hold at most {MAX_METADATA} items (got {len(v)})",
        112,
        {"maxItems": MAX_METADATA},
        raw=True,
    ),
]


class CreateFaceIn(Request):
    model: FaceModel
    image: ImageIn
    collection: Text = ""
    key: Text = ""
    metadata: Metadata = Field(default_factory=list)
    ttl: Ttl = -1


class PatchFaceIn(Request):
    model: FaceModel | None = None
    image: ImageIn | None = None
    collection: Text | None = None
    key: Text | None = None
    metadata: Metadata | None = None
    ttl: Ttl | None = None

    @model_validator(mode="after")
    def _updates_something(self) -> PatchFaceIn:
        if self.model_fields_set <= {"model"}:
            raise RuleError(
                110, "at least one of collection, key, metadata, ttl, image is required"
            )
        return self


class SearchIn(Request):
    model: FaceModel
    image: ImageIn
    collection: Text = ""
    key: Text = ""
    maxEntities: Count = MAX_ENTITIES_DEFAULT
    maxFaces: Count | None = None
    threshold: Score = 0.0

    @model_validator(mode="before")
    @classmethod
    def _max_entities_wins(cls, data: Any) -> Any:
        """[decision] with both given, `maxFaces` (the older name) is ignored, unread."""
        if isinstance(data, dict) and data.get("maxEntities") is not None:
            return {k: v for k, v in data.items() if k != "maxFaces"}
        return data


class ModelImageIn(Request):
    model: FaceModel
    image: ImageIn


class CompareIn(Request):
    model: FaceModel
    imageOne: ImageIn
    imageTwo: ImageIn


class LivenessImageIn(Request):
    index: Annotated[int, Rule(lambda v: v >= 0, "must be >= 0", 112, {"minimum": 0})]
    type: Annotated[Str, one_of(LIVENESS_IMAGE_TYPES)]
    data: ImageData
    autoRotate: bool = False


def _indices_count_up(images: list[LivenessImageIn]) -> list[LivenessImageIn]:
    """Indices are 0, 1, 2 … with no repeat (116) and no gap (112), in any array order."""
    seen: dict[int, int] = {}
    for pos, img in enumerate(images):
        if img.index in seen:
            why = f"{img.index} repeats images[{seen[img.index]}].index"
            raise rule_failure((pos, "index"), 116, why, img.index)
        seen[img.index] = pos
    for expected, index in enumerate(sorted(seen)):
        if index != expected:
            why = f"must count up from 0 by 1 (index {expected} is missing)"
            raise rule_failure((seen[index], "index"), 112, why, index)
    return images


class LivenessIn(Request):
    model: LivenessModel
    images: Annotated[list[LivenessImageIn], AfterValidator(_indices_count_up)] = Field(
        json_schema_extra={"minItems": 1}
    )

    @model_validator(mode="after")
    def _enough_images(self, info: ValidationInfo) -> LivenessIn:
        """219 (not a schema violation): the served model needs this many images."""
        needed = info.context.images_needed if isinstance(info.context, ParseContext) else 1
        if len(self.images) < needed:
            why = f"images holds {len(self.images)} image(s); model {self.model} needs {needed}"
            raise RuleError(219, why)
        return self


# Parsing: the typed requests the handlers use --------------------------------------------------
R = TypeVar("R", bound=Request)


def validate(model: type[R], body: object, context: ParseContext) -> R:
    """`body` as `model`, or the contract error of its first problem (declaration order)."""
    if not isinstance(body, dict):
        raise wrong_type("body", "a JSON object")
    try:
        return model.model_validate(body, context=context)
    except ValidationError as e:
        raise contract_error(e.errors(include_url=False)[0]) from None


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


@dataclass
class ImageRequest:
    """A validated `image` object; `data` is still base64 (decoded later, off the loop)."""

    field: str
    data: str
    area: dict[str, Any] | None = None
    auto_rotate: bool = False
    flags: DetailFlags = dataclasses.field(default_factory=DetailFlags)


def image_request(image: ImageIn, name: str) -> ImageRequest:
    details = image.returnDetails or ReturnDetailsIn()
    return ImageRequest(
        field=name,
        data=image.data,
        area=image.area,
        auto_rotate=image.autoRotate,
        flags=DetailFlags(**details.model_dump()),
    )


def _metadata(items: list[MetadataItem]) -> list[dict[str, Any]]:
    return [{"name": m.name, "type": m.type, "value": m.value} for m in items]


@dataclass
class CreateRequest:
    model: ModelRef
    image: ImageRequest
    collection: str = ""
    key: str = ""
    metadata: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    ttl: int = -1


def parse_create(body: object, settings: Settings) -> CreateRequest:
    m = validate(CreateFaceIn, body, ParseContext(settings))
    return CreateRequest(
        model=resolve_model(m.model, settings, "faces"),
        image=image_request(m.image, "image"),
        collection=m.collection,
        key=m.key,
        metadata=_metadata(m.metadata),
        ttl=m.ttl,
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
    m = validate(PatchFaceIn, body, ParseContext(settings))
    return PatchRequest(
        model=None if m.model is None else resolve_model(m.model, settings, "faces"),
        image=None if m.image is None else image_request(m.image, "image"),
        collection=m.collection,
        key=m.key,
        metadata=None if m.metadata is None else _metadata(m.metadata),
        ttl=m.ttl,
    )


@dataclass
class SearchRequest:
    model: ModelRef
    image: ImageRequest
    collection: str | None
    key: str | None
    max_entities: int
    threshold: float


def parse_search(body: object, settings: Settings) -> SearchRequest:
    m = validate(SearchIn, body, ParseContext(settings))
    return SearchRequest(
        model=resolve_model(m.model, settings, "faces"),
        image=image_request(m.image, "image"),
        # [decision] "" filters nothing: cloud clients send empty strings for "any"
        collection=m.collection or None,
        key=m.key or None,
        max_entities=m.maxFaces if m.maxFaces is not None else m.maxEntities,
        threshold=float(m.threshold),
    )


@dataclass
class ImageOnlyRequest:
    """detect and /{uuid}/compare: a model and one image."""

    model: ModelRef
    image: ImageRequest


def parse_model_image(body: object, settings: Settings) -> ImageOnlyRequest:
    m = validate(ModelImageIn, body, ParseContext(settings))
    return ImageOnlyRequest(
        model=resolve_model(m.model, settings, "faces"), image=image_request(m.image, "image")
    )


@dataclass
class CompareRequest:
    model: ModelRef
    image_one: ImageRequest
    image_two: ImageRequest


def parse_compare(body: object, settings: Settings) -> CompareRequest:
    m = validate(CompareIn, body, ParseContext(settings))
    return CompareRequest(
        model=resolve_model(m.model, settings, "faces"),
        image_one=image_request(m.imageOne, "imageOne"),
        image_two=image_request(m.imageTwo, "imageTwo"),
    )


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
    m = validate(LivenessIn, body, ParseContext(settings, images_needed))
    images = [
        LivenessImage(index=i.index, type=i.type, data=i.data, auto_rotate=i.autoRotate, position=p)
        for p, i in enumerate(m.images)
    ]
    images.sort(key=lambda im: im.index)
    return LivenessRequest(model=resolve_model(m.model, settings, "liveness"), images=images)


# Query parameters and path ids ---------------------------------------------------------------
def parse_uuid(text: str) -> str | None:
    """The canonical lower-case form, or None when `text` is not a uuid."""
    if not _UUID_RE.fullmatch(text):
        return None
    return str(uuid_mod.UUID(text))


@dataclass(frozen=True)
class QueryInt:
    """An integer query parameter: digits only (a query string has no JSON types, so
    anything else is a bad value, 112), within [lo, hi]."""

    lo: int
    hi: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return cs.no_info_plain_validator_function(self.parse)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}

    def parse(self, raw: object) -> int:
        if not isinstance(raw, str) or not _DIGITS_RE.fullmatch(raw):
            raise RuleError(112, f"must be an integer between {self.lo} and {self.hi}")
        if not self.lo <= int(raw) <= self.hi:
            raise RuleError(112, f"must be between {self.lo} and {self.hi}")
        return int(raw)


Cursor = Annotated[
    Str,
    Rule(lambda v: v == "" or parse_uuid(v) is not None, "must be a uuid", 112, {"format": "uuid"}),
]


class ListQuery(Request):
    """GET /api/v1/entities/faces. [decision] an empty `collection`, `key` or `after`
    means "no filter" / "from the start"; a repeated parameter counts once (the first)."""

    model: FaceModel | None = None
    collection: Text | None = None
    key: Text | None = None
    limit: Annotated[int, QueryInt(1, LIMIT_MAX)] = LIMIT_DEFAULT
    after: Cursor | None = None


@dataclass(frozen=True)
class ListRequest:
    model: str | None  # canonical name
    collection: str | None
    key: str | None
    limit: int
    after: str  # "" = from the start


def parse_list_query(query: Mapping[str, str], settings: Settings) -> ListRequest:
    given = {k: query[k] for k in ListQuery.model_fields if k in query}
    q = validate(ListQuery, given, ParseContext(settings))
    return ListRequest(
        model=None if q.model is None else resolve_model(q.model, settings, "faces").canonical,
        collection=q.collection or None,
        key=q.key or None,
        limit=q.limit,
        after=parse_uuid(q.after or "") or "",
    )


# Response wire shapes (documentation + response validation in tests) --------------------------
class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetadataOut(Wire):
    name: str
    type: Literal["string", "integer", "boolean", "float"]
    value: str | int | bool | float


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
    metadata: list[MetadataOut]
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
