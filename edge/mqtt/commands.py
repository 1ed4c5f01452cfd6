"""Command dispatch: JSON in, a validated request model, a handler, a response out.

A command either succeeds or returns the contract error (api.md §1 codes) with a message
naming the field; validation happens before a handler runs, so a malformed command never
changes anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from edge.errors import EdgeError
from edge.mqtt.schemas import CommandResponse, ErrorBody

log = logging.getLogger(__name__)


class CommandRequest(BaseModel):
    """Base of every command body; `id` is echoed for clients without MQTT v5 correlation."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str | None = None


Handler = Callable[[Any], dict[str, Any]]


@dataclass
class Command:
    name: str
    request: type[CommandRequest]
    handler: Handler


def _validation_error(err: ValidationError) -> EdgeError:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "body"
    kind = first["type"]
    if kind == "missing":
        return EdgeError(110, f"{field} is required")
    if kind == "extra_forbidden":
        return EdgeError(112, f"{field} is not a known field")
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "model_type":
        return EdgeError(111, f"{field}: {first['msg']}")
    return EdgeError(112, f"{field}: {first['msg']}")


class CommandRouter:
    """Holds the registered commands and turns raw payloads into responses."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def register(self, name: str, request: type[CommandRequest], handler: Handler) -> None:
        self._commands[name] = Command(name, request, handler)

    @property
    def names(self) -> list[str]:
        return sorted(self._commands)

    def execute(self, name: str, payload: bytes) -> CommandResponse:
        request_id: str | None = None
        try:
            try:
                body = json.loads(payload.decode("utf-8")) if payload.strip() else {}
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise EdgeError(111, "body is not valid JSON") from None
            if not isinstance(body, dict):
                raise EdgeError(111, "body must be a JSON object")
            if isinstance(body.get("id"), str):
                request_id = body["id"]
            cmd = self._commands.get(name)
            if cmd is None:
                raise EdgeError(404, f"unknown command {name!r}", name="route_not_found")
            try:
                req = cmd.request.model_validate(body)
            except ValidationError as e:
                raise _validation_error(e) from None
            result = cmd.handler(req)
            return CommandResponse(command=name, ok=True, id=request_id, result=result)
        except EdgeError as e:
            return CommandResponse(
                command=name, ok=False, id=request_id, error=ErrorBody(**e.body())
            )
        except Exception:
            log.exception("command %s failed", name)
            err = EdgeError(500, "internal error")
            return CommandResponse(
                command=name, ok=False, id=request_id, error=ErrorBody(**err.body())
            )
