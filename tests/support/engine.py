"""Engines for tests, built only through `edge.engine` like the product's.

The heavy half (`Models`: sessions compiled and warmed) is built once per model dir and
shared by every server and camera of the test process; each test opens its own `Engine`
(its own SQLite store) over it. `manifest_without_liveness` writes the shipped manifest with
the default pack's liveness roles removed: real models, the case "a pack without liveness".
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from edge.config import load_settings
from edge.engine import Models
from edge.runtime.manifest import Manifest


@functools.lru_cache(maxsize=2)
def shared_models(model_dir: str) -> Models:
    """The default pack's models from `model_dir` with default settings, warmed up once."""
    models = Models.load(load_settings(None, models={"dir": Path(model_dir)}))
    models.warm_up()
    return models


@dataclass(frozen=True)
class GatedModels(Models):
    """The real models, built by the one rule, whose warm-up waits until the test sets
    `gate`: lets a test observe a server before it is ready."""

    gate: threading.Event = field(default_factory=threading.Event)

    def warm_up(self) -> None:
        self.gate.wait(120)
        super().warm_up()


def manifest_without_liveness(path: Path) -> Path:
    """Write the shipped manifest, less every `liveness*` role of every pack, to `path`."""
    data = Manifest.load().model_dump(mode="json", by_alias=True, exclude_none=True)
    for pack in data["packs"].values():
        pack["roles"] = {r: f for r, f in pack["roles"].items() if not r.startswith("liveness")}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
