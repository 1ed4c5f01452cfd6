"""The dlib recognizer and the fused V2 / CC0 packs, with the real models on real photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.config import Settings, load_settings
from edge.runtime.backends import open_session
from edge.runtime.manifest import Manifest
from edge.runtime.registry import ModelRegistry, pack_fingerprint
from edge.store.entities import EntityStore
from edge.vision.align import align_face, similarity_transform
from edge.vision.dlib_embedding import DLIB_FILE, DLIB_TEMPLATE, DlibEmbedder, dlib_chip
from edge.vision.embedding import Embedder
from edge.vision.fusion import FusedEmbedder, build_embedder, fuse, split
from edge.vision.pipeline import FacePipeline

REFERENCE = json.loads((Path(__file__).parent / "data" / "dlib_reference.json").read_text())
V1_FINGERPRINT = "69d034b2027439bd"  # what every V1 gallery on a box is stamped with


def _settings(model_dir: Path, tmp: Path, pack: str) -> Settings:
    return load_settings(None, data_dir=tmp, models={"dir": model_dir, "pack": pack})


@pytest.fixture(scope="module")
def pipes(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, FacePipeline]:
    tmp = tmp_path_factory.mktemp("packs")
    out = {}
    for pack in ("default", "v2", "cc0"):
        s = _settings(model_dir, tmp / pack, pack)
        out[pack] = FacePipeline(ModelRegistry(s), s)
    return out


def _img(testdata: Path, rel: str) -> np.ndarray:
    img = cv2.imread(str(testdata / rel), cv2.IMREAD_COLOR)
    assert img is not None
    return img


# The embedder against dlib's own runtime ----------------------------------------------------
@pytest.mark.parametrize("precision", ["f32"])
def test_dlib_embedder_matches_dlib_runtime(
    model_dir: Path, testdata: Path, precision: str
) -> None:
    """Same chip, same vector as dlib's compute_face_descriptor (recorded with dlib 20.0.1):
    catches a wrong channel order (cosine 0.986-0.993 on colour faces) or input scaling."""
    emb = DlibEmbedder(open_session(model_dir / DLIB_FILE, "embedding", precision=precision))
    colour = 0
    for face in REFERENCE["faces"]:
        chip = dlib_chip(_img(testdata, face["file"]), np.asarray(face["kps"], np.float32))
        ref = np.asarray(face["dlib"], np.float32)
        got = emb.raw(chip)
        assert np.abs(got - ref).max() < 1e-4, face["file"]
        colour += "grayscale" not in face["kind"]
    assert colour >= 8


def test_product_precision_and_dlib_own_alignment_agree(
    pipes: dict[str, FacePipeline], testdata: Path
) -> None:
    """The product's session (bf16 on AMX CPUs) stays within cosine 1e-4 of dlib; the
    5-point template stands in for dlib's own shape-predictor chip (Euclidean < 0.35, far
    below dlib's same-person limit 0.6)."""
    cc0 = pipes["cc0"].embedder
    assert isinstance(cc0, FusedEmbedder)
    part = cc0.parts[0]
    assert isinstance(part, DlibEmbedder)
    for face in REFERENCE["faces"]:
        img = _img(testdata, face["file"])
        kps = np.asarray(face["kps"], np.float32)
        raw = part.raw(dlib_chip(img, kps))
        ref = np.asarray(face["dlib"], np.float32)
        assert float(raw @ ref / np.linalg.norm(raw) / np.linalg.norm(ref)) > 0.9999
        own = np.asarray(face["dlib_own_chip"], np.float32)
        assert float(np.linalg.norm(raw - own)) < 0.35
        assert 1.0 < float(np.linalg.norm(raw)) < 1.8  # dlib's raw descriptor scale


def test_dlib_chip_puts_the_keypoints_on_the_template(testdata: Path) -> None:
    face = REFERENCE["faces"][-1]
    kps = np.asarray(face["kps"], np.float32)
    m = similarity_transform(kps, DLIB_TEMPLATE)
    moved = kps @ m[:, :2].T + m[:, 2]
    # least squares: eyes land within a few pixels of dlib's mean face at 150 px
    assert np.abs(moved[:2] - DLIB_TEMPLATE[:2]).max() < 6
    chip = dlib_chip(_img(testdata, face["file"]), kps)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8


