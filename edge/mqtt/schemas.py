"""Versioned JSON payloads of the bridge's own topics (status, entity, command responses).

Every payload carries `schema` = "<name>/<major>" so that subscribers can reject a format
they do not understand instead of misreading it. Recognition events are defined by the
camera package (edge.camera.events), which produces them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STATUS_SCHEMA = "edge-face.status/1"
ENTITY_SCHEMA = "edge-face.entity/1"
RESPONSE_SCHEMA = "edge-face.response/1"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class QueueStats(Wire):
    queued: int
    inFlight: int
    dropped: int
    delivered: int


class StatusPayload(Wire):
    schema_: str = Field(STATUS_SCHEMA, alias="schema")
    deviceId: str
    state: Literal["online", "offline"]
    time: str = Field(default_factory=utc_now)
    version: str
    protocol: str | None = None
    reason: str | None = None
    cameras: list[dict[str, Any]] = Field(default_factory=list)
    queue: QueueStats | None = None


class EntityEvent(Wire):
    schema_: str = Field(ENTITY_SCHEMA, alias="schema")
    eventId: str
    time: str = Field(default_factory=utc_now)
    deviceId: str
    action: Literal["created", "updated", "deleted"]
    entity: dict[str, Any]


class ErrorBody(Wire):
    code: int
    name: str
    message: str


class CommandResponse(Wire):
    schema_: str = Field(RESPONSE_SCHEMA, alias="schema")
    command: str
    ok: bool
    id: str | None = None
    time: str = Field(default_factory=utc_now)
    result: dict[str, Any] | None = None
    error: ErrorBody | None = None


def dump(model: BaseModel) -> bytes:
    """Compact JSON by alias (so `schema_` goes out as `schema`), nulls kept explicit."""
    return model.model_dump_json(by_alias=True).encode()
