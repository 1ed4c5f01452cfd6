"""The sync wire: msgpack frames, vectors as raw fp16 bytes (no JSON, no base64).

A 512-d vector costs 1 KiB plus a few dozen bytes of stamps and names. Every decoder
checks types and shapes and raises `WireError` (a 400 at the hub, a failed pull at the
box) instead of letting malformed input reach the merge or the store. Never images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgpack  # type: ignore[import-untyped]

from edge.store.hlc import Hlc
from edge.sync.record import Meta, Record, Vector, Versioned

CONTENT_TYPE: Final = "application/vnd.edge-face.sync+msgpack"
WIRE_VERSION: Final = 1
MAX_FRAME_BYTES: Final = 64 * 2**20


class WireError(ValueError):
    """A frame that does not follow the sync wire format."""


def _str(v: object, what: str) -> str:
    if not isinstance(v, str):
        raise WireError(f"{what} must be a string")
    return v


def _int(v: object, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise WireError(f"{what} must be an integer")
    return v


def _list(v: object, what: str, n: int | None = None) -> list[Any]:
    if not isinstance(v, list) or (n is not None and len(v) != n):
        raise WireError(f"{what} must be a list" + (f" of {n}" if n is not None else ""))
    return v


def _stamp(v: object, what: str) -> Hlc:
    try:
        return Hlc.decode(_str(v, what))
    except ValueError as e:
        raise WireError(f"{what}: {e}") from None


#: A stamp equal to the record's meta stamp travels as this (most records are written
#: once, so all their groups share one stamp: ~70 bytes a record saved).
SAME_AS_META: Final = 0


def encode_record(r: Record) -> list[Any]:
    meta = None
    first = None if r.meta is None else r.meta.stamp

    def stamp(s: Hlc) -> str | int:
        return SAME_AS_META if s == first else s.encode()

    if r.meta is not None:
        m = r.meta.value
        meta = [r.meta.stamp.encode(), m.collection, m.key, m.metadata, m.created_at]
    expiry = None if r.expiry is None else [stamp(r.expiry.stamp), r.expiry.value]
    vectors = [
        [fp, stamp(reg.stamp), reg.value.model, reg.value.model_name, reg.value.dim,
         reg.value.data]
        for fp, reg in r.vectors
    ]  # fmt: skip
    deleted = None if r.deleted is None else r.deleted.encode()
    return [r.uuid, r.instance, deleted, meta, expiry, vectors]


def decode_record(v: object) -> Record:
    uuid, instance, deleted, meta, expiry, vectors = _list(v, "record", 6)
    rec_meta = None
    if meta is not None:
        stamp, collection, key, metadata, created = _list(meta, "record meta", 5)
        rec_meta = Versioned(
            _stamp(stamp, "meta stamp"),
            Meta(
                _str(collection, "collection"),
                _str(key, "key"),
                _str(metadata, "metadata"),
                _int(created, "created_at"),
            ),
        )
    first = None if rec_meta is None else rec_meta.stamp

    def group_stamp(v: object, what: str) -> Hlc:
        if v == SAME_AS_META and not isinstance(v, bool):
            if first is None:
                raise WireError(f"{what} refers to a meta stamp the record does not have")
            return first
        return _stamp(v, what)

    rec_exp = None
    if expiry is not None:
        stamp, expires = _list(expiry, "record expiry", 2)
        rec_exp = Versioned(group_stamp(stamp, "expiry stamp"), _int(expires, "expires_at"))
    regs: dict[str, Versioned[Vector]] = {}
    for item in _list(vectors, "record vectors"):
        fp, stamp, model, model_name, dim, data = _list(item, "vector", 6)
        d = _int(dim, "dim")
        if not isinstance(data, bytes) or d < 1 or len(data) != 2 * d:
            raise WireError("vector data must be 2*dim bytes of fp16")
        regs[_str(fp, "fingerprint")] = Versioned(
            group_stamp(stamp, "vector stamp"),
            Vector(_str(model, "model"), _str(model_name, "model_name"), d, data),
        )
    return Record(
        _str(uuid, "uuid"),
        _str(instance, "instance"),
        None if deleted is None else _stamp(deleted, "delete stamp"),
        rec_meta,
        rec_exp,
        tuple(sorted(regs.items())),
    )


def pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def unpack_any(data: bytes) -> object:
    """Any msgpack value (stored records); WireError when it is not msgpack."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as e:
        raise WireError(f"not a msgpack frame: {e}") from None