# Fused vectors -------------------------------------------------------------------------------
def test_fused_dot_product_is_the_weighted_cosine_sum(
    pipes: dict[str, FacePipeline], testdata: Path
) -> None:
    v2 = pipes["v2"]
    emb = v2.embedder
    assert isinstance(emb, FusedEmbedder)
    w = v2.registry.pack.embedding_weights
    assert w is not None
    assert emb.weights == pytest.approx((w["embedding"], w["embedding_dlib"]))
    a = v2.analyze_largest(_img(testdata, REFERENCE["faces"][9]["file"])).embedding
    b = v2.analyze_largest(_img(testdata, REFERENCE["faces"][10]["file"])).embedding
    assert a is not None and b is not None and a.shape == (256,)
    assert float(np.linalg.norm(a)) == pytest.approx(1.0, abs=1e-5)
    (a1, a2), (b1, b2) = split(a, emb.dims), split(b, emb.dims)
    fused = emb.weights[0] * float(a1 @ b1) + emb.weights[1] * float(a2 @ b2)
    assert float(a @ b) == pytest.approx(fused, abs=1e-5)
    assert np.allclose(fuse([a1, a2], emb.weights), a, atol=1e-6)


def test_v2_parts_are_the_v1_and_cc0_vectors(
    pipes: dict[str, FacePipeline], testdata: Path
) -> None:
    """One face, three packs: V2's halves are exactly V1's and CC0's vectors, so the fusion
    adds a network and changes nothing else (detection, alignment, preprocessing)."""
    img = _img(testdata, REFERENCE["faces"][11]["file"])
    v1 = pipes["default"].analyze_largest(img).embedding
    v2 = pipes["v2"].analyze_largest(img).embedding
    cc0 = pipes["cc0"].analyze_largest(img).embedding
    assert v1 is not None and v2 is not None and cc0 is not None
    assert v1.shape == (128,) and cc0.shape == (128,)
    p1, p2 = split(v2, (128, 128))
    assert np.allclose(p1, v1, atol=1e-5) and np.allclose(p2, cc0, atol=1e-5)
    assert isinstance(pipes["default"].embedder, Embedder)  # V1 keeps its own code path


@pytest.mark.parametrize("pack", ["v2", "cc0"])
def test_align_then_embed_is_embed_face(
    pipes: dict[str, FacePipeline], testdata: Path, pack: str
) -> None:
    """Cameras keep `align`'s crop and embed it later: exactly the vector of the direct path.
    A bare 112 ArcFace crop (older callers) re-cuts the dlib chip from it, which loses the
    chin strip below the crop: close to, never equal to, the exact vector."""
    pipe = pipes[pack]
    img = _img(testdata, REFERENCE["faces"][9]["file"])
    face = pipe.analyze_largest(img).face
    exact = pipe.embedder.embed_face(img, face.kps)
    assert np.array_equal(pipe.embedder.embed(pipe.embedder.align(img, face.kps)), exact)
    approx = pipe.embedder.embed(align_face(img, face.kps))
    assert 0.85 < float(exact @ approx) < 0.9999
    with pytest.raises(ValueError, match="align"):
        pipe.embedder.embed(np.zeros((150, 100, 3), np.uint8))


def test_v2_and_cc0_rank_same_person_above_others(
    pipes: dict[str, FacePipeline], testdata: Path
) -> None:
    ids = _identities(testdata)
    files = [f["file"] for f in REFERENCE["faces"]]
    for pack in ("v2", "cc0"):
        pipe = pipes[pack]
        scores: list[tuple[bool, float]] = []
        vecs = {f: pipe.analyze_largest(_img(testdata, f)).embedding for f in files}
        for i, fa in enumerate(files):
            for fb in files[i + 1 :]:
                va, vb = vecs[fa], vecs[fb]
                assert va is not None and vb is not None
                scores.append((ids[fa] == ids[fb], pipe.similarity(va, vb)))
        gen = [s for g, s in scores if g]
        imp = [s for g, s in scores if not g]
        assert gen and imp
        assert min(gen) > max(imp), pack


