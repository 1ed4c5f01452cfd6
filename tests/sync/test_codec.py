"""The sync wire: lossless over records, strict on malformed frames, and the fp16 rounding
of vectors measured on real embeddings of real photos."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import given

from edge.store.entities import normalise_vector
from edge.sync.codec import (
    FeedPage,
    PushAck,
    PushBatch,
    WireError,
    decode_ack,
    decode_feed,
    decode_push,
    decode_record,
    encode_ack,
    encode_feed,
    encode_push,
    encode_record,
    pack,
)
from edge.sync.record import Record, Vector
from tests.support.engine import shared_models
from tests.support.images import read_bgr
from tests.sync.strategies import records


@given(records(), records())
def test_frames_round_trip_records_exactly(a: Record, b: Record) -> None:
    assert decode_record(msgpack.unpackb(msgpack.packb(encode_record(a)))) == a
    batch = PushBatch("box-a", [(1, a), (7, b)])
    assert decode_push(encode_push(batch)) == batch
    page = FeedPage("epoch-1", [(3, a), (4, b)], 4, 9)
    assert decode_feed(encode_feed(page)) == page


def test_ack_round_trip() -> None:
    ack = PushAck(acked=12, applied=3, rejected=1, epoch="e")
    assert decode_ack(encode_ack(ack)) == ack


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"\xc1", "not a msgpack frame"),
        (pack([1, 2]), "must be a map"),
        (pack({"v": 2, "origin": "o", "changes": []}), "unsupported wire version"),
        (pack({"v": 1, "origin": 5, "changes": []}), "origin must be a string"),
        (pack({"v": 1, "origin": "o", "changes": [[1, ["u", "i", "zz", None, None, []]]]}),
         "not an hlc stamp"),
        (pack({"v": 1, "origin": "o", "changes": [[1, ["u", "i", None, None, None,
          [["fp", "0000000000000001:o", "M", "M", 4, b"\x00" * 7]]]]]}), "2\\*dim bytes"),
        (pack({"v": 1, "origin": "o", "changes": [[True, ["u", "i", None, None, None, []]]]}),
         "seq must be an integer"),
        (pack({"v": 1, "origin": "o", "changes": [[1, ["u", "i", None, None, None,
          [["fp", 0, "M", "M", 2, b"\x00" * 4]]]]]}), "meta stamp the record does not have"),
    ],
)  # fmt: skip
def test_malformed_frames_are_wire_errors(frame: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        decode_push(frame)


def test_a_vector_costs_two_bytes_a_dimension_on_the_wire() -> None:
    v = Vector.from_float32("M", "M", np.ones(512, np.float32))
    rec = Record("u" * 36, "inst", vectors=(("f" * 16, _reg(v)),))
    size = len(pack(encode_record(rec)))
    assert 1024 < size < 1024 + 120


def _reg(v: Vector) -> object:
    from edge.store.hlc import Hlc
    from edge.sync.record import Versioned

    return Versioned(Hlc(1, 0, "o"), v)


PHOTOS = [
    ("barack_obama", "1.jpg"), ("barack_obama", "2.jpg"), ("barack_obama", "3.jpg"),
    ("angelina_jolie", "1.jpg"), ("angelina_jolie", "2.jpg"), ("angelina_jolie", "3.jpg"),
    ("elon_musk", "1.jpg"), ("elon_musk", "2.jpg"), ("ben_affleck", "1.jpg"),
    ("ben_affleck", "2.jpg"), ("alex_lacamoire", "2.jpg"), ("alex_lacamoire", "3.jpg"),
]  # fmt: skip


def test_fp16_wire_changes_real_similarity_scores_negligibly(
    testdata: Path, model_dir: Path
) -> None:
    """Every pair of real embeddings: the score of a gallery vector that travelled as fp16
    against a float32 probe, versus the original. Quoted in the README (run with -s)."""
    pipe = shared_models(str(model_dir)).pipeline
    fbi = testdata / "faces_by_identity"
    embs = [pipe.analyze_largest(read_bgr(fbi / p / f)).embedding for p, f in PHOTOS]
    embs = [normalise_vector(e) for e in embs]  # as the store keeps them
    wired = [Vector.from_float32("M", "M", e).to_float32() for e in embs]
    assert all(Vector.from_float32("M", "M", w).to_float32().tobytes() == w.tobytes()
               for w in wired)  # a replica re-describes a received vector exactly  # fmt: skip
    d_cos, d_score, order_kept = 0.0, 0.0, True
    for i, probe in enumerate(embs):
        exact = [pipe.similarity(probe, g) for g in embs]
        rounded = [pipe.similarity(probe, g) for g in wired]
        cos_exact = [float(np.dot(probe, g) / np.linalg.norm(probe) / np.linalg.norm(g))
                     for g in embs]  # fmt: skip
        cos_wired = [float(np.dot(probe, g) / np.linalg.norm(probe)) for g in wired]
        d_cos = max(d_cos, *(abs(a - b) for a, b in zip(cos_exact, cos_wired, strict=True)))
        d_score = max(d_score, *(abs(a - b) for a, b in zip(exact, rounded, strict=True)))
        others = [j for j in range(len(embs)) if j != i]
        order_kept &= max(others, key=lambda j: exact[j]) == max(others, key=lambda j: rounded[j])
    print(f"\nfp16 wire on {len(embs)} real {embs[0].size}-d embeddings: "
          f"max |d cosine| = {d_cos:.2e}, max |d similarityScore| = {d_score:.2e}")  # fmt: skip
    assert 0 < d_cos < 1e-3  # rounding happened, and it is tiny
    assert d_score < 2e-3
    assert order_kept  # the best match of every probe is unchanged
