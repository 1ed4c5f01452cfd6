"""Raw-file scans for the erase tests: what could someone with the disk read back?"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from edge.store import Entity, EntityStore

COMPANIONS = ("", "-wal", "-shm", "-journal")


def raw_files(db_path: Path) -> bytes:
    """The database and every companion file SQLite may keep beside it, as raw bytes."""
    chunks = []
    for suffix in COMPANIONS:
        p = db_path.with_name(db_path.name + suffix)
        if p.exists():
            chunks.append(p.read_bytes())
    return b"\x00".join(chunks)


def needles(store: EntityStore, entity: Entity) -> dict[str, bytes]:
    """What identifies `entity` on disk: its stored vector (raw float32 little-endian and
    the base64 change payloads use) and its key and metadata strings."""
    got = store.get(entity.instance, entity.uuid, with_vector=True)
    assert got is not None and got.vector is not None
    raw = got.vector.astype(np.dtype("<f4")).tobytes()
    found = {
        "vector": raw,
        "vector-b64": base64.b64encode(raw),
        "key": entity.key.encode(),
    }
    for i, item in enumerate(entity.metadata):
        found[f"metadata[{i}].name"] = str(item["name"]).encode()
        found[f"metadata[{i}].value"] = str(item["value"]).encode()
    return found


def present(blob: bytes, wanted: dict[str, bytes]) -> list[str]:
    return sorted(name for name, b in wanted.items() if b in blob)
