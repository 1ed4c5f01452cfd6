"""The replicated state of one entity and the one merge function hub and boxes share.

An entity is three independently versioned field groups, each a last-writer-wins register
stamped with a hybrid logical clock (`edge.store.hlc`):

- `meta`: collection, key, metadata (and the immutable creation time);
- `vectors`: one register per model-pack fingerprint (model names and the fp16 vector), so
  vectors of different models never mix and a box reads only its own fingerprint's;
- `expiry`: the expiry time. Expiry is evaluated locally by each replica; it is not a delete.

A delete is a tombstone that wins over every write, whatever the stamps, for ever: the
merged record of a deleted entity carries no vector and no metadata, so an erased face
cannot come back from a stale replica. The merge is a join (commutative, associative,
idempotent), so replicas that saw the same set of states hold equal records whatever the
order, duplication or batching of delivery.

Vectors are held at fp16 precision in this domain (`Vector.from_float32`), the same on
every replica, so equal stamps always mean equal values and a round trip through the hub
never looks like a change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final, Generic, TypeVar

import numpy as np

from edge.store.hlc import Hlc

_FP16: Final = np.dtype("<f2")

T = TypeVar("T")


@dataclass(frozen=True, order=True)
class Meta:
    collection: str
    key: str
    metadata: str  # canonical JSON text of the metadata list
    created_at: int  # unix seconds; set at creation, never changed


@dataclass(frozen=True, order=True)
class Vector:
    model: str  # canonical model name: the search scope
    model_name: str  # the name the enrolling request used
    dim: int
    data: bytes  # little-endian fp16 of the L2-normalised vector

    @classmethod
    def from_float32(cls, model: str, model_name: str, vec: np.ndarray) -> Vector:
        """Round a stored (already L2-normalised) vector to fp16.

        No renormalisation here, on purpose: `Vector.from_float32(v.to_float32())` must
        give back the same bytes, so a replica that stored a received vector describes it
        exactly as the sender did (equal stamps, equal values, equal digests).
        """
        v = np.asarray(vec, dtype=np.float32).reshape(-1)
        if v.size == 0 or not np.all(np.isfinite(v)) or not np.any(v):
            raise ValueError("vector must be non-empty, finite and non-zero")
        return cls(model, model_name, int(v.size), v.astype(_FP16).tobytes())

    def to_float32(self) -> np.ndarray:
        """The fp16 values as float32, exactly (norm 1 within fp16 rounding)."""
        return np.frombuffer(self.data, dtype=_FP16).astype(np.float32)


@dataclass(frozen=True, order=True)
class Versioned(Generic[T]):
    stamp: Hlc
    value: T


@dataclass(frozen=True)
class Record:
    """The replicated state of one entity (or its tombstone)."""

    uuid: str
    instance: str
    deleted: Hlc | None = None
    meta: Versioned[Meta] | None = None
    expiry: Versioned[int] | None = None
    vectors: tuple[tuple[str, Versioned[Vector]], ...] = ()  # (fingerprint, register), sorted

    def vector_for(self, fingerprint: str) -> Versioned[Vector] | None:
        for fp, reg in self.vectors:
            if fp == fingerprint:
                return reg
        return None

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(fp for fp, _ in self.vectors)

    def stamps(self) -> Iterable[Hlc]:
        """Every stamp the record carries (for clock checks)."""
        if self.deleted is not None:
            yield self.deleted
        if self.meta is not None:
            yield self.meta.stamp
        if self.expiry is not None:
            yield self.expiry.stamp
        for _, reg in self.vectors:
            yield reg.stamp

    def live(self, now_s: int) -> bool:
        """Not deleted, complete, and not expired at `now_s` (expiry is local)."""
        return (
            self.deleted is None
            and self.meta is not None
            and self.expiry is not None
            and self.expiry.value > now_s
        )


def tombstone(uuid: str, instance: str, stamp: Hlc) -> Record:
    return Record(uuid, instance, deleted=stamp)


def _later(a: Versioned[T] | None, b: Versioned[T] | None) -> Versioned[T] | None:
    """Last writer wins; an equal stamp (impossible between honest replicas) falls back
    to comparing the values, so even then every replica picks the same one."""
    if a is None:
        return b
    if b is None:
        return a
    return a if (a.stamp, a.value) >= (b.stamp, b.value) else b


def merge(a: Record, b: Record) -> Record:
    """The join of two states of the same entity: per group the later stamp, delete wins."""
    if a.uuid != b.uuid:
        raise ValueError(f"cannot merge records of {a.uuid} and {b.uuid}")
    if a.instance != b.instance:
        # Uuids are unique per fleet; equal uuids in two instances is a forged or broken
        # replica. Deterministic anyway: the smaller instance name wins.
        return a if a.instance < b.instance else b
    deleted = max((s for s in (a.deleted, b.deleted) if s is not None), default=None)
    if deleted is not None:
        return Record(a.uuid, a.instance, deleted=deleted)
    vectors: dict[str, Versioned[Vector]] = dict(a.vectors)
    for fp, reg in b.vectors:
        won = _later(vectors.get(fp), reg)
        assert won is not None
        vectors[fp] = won
    return Record(
        a.uuid,
        a.instance,
        meta=_later(a.meta, b.meta),
        expiry=_later(a.expiry, b.expiry),
        vectors=tuple(sorted(vectors.items())),
    )


def merge_all(records: Iterable[Record]) -> Record:
    it = iter(records)
    out = next(it)
    for r in it:
        out = merge(out, r)
    return out


def for_fingerprint(record: Record, fingerprint: str) -> Record | None:
    """What a replica of model `fingerprint` may receive of `record`.

    A tombstone goes to everyone (deletes reach every box); a live state only with that
    fingerprint's vector, and not at all when it has none (that box cannot search it).
    """
    if record.deleted is not None:
        return record
    reg = record.vector_for(fingerprint)
    if reg is None:
        return None
    return replace(record, vectors=((fingerprint, reg),))
