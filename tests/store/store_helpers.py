"""Helpers for the store tests (imported by conftest and the test modules)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from edge.store import Entity, EntityStore

FINGERPRINT = "pack-test-0001"
DIM = 128
_seeds = itertools.count(10_000)  # distinct, reproducible vectors for `make`


class ManualClock:
    """An injectable clock: time moves only when the test says so (TTL tests without sleeps)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def make(store: EntityStore, vector: np.ndarray | None = None, **kw: Any) -> Entity:
    """Create an entity with defaults for whatever the test does not care about."""
    args: dict[str, Any] = {
        "instance": "inst-a",
        "model": "EDGE_FACE_V1",
        "model_name": "EDGE_FACE_V1",
        "collection": "",
        "key": "",
        "metadata": [],
        "ttl": -1,
    }
    args.update(kw)
    if vector is None:
        vector = unit_vectors(1, seed=next(_seeds))[0]
    return store.create(vector=vector, **args)
