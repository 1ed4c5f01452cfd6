"""Typed application keys: the one place route modules find the shared components.

Handlers read `request.app[PIPELINE]` etc.; typed `web.AppKey`s let a type checker follow
the component from `create_app` to the handler without string keys drifting apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from edge.config import Settings
from edge.errors import EdgeError
from edge.runtime.registry import ModelRegistry

if TYPE_CHECKING:
    from edge.api.admission import Admission
    from edge.api.auth import KeyRing
    from edge.api.openapi import OpenApiRegistry


@dataclass
class ReadyState:
    """Readiness and drain state, touched only on the event loop thread.

    `models_ready` gates inference (503 before warm-up); `shutting_down` refuses new
    requests while the ones already `in_flight` finish (see `edge.api.server`).
    """

    models_ready: bool = False
    reason: str = "models are loading"
    shutting_down: bool = False
    in_flight: int = 0

    @property
    def ready(self) -> bool:
        """What /readyz reports: warmed up and not draining."""
        return self.models_ready and not self.shutting_down

    def set_ready(self) -> None:
        self.models_ready = True
        if not self.shutting_down:
            self.reason = ""

    def set_not_ready(self, reason: str) -> None:
        self.models_ready, self.reason = False, reason

    def begin_shutdown(self) -> None:
        self.shutting_down, self.reason = True, "shutting down"


SETTINGS: web.AppKey[Settings] = web.AppKey("edge.settings", Settings)
REGISTRY: web.AppKey[ModelRegistry] = web.AppKey("edge.registry", ModelRegistry)
#: edge.vision.pipeline.FacePipeline (typed loosely: vision is written in parallel).
PIPELINE: web.AppKey[Any] = web.AppKey("edge.pipeline")
#: edge.vision.liveness.LivenessScorer
LIVENESS: web.AppKey[Any] = web.AppKey("edge.liveness")
#: edge.store EntityStore
STORE: web.AppKey[Any] = web.AppKey("edge.store")
ADMISSION: web.AppKey[Admission] = web.AppKey("edge.admission")
READY: web.AppKey[ReadyState] = web.AppKey("edge.ready", ReadyState)
KEYS: web.AppKey[KeyRing] = web.AppKey("edge.keys")
OPENAPI: web.AppKey[OpenApiRegistry] = web.AppKey("edge.openapi")


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
