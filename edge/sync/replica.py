"""The box side of the merge: store rows <-> records, and applying a pulled batch.

The store knows rows and stamps, not the merge; this module converts between the two and
hands the store a `resolve` function, so one SQLite transaction reads the local state,
merges it with what the hub sent and writes the result together with the new cursor.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge.store.entities import EntityStore, SyncRow, SyncTombstone
from edge.store.hlc import Hlc
from edge.sync.record import Meta, Record, Vector, Versioned, merge, merge_all, tombstone


def record_of(local: SyncRow | SyncTombstone) -> Record:
    """The replicated state of a stored row or tombstone."""
    if isinstance(local, SyncTombstone):
        return tombstone(local.uuid, local.instance, Hlc.decode(local.stamp))
    vec = Vector.from_float32(local.model, local.model_name, local.vector)

    def stamp(text: str) -> Hlc:
        # A row written without stamps (raw SQL, a tool) counts as written at updated_at.
        return Hlc.decode(text) if text else Hlc(local.updated_at * 1000, 0, "unstamped")

    return Record(
        local.uuid,
        local.instance,
        meta=Versioned(
            stamp(local.v_meta),
            Meta(local.collection, local.key, local.metadata, local.created_at),
        ),
        expiry=Versioned(stamp(local.v_exp), local.expires_at),
        vectors=((local.pack_fingerprint, Versioned(stamp(local.v_vec), vec)),),
    )


def row_of(
    merged: Record, fingerprint: str, local: SyncRow | SyncTombstone | None
) -> SyncRow | SyncTombstone | None:
    """What to store for `merged` on a replica of model `fingerprint` (None: keep as is)."""
    if merged.deleted is not None:
        return SyncTombstone(merged.uuid, merged.instance, merged.deleted.encode())
    reg = merged.vector_for(fingerprint)
    fp = fingerprint
    if reg is None and isinstance(local, SyncRow):  # a stale row of an older model stays
        reg, fp = merged.vector_for(local.pack_fingerprint), local.pack_fingerprint
    if reg is None or merged.meta is None or merged.expiry is None:
        return None  # nothing searchable for this model: not stored
    same_vector = (
        isinstance(local, SyncRow)
        and local.pack_fingerprint == fp
        and local.v_vec == reg.stamp.encode()
    )
    # Keep the local float32 vector when it is the same enrolment (better than fp16).
    vector = local.vector if same_vector and isinstance(local, SyncRow) else reg.value.to_float32()
    meta = merged.meta.value
    newest = max(merged.meta.stamp, merged.expiry.stamp, reg.stamp)
    return SyncRow(
        uuid=merged.uuid,
        instance=merged.instance,
        model=reg.value.model,
        model_name=reg.value.model_name,
        collection=meta.collection,
        key=meta.key,
        metadata=meta.metadata,
        created_at=meta.created_at,
        updated_at=max(meta.created_at, newest.ms // 1000),
        expires_at=merged.expiry.value,
        pack_fingerprint=fp,
        vector=vector,
        v_meta=merged.meta.stamp.encode(),
        v_vec=reg.stamp.encode(),
        v_exp=merged.expiry.stamp.encode(),
    )


@dataclass
class Applied:
    changed: int = 0
    conflicts: int = 0  # merges where both sides held something the other lacked


def apply_pulled(
    store: EntityStore,
    records: Sequence[Record],
    state: Mapping[str, str],
    *,
    now_s: float | None = None,
    outcome: Applied | None = None,
) -> int:
    """Merge pulled records into the store and save `state` (the cursor) atomically.

    Returns how many entities changed. Changes applied here are not written to the outbox
    (they came from the hub: no echo). The replica clock moves past every received stamp,
    so a later local write wins over what was just received.
    """
    incoming: dict[str, list[Record]] = {}
    for r in records:
        incoming.setdefault(r.uuid, []).append(r)
        for s in r.stamps():
            store.hlc.seed(s)
    fingerprint = store.pack_fingerprint
    now = int(time.time() if now_s is None else now_s)
    out = outcome if outcome is not None else Applied()

    def resolve(uuid: str, local: SyncRow | SyncTombstone | None) -> SyncRow | SyncTombstone | None:
        remote = merge_all(incoming[uuid])
        if local is None:
            if remote.deleted is None and not remote.live(now):
                return None  # expired already: expiry is local, nothing to hold
            return row_of(remote, fingerprint, None)
        mine = record_of(local)
        merged = merge(mine, remote)
        if merged == mine:
            return None
        if merged != remote and merged.deleted is None:
            out.conflicts += 1
        return row_of(merged, fingerprint, local)

    out.changed = store.sync_apply(list(incoming), resolve, state)
    return out.changed
