"""Drift detection: per-bucket digests of the records a replica should hold.

Buckets are the last two hex digits of the uuid (random bits in a UUIDv7, so buckets are
even); a bucket's digest is the XOR of a hash of each record's exact wire encoding, so it
is independent of order and equal on two replicas exactly when they hold the same records
(up to hash collisions). Compared are the records a box of `fingerprint` must hold:
tombstones, and live, unexpired records with that fingerprint's vector, projected to it.
A differing bucket is repaired by exchanging just that bucket's records both ways; the
merge makes the exchange safe whatever each side holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Final

from edge.sync.codec import encode_record, pack
from edge.sync.record import Record, for_fingerprint

BUCKET_DIGITS: Final = 2
#: Records expiring this close to the comparison are left out on both sides: each replica
#: purges expired rows on its own schedule.
EXPIRY_MARGIN_S: Final = 120


def bucket_of(uuid: str) -> str:
    return uuid[-BUCKET_DIGITS:].lower()


def comparable(record: Record, fingerprint: str, now_s: float) -> Record | None:
    """What of `record` a box of `fingerprint` should hold now (None: nothing)."""
    view = for_fingerprint(record, fingerprint)
    if view is None or view.deleted is not None:
        return view
    if view.expiry is None or view.expiry.value <= now_s + EXPIRY_MARGIN_S:
        return None
    return view


def digest(records: Iterable[Record], fingerprint: str, now_s: float) -> dict[str, str]:
    acc: dict[str, int] = {}
    for r in records:
        view = comparable(r, fingerprint, now_s)
        if view is None:
            continue
        h = int.from_bytes(hashlib.sha256(pack(encode_record(view))).digest()[:16], "big")
        b = bucket_of(r.uuid)
        acc[b] = acc.get(b, 0) ^ h
    return {b: f"{v:032x}" for b, v in acc.items() if v}


def differing(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