def unpack(data: bytes) -> dict[str, Any]:
    """A frame: a map with `v` == WIRE_VERSION."""
    if len(data) > MAX_FRAME_BYTES:
        raise WireError(f"frame larger than {MAX_FRAME_BYTES} bytes")
    obj = unpack_any(data)
    if not isinstance(obj, dict):
        raise WireError("a frame must be a map")
    if obj.get("v") != WIRE_VERSION:
        raise WireError(f"unsupported wire version {obj.get('v')!r}; this end speaks 1")
    return obj


# Frames --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PushBatch:
    """A box's outbox rows: (origin seq, record); idempotent by (origin, seq)."""

    origin: str
    changes: Sequence[tuple[int, Record]]


def encode_push(b: PushBatch) -> bytes:
    return pack(
        {"v": WIRE_VERSION, "origin": b.origin,
         "changes": [[seq, encode_record(r)] for seq, r in b.changes]}
    )  # fmt: skip


def decode_push(data: bytes) -> PushBatch:
    f = unpack(data)
    changes = []
    for item in _list(f.get("changes"), "changes"):
        seq, rec = _list(item, "change", 2)
        changes.append((_int(seq, "seq"), decode_record(rec)))
    return PushBatch(_str(f.get("origin"), "origin"), changes)


@dataclass(frozen=True)
class PushAck:
    acked: int  # the highest origin seq the hub holds durably
    applied: int
    rejected: int
    epoch: str


def encode_ack(a: PushAck) -> bytes:
    return pack(
        {"v": WIRE_VERSION, "acked": a.acked, "applied": a.applied, "rejected": a.rejected,
         "epoch": a.epoch}
    )  # fmt: skip


def decode_ack(data: bytes) -> PushAck:
    f = unpack(data)
    return PushAck(
        _int(f.get("acked"), "acked"),
        _int(f.get("applied"), "applied"),
        _int(f.get("rejected"), "rejected"),
        _str(f.get("epoch"), "epoch"),
    )


@dataclass(frozen=True)
class FeedPage:
    """Records after a cursor, in hub order; `next` is the cursor to save with them."""

    epoch: str
    records: Sequence[tuple[int, Record]]
    next: int
    head: int  # the hub's newest sequence (lag = head - next)


def encode_feed(p: FeedPage) -> bytes:
    return pack(
        {"v": WIRE_VERSION, "epoch": p.epoch, "next": p.next, "head": p.head,
         "records": [[seq, encode_record(r)] for seq, r in p.records]}
    )  # fmt: skip


def decode_feed(data: bytes) -> FeedPage:
    f = unpack(data)
    records = []
    for item in _list(f.get("records"), "records"):
        seq, rec = _list(item, "feed record", 2)
        records.append((_int(seq, "seq"), decode_record(rec)))
    return FeedPage(
        _str(f.get("epoch"), "epoch"), records, _int(f.get("next"), "next"),
        _int(f.get("head"), "head"),
    )  # fmt: skip


def encode_digest(buckets: dict[str, str]) -> bytes:
    return pack({"v": WIRE_VERSION, "buckets": buckets})


def decode_digest(data: bytes) -> dict[str, str]:
    b = unpack(data).get("buckets")
    if not isinstance(b, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in b.items()
    ):
        raise WireError("buckets must map bucket names to digests")
    return dict(b)


def encode_records(records: Sequence[Record]) -> bytes:
    return pack({"v": WIRE_VERSION, "records": [encode_record(r) for r in records]})


def decode_records(data: bytes) -> list[Record]:
    return [decode_record(r) for r in _list(unpack(data).get("records"), "records")]
