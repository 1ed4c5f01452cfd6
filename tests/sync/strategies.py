"""Hypothesis strategies for replicated records: few origins, few ms, so stamps collide."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from edge.store.hlc import Hlc
from edge.sync.record import Meta, Record, Vector, Versioned

UUID = "0190a000-0000-7000-8000-000000000001"
INSTANCE = "inst"
FINGERPRINTS = ("fp-a", "fp-b")

stamps = st.builds(
    Hlc,
    ms=st.integers(1_700_000_000_000, 1_700_000_000_004),
    counter=st.integers(0, 2),
    origin=st.sampled_from(["box-a", "box-b", "hub"]),
)
metas = st.builds(
    Meta,
    collection=st.sampled_from(["", "staff", "visitors"]),
    key=st.sampled_from(["", "alice", "bob"]),
    metadata=st.sampled_from(["[]", '[{"name":"n","type":"string","value":"x"}]']),
    created_at=st.just(1_700_000_000),
)


@st.composite
def vectors(draw: st.DrawFn) -> Vector:
    seed = draw(st.integers(0, 5))
    v = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return Vector.from_float32("EDGE_FACE_V1", draw(st.sampled_from(["EDGE_FACE_V1", "X"])), v)


@st.composite
def records(draw: st.DrawFn, uuid: str = UUID) -> Record:
    if draw(st.integers(0, 4)) == 0:
        return Record(uuid, INSTANCE, deleted=draw(stamps))
    fps = draw(st.lists(st.sampled_from(FINGERPRINTS), min_size=1, max_size=2, unique=True))
    regs = tuple(sorted((fp, Versioned(draw(stamps), draw(vectors()))) for fp in fps))
    return Record(
        uuid,
        INSTANCE,
        meta=Versioned(draw(stamps), draw(metas)),
        expiry=Versioned(draw(stamps), draw(st.integers(1_700_000_000, 1_700_000_100))),
        vectors=regs,
    )