def _identities(testdata: Path) -> dict[str, str]:
    src = json.loads((testdata / "SOURCES.json").read_text())["files"]
    return {f["file"]: f.get("labels", {}).get("identity", "") for f in src}


# Fingerprints: vectors never mix ---------------------------------------------------------------
def test_each_face_model_has_its_own_fingerprint(manifest: Manifest) -> None:
    fps = {p: pack_fingerprint(manifest, p) for p in ("default", "v2", "cc0")}
    assert fps["default"] == V1_FINGERPRINT  # existing V1 galleries stay searchable
    assert len(set(fps.values())) == 3
    # Other fusion weights make other vectors: they must not share a fingerprint either.
    data: dict[str, Any] = manifest.model_dump(by_alias=True)
    data["packs"]["v2"]["embedding_weights"] = {"embedding": 0.5, "embedding_dlib": 0.5}
    assert pack_fingerprint(Manifest.model_validate(data), "v2") != fps["v2"]


def test_store_never_searches_vectors_of_another_face_model(
    pipes: dict[str, FacePipeline], testdata: Path, tmp_path: Path
) -> None:
    img = _img(testdata, REFERENCE["faces"][9]["file"])
    db = tmp_path / "g.sqlite3"
    v1 = pipes["default"]
    with EntityStore(db, pack_fingerprint=v1.registry.fingerprint) as store:
        vec = v1.analyze_largest(img).embedding
        assert vec is not None
        store.create(instance="i", model="EDGE_FACE_V1", model_name="EDGE_FACE_V1",
                     collection="", key="alice", metadata=[], ttl=-1, vector=vec)  # fmt: skip
        assert store.search("i", "EDGE_FACE_V1", vec)
    v2 = pipes["v2"]
    with EntityStore(db, pack_fingerprint=v2.registry.fingerprint) as store:
        assert store.stale_count == 1
        probe = v2.analyze_largest(img).embedding
        assert probe is not None
        assert store.search("i", "EDGE_FACE_V1", probe) == []
        assert store.search("i", v2.settings.names.face, probe) == []


def test_packs_answer_to_their_face_model_names(model_dir: Path, tmp_path: Path) -> None:
    assert _settings(model_dir, tmp_path, "default").names.face == "EDGE_FACE_V1"
    assert _settings(model_dir, tmp_path, "v2").names.face == "EDGE_FACE_V2"
    assert _settings(model_dir, tmp_path, "cc0").names.face == "EDGE_FACE_CC0"
    s = load_settings(None, data_dir=tmp_path, models={"pack": "v2"}, names={"face": "MINE"})
    assert s.names.face == "MINE"  # an explicit name wins


def test_build_embedder_refuses_a_fusion_without_weights(
    model_dir: Path, tmp_path: Path, manifest: Manifest
) -> None:
    data: dict[str, Any] = manifest.model_dump(by_alias=True)
    data["packs"]["v2"]["embedding_weights"] = None
    broken = Manifest.model_validate(data)
    reg = ModelRegistry(_settings(model_dir, tmp_path, "v2"), broken)
    with pytest.raises(ValueError, match="embedding_weights"):
        build_embedder(reg)


def test_int8_gate_leaves_the_dlib_network_on_fp(
    model_dir: Path, tmp_path: Path, testdata: Path
) -> None:
    """The embedding gate measures MobileFaceNet crops: a cc0 box must not get an INT8 dlib
    network accepted by a gate that never ran it on its own chips."""
    from edge.evaluation.quantization import QuantContext, quantize_role

    ctx = QuantContext(_settings(model_dir, tmp_path, "cc0"), testdata, progress=False)
    res = quantize_role(ctx, "embedding", [])
    assert res.accepted is None and "MobileFaceNet" in res.reason
    assert not (model_dir / "int8").exists() or not any((model_dir / "int8").glob("*dlib*"))
