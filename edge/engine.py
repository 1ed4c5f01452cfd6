"""The composition root: the one place that builds the model registry, the face pipeline,
the liveness scorer and the entity store from `Settings`.

Why one place: the server, the camera command, the benchmarks, the evaluation and the test
fixtures must all see the same components built by the same rules, or they measure and
serve different things. The rules, stated once:

- models open lazily (constructing is cheap); `warm_up()` runs each once and logs which
  backend/device it really got, a fallback as WARNING;
- liveness is absent (None) exactly when the pack lacks one of the roles its calibration
  names: never on an error of another kind, which must stay loud;
- the store sits at `settings.store_path`, stamping vectors with the pack's fingerprint,
  so vectors of one pack are never searched with another's.

`Models` (registry + pipeline + liveness) is the expensive, shareable half; an `Engine` is
`Models` plus a store. A sync hub that does not answer the face API (`sync.role: hub`
without `sync.hub_serves_api`) is an engine without models: a store only, its vectors
stamped with the pack's fingerprint read from the manifest, no model file opened.

Tests share one `Models` between servers, each with its own store;
nothing else constructs the components. A variant (another backend or precision, INT8 off,
another pack) is a settings variant: `Models.load(settings.model_copy(update=...))`. Only
the unit tests of a component's own class, and measurements of that class alone, build it
directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from edge.config import Settings
from edge.errors import EdgeError
from edge.runtime.manifest import Manifest
from edge.runtime.registry import ModelRegistry, pack_fingerprint
from edge.store.entities import EntityStore
from edge.vision.liveness import LivenessParams, LivenessScorer
from edge.vision.pipeline import FacePipeline

__all__ = ["NO_MODELS", "Engine", "Models", "ModelsNotLoaded", "open_store"]

log = logging.getLogger("edge.engine")

#: why a hub without models refuses the face/liveness API, and how to turn it on
NO_MODELS = (
    "this sync hub loads no vision models (sync.role: hub); to enrol and search here set "
    "sync.hub_serves_api: true in the config and restart"
)


class ModelsNotLoaded(EdgeError):
    """The engine was opened without models (a hub that does not answer the face API).

    An `EdgeError` (503, `NO_MODELS`): whichever handler reaches for a model first, the
    client gets the contract's 503 naming the setting, never a 500.
    """

    def __init__(self) -> None:
        super().__init__(503, NO_MODELS)


@dataclass(frozen=True)
class Models:
    """The pack's models, built by the one rule; thread-safe, shareable between stores."""

    registry: ModelRegistry
    pipeline: FacePipeline
    liveness: LivenessScorer | None

    @classmethod
    def load(cls, settings: Settings) -> Models:
        """Registry, pipeline and (when the pack has its roles) liveness; nothing opened yet."""
        registry = ModelRegistry(settings)
        pipeline = FacePipeline(registry, settings)
        params = LivenessParams.load(registry.pack_name)
        missing = [m.role for m in params.models if not registry.has(m.role)]
        liveness: LivenessScorer | None = None
        if missing:
            log.warning(
                "liveness not available: pack %s lacks roles %s", registry.pack_name, missing
            )
        else:
            liveness = LivenessScorer(registry, settings, params)
        return cls(registry, pipeline, liveness)

    def warm_up(self) -> None:
        """Open and run every model once (blocking) so the first request pays no
        compile/alloc cost; logs backend/device per model, a fallback as WARNING."""
        self.pipeline.warmup()
        if self.liveness is not None:
            self.liveness.warmup()
        for role, sess in sorted(self.registry.opened().items()):
            info = sess.info
            if info.fallback:
                log.warning(
                    "model %s runs on %s/%s (FALLBACK: requested %s)",
                    role,
                    info.backend,
                    info.device,
                    info.requested,
                )
            else:
                log.info("model %s runs on %s/%s", role, info.backend, info.device)


def open_store(
    settings: Settings,
    registry: ModelRegistry | None = None,
    *,
    fingerprint: str | None = None,
    clock: Callable[[], datetime] | None = None,
) -> EntityStore:
    """The store at `settings.store_path`, stamping vectors with the pack's fingerprint.

    With fleet sync the sync worker prunes the change log once the hub has acknowledged;
    without it nothing reads the log back, so the store keeps only a short window of it.
    `fingerprint` stands in for the registry's where no model made the vectors (benchmarks,
    tools and tests that fill a store with synthetic ones need no model pack); pass one of
    the two. `clock` is for tests of expiry (real UTC time otherwise).
    """
    if fingerprint is None:
        if registry is None:
            raise TypeError("open_store needs the model registry or a fingerprint")
        fingerprint = registry.fingerprint
    elif registry is not None:
        raise TypeError("open_store takes the model registry or a fingerprint, not both")
    sync = settings.sync.enabled
    return EntityStore(
        settings.store_path,
        pack_fingerprint=fingerprint,
        clock=clock,
        change_log_keep_s=None if sync else settings.store.change_log_keep_s,
        change_log_keep_rows=None if sync else settings.store.change_log_keep_rows,
    )


class Engine:
    """Settings, models and the store of one process, opened together and closed together.

    Use `Engine.open(settings)` (or `with Engine.open(settings) as engine:`); `close()`
    closes the store. The models are not closed: sessions end with the process, and a
    shared `Models` may serve other engines.
    """

    def __init__(self, settings: Settings, models: Models | None, store: EntityStore) -> None:
        self.settings = settings
        self.models = models  # None: a hub that serves no face API (see the module docstring)
        self.store = store

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        models: Models | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Engine:
        """Build the components `settings` describe and open the store (blocking: file IO).

        `models` shares models already loaded (tests serve many data dirs with one set);
        `clock` is the store's clock (tests of expiry). Settings that need no models
        (`sync.loads_models` false) open the store alone, whatever `models` holds.
        """
        if not settings.sync.loads_models:
            fingerprint = pack_fingerprint(
                Manifest.load(settings.models.manifest), settings.models.pack
            )
            return cls(settings, None, open_store(settings, fingerprint=fingerprint, clock=clock))
        if models is None:
            models = Models.load(settings)
        elif models.registry.pack_name != settings.models.pack:
            raise ValueError(
                f"models of pack {models.registry.pack_name!r} cannot serve settings of pack "
                f"{settings.models.pack!r}: load the models from these settings"
            )
        return cls(settings, models, open_store(settings, models.registry, clock=clock))

    @property
    def loaded(self) -> Models:
        """The models; `ModelsNotLoaded` when this engine runs without them."""
        if self.models is None:
            raise ModelsNotLoaded()
        return self.models

    @property
    def registry(self) -> ModelRegistry:
        """The model registry (which files, which backend); not the metrics registry."""
        return self.loaded.registry

    @property
    def pipeline(self) -> FacePipeline:
        return self.loaded.pipeline

    @property
    def liveness(self) -> LivenessScorer | None:
        """None when the pack lacks the liveness roles (see the module docstring)."""
        return self.loaded.liveness

    def warm_up(self) -> None:
        """Run every model once; see `Models.warm_up`. Nothing to do without models."""
        if self.models is not None:
            self.models.warm_up()

    def close(self) -> None:
        """Close the store (idempotent); the models stay usable by other engines."""
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
