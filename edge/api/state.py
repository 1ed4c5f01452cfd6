"""Typed application keys: the one place route modules find the shared components.

Handlers read `request.app[ENGINE]` (models and store, built by `edge.engine`, the one
composition site) and go through `recognition(app)` for image work; `DEVICES` holds the
cameras and the MQTT bridge when the process runs them. Typed `web.AppKey`s let a type
checker follow each component from `create_app` to the handler without string keys drifting
apart. This module imports only the plain classes the keys hold (the engine, the device
services, the admission pool, the key ring, the route documentation), never the aiohttp glue
that reads the keys: dependencies point one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from edge.api.admission import Admission
from edge.api.keyring import KeyRing
from edge.api.routes import OpenApiRegistry
from edge.camera.service import EdgeServices
from edge.config import Settings
from edge.engine import Engine
from edge.errors import EdgeError
from edge.recognition import Recognition


@dataclass
class ReadyState:
    """Readiness and drain state, touched only on the event loop thread.

    `models_ready` gates inference (503 before warm-up); `shutting_down` refuses new
    requests while the ones already `in_flight` finish (see `edge.api.server`).
    `without_models`: a process that deliberately runs no models (a sync hub) is ready
    for what it serves while inference stays refused with `reason`.
    """

    models_ready: bool = False
    reason: str = "models are loading"
    shutting_down: bool = False
    in_flight: int = 0
    without_models: bool = False

    @property
    def ready(self) -> bool:
        """What /readyz reports: warmed up (or running without models) and not draining."""
        return (self.models_ready or self.without_models) and not self.shutting_down

    def set_without_models(self, reason: str) -> None:
        """Ready, with inference refused for good: `reason` says how to enable it."""
        self.models_ready, self.without_models, self.reason = False, True, reason

    def set_ready(self) -> None:
        self.models_ready = True
        if not self.shutting_down:
            self.reason = ""

    def set_not_ready(self, reason: str) -> None:
        self.models_ready, self.reason = False, reason

    def begin_shutdown(self) -> None:
        self.shutting_down, self.reason = True, "shutting down"


@dataclass
class Devices:
    """The cameras and the MQTT bridge while they run (`current`), else None.

    A slot set once by `create_app`: the services stop during the app's cleanup, when its
    keys must no longer change (aiohttp deprecates that), so the slot changes instead.
    """

    current: EdgeServices | None = None


SETTINGS = web.AppKey("edge.settings", Settings)
#: models and store, opened when the app starts (`engine.liveness` is None when the pack has
#: no liveness roles: the liveness route then answers 503)
ENGINE = web.AppKey("edge.engine", Engine)
#: the cameras and the MQTT bridge of this process, while they run
DEVICES = web.AppKey("edge.devices", Devices)
ADMISSION = web.AppKey("edge.admission", Admission)
READY = web.AppKey("edge.ready", ReadyState)
KEYS = web.AppKey("edge.keys", KeyRing)
OPENAPI = web.AppKey("edge.openapi", OpenApiRegistry)


def recognition(app: web.Application) -> Recognition:
    """The recognition service over the app's engine (a light view: built per call)."""
    return Recognition(app[ENGINE])


def _request_key(name: str, t: type) -> Any:
    """A typed `web.RequestKey` where aiohttp has them (>= 3.12), else the plain name."""
    factory = getattr(web, "RequestKey", None)
    return factory(name, t) if factory is not None else name


#: request-scoped keys
REQUEST_ID: Any = _request_key("edge.request_id", str)
INSTANCE: Any = _request_key("edge.instance", str)
API_KEY_ID: Any = _request_key("edge.api_key_id", str)
ADMITTED: Any = _request_key("edge.admitted", bool)


def instance_of(request: web.Request) -> str:
    """The instance (tenant) of the key that authenticated this request."""
    inst = request.get(INSTANCE)
    if inst is None:  # a route without auth asked for a tenant: a programming error
        raise EdgeError(401, "this route requires an api-key")
    return str(inst)
