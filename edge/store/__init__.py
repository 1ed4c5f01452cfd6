"""Enrolled face entities: durable SQLite rows, an outbox of changes, in-memory vector search."""

from __future__ import annotations

from edge.store.entities import UNSET, Change, Entity, EntityStore, NewEntity, normalise_vector
from edge.store.index import ExactIndex, IndexEntry, VectorIndex
from edge.store.schema import MIGRATIONS, NEVER_EXPIRES, Migration, SchemaError

__all__ = [
    "MIGRATIONS",
    "NEVER_EXPIRES",
    "UNSET",
    "Change",
    "Entity",
    "EntityStore",
    "ExactIndex",
    "IndexEntry",
    "Migration",
    "NewEntity",
    "SchemaError",
    "VectorIndex",
    "normalise_vector",
]
