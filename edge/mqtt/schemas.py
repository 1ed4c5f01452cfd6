"""Versioned JSON payloads of the bridge's own topics (status, entity, command responses).

Every payload carries `schema` = "<name>/<major>" so that subscribers can reject a format
they do not understand instead of misreading it. Recognition events are produced by the
camera package as typed values and rendered in `edge.camera.payload`.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.timefmt import utc_now_ms

STATUS_SCHEMA = "edge-face.status/1"
ENTITY_SCHEMA = "edge-face.entity/1"
RESPONSE_SCHEMA = "edge-face.response/1"

DeviceState = Literal["online", "offline"]
EntityAction = Literal["created", "updated", "deleted"]


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
    state: DeviceState
    time: str = Field(default_factory=utc_now_ms)
    version: str
    protocol: str | None = None
    reason: str | None = None
    cameras: list[dict[str, Any]] = Field(default_factory=list)
    queue: QueueStats | None = None
    #: fleet sync state (`edge.sync.service.SyncService.mqtt_state`) when sync is enabled
    sync: dict[str, Any] | None = None


class EntityEvent(Wire):
    schema_: str = Field(ENTITY_SCHEMA, alias="schema")
    eventId: str
    time: str = Field(default_factory=utc_now_ms)
    deviceId: str
    action: EntityAction
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
    time: str = Field(default_factory=utc_now_ms)
    result: dict[str, Any] | None = None
    error: ErrorBody | None = None


_ACTIONS: dict[str, EntityAction] = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "expire": "deleted",
}


def entity_payload(change: Any, device_id: str) -> dict[str, Any]:
    """An outbox change as an `events/entity` message: no vector, API field names."""
    p = change.payload
    entity = {
        "uuid": change.entity_uuid,
        "instance": change.instance,
        "model": p.get("model_name") or p.get("model"),
        "collection": p.get("collection"),
        "key": p.get("key"),
        "metadata": p.get("metadata"),
        "createdAt": p.get("created_at"),
        "updatedAt": p.get("updated_at"),
        "expiresAt": p.get("expires_at"),
    }
    event = EntityEvent(
        eventId=change.change_id or str(uuid.uuid4()),
        deviceId=device_id,
        action=_ACTIONS.get(change.op, "updated"),
        entity={k: v for k, v in entity.items() if v is not None},
    )
    return event.model_dump(by_alias=True)


def dump(model: BaseModel) -> bytes:
    """Compact JSON by alias (so `schema_` goes out as `schema`), nulls kept explicit."""
    return model.model_dump_json(by_alias=True).encode()
