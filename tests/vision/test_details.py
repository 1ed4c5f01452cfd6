"""DetailAnalyzer orchestration: requested blocks only, shared work, threads, backends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from edge.api.wire import details_json
from edge.runtime.backends import open_session
from edge.runtime.registry import ModelRegistry
from edge.vision.attributes import EyeState, MaskDetector
from edge.vision.details import DetailAnalyzer
from edge.vision.landmarks import CROP_SCALE, INPUT_SIZE, LandmarkModel, similarity_crop
from edge.vision.pose import HeadPose
from edge.vision.types import DetailFlags, FaceDetails
from tests.support.images import read_bgr

PORTRAIT = "faces_by_identity/barack_obama/1.jpg"
BLOCKS = ("position", "angle", "landmarks", "quality", "attributes")


@pytest.fixture(scope="module")
def analyzer(registry: ModelRegistry) -> DetailAnalyzer:
    """Warmed up first, as the service does (the shared `analyzer` is not)."""
    a = DetailAnalyzer(registry)
    a.warmup()
    return a


@pytest.mark.parametrize("block", BLOCKS)
def test_only_the_requested_block(analyzer, largest_face, testdata: Path, block: str) -> None:
    img = read_bgr(testdata / PORTRAIT)
    face = largest_face(img)
    out = analyzer.analyze(img, face, DetailFlags(**{block: True}))
    assert [b for b in BLOCKS if getattr(out, b) is not None] == [block]
    assert list(details_json(out)) == [block]
    if block == "position":
        assert out.position == face.position(img.shape[1], img.shape[0])


def test_no_flags_no_blocks(analyzer, largest_face, testdata: Path) -> None:
    img = read_bgr(testdata / PORTRAIT)
    out = analyzer.analyze(img, largest_face(img), DetailFlags())
    assert out == FaceDetails() and out.landmarks is None and details_json(out) == {}


def test_position_alone_runs_no_model(
    analyzer, largest_face, testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = read_bgr(testdata / PORTRAIT)
    face = largest_face(img)
    used: list[str] = []
    real = analyzer.registry.session
    monkeypatch.setattr(analyzer.registry, "session", lambda role: used.append(role) or real(role))
    analyzer.analyze(img, face, DetailFlags(position=True))
    assert used == []
    analyzer.analyze(img, face, DetailFlags(angle=True))
    assert set(used) == {"landmarks106", "headpose_1x1", "headpose_var"}


def test_landmarks_and_mask_computed_once_per_face(
    analyzer, largest_face, testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spy on the real methods: all blocks together still run each model once."""
    img = read_bgr(testdata / PORTRAIT)
    face = largest_face(img)
    calls = {"lm": 0, "mask": 0, "eyes": 0}
    lm_run, mask_raw, eyes = LandmarkModel._run, MaskDetector.raw, EyeState.predict

    def count(key, fn):  # type: ignore[no-untyped-def]
        def wrapped(*a, **k):  # type: ignore[no-untyped-def]
            calls[key] += 1
            return fn(*a, **k)

        return wrapped

    monkeypatch.setattr(LandmarkModel, "_run", count("lm", lm_run))
    monkeypatch.setattr(MaskDetector, "raw", count("mask", mask_raw))
    monkeypatch.setattr(EyeState, "predict", count("eyes", eyes))
    out = analyzer.analyze(img.copy(), face, DetailFlags.all())
    assert all(getattr(out, b) is not None for b in BLOCKS)
    assert calls == {"lm": 1, "mask": 1, "eyes": 1}


def test_mask_detector_runs_once_per_image_for_many_faces(
    analyzer, detectors, testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = read_bgr(testdata / "multi_face/fr_obama_and_biden.jpg")
    faces = detectors[1].detect(img)
    assert len(faces) >= 2
    frames: list[tuple[int, ...]] = []
    raw = MaskDetector.raw
    monkeypatch.setattr(MaskDetector, "raw", lambda self, b: frames.append(b.shape) or raw(self, b))
    for f in faces:
        attributes = analyzer.analyze(img, f, DetailFlags(attributes=True)).attributes
        assert attributes is not None and attributes.mask is not None
    # the whole frame is analysed once; only crops around unmatched small faces may follow
    assert frames.count(img.shape) == 1


def test_concurrent_calls_match_sequential(analyzer, largest_face, testdata: Path) -> None:
    rels = [PORTRAIT, "faces_by_identity/angelina_jolie/1.jpg", "awkward/masked_face_2.jpeg",
            "annotations/emotion/faceapi_surprised.jpg"]  # fmt: skip
    jobs = [(read_bgr(testdata / r),) for r in rels]
    jobs = [(img, largest_face(img)) for (img,) in jobs]
    flags = DetailFlags.all()
    expected = [details_json(analyzer.analyze(img, f, flags)) for img, f in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda j: details_json(analyzer.analyze(j[0], j[1], flags)), jobs * 3))
    assert got == expected * 3


@pytest.mark.parametrize("role", ["landmarks106", "headpose_1x1", "headpose_var", "eye_state",
                                  "mask"])  # fmt: skip
def test_openvino_and_onnxruntime_agree(
    registry: ModelRegistry, largest_face, testdata: Path, role: str
) -> None:
    img = read_bgr(testdata / PORTRAIT)
    face = largest_face(img)
    if role == "landmarks106":
        crop, _ = similarity_crop(img, face, INPUT_SIZE, CROP_SCALE)
        feed = (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    elif role.startswith("headpose"):
        crop, _ = similarity_crop(img, face, 64, 1.0)
        feed = ((crop.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
    elif role == "eye_state":
        pts = LandmarkModel(registry).predict(img, face)
        feed = EyeState(registry).patches(img, pts)
    else:
        import cv2

        rgb = cv2.cvtColor(cv2.resize(img, (640, 480)), cv2.COLOR_BGR2RGB)
        feed = ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
    feed = np.ascontiguousarray(feed)
    path = registry.path(role)
    ort = open_session(path, role, "onnxruntime")
    ov32 = open_session(path, role, "openvino", precision="f32")
    ov = open_session(path, role, "openvino")  # the default: bf16 where the CPU has it
    assert ort.info.backend == "onnxruntime" and ov.info.backend == "openvino"
    ref = ort.run({ort.info.inputs[0].name: feed})
    exact = ov32.run({ov32.info.inputs[0].name: feed})
    fast = ov.run({ov.info.inputs[0].name: feed})
    for x, y in zip(exact, ref, strict=True):
        assert np.allclose(x, y, atol=1e-4), f"{role} f32: max diff {np.abs(x - y).max()}"
    # Default precision, on the outputs this code reads, in their own units: landmark
    # coordinates 1 % of the crop, head pose 1.5 deg, probabilities 0.05, boxes 1 %.
    tol = {"landmarks106": 0.01, "headpose_1x1": 1.5, "headpose_var": 1.5}.get(role, 0.05)
    used = [i for i, o in enumerate(ref) if o.size != 64 * 28 * 28]  # skip PFLD's aux map
    for i in used:
        diff = float(np.abs(fast[i] - ref[i]).max())
        assert diff < tol, f"{role} {ov.info.precision}: output {i} max diff {diff}"


def test_pose_is_the_same_through_the_analyzer(registry, analyzer, largest_face, testdata) -> None:
    img = read_bgr(testdata / PORTRAIT)
    face = largest_face(img)
    pts = LandmarkModel(registry).predict(img, face)
    direct = HeadPose(registry).estimate(img, face, pts)
    via = analyzer.analyze(img, face, DetailFlags(angle=True)).angle
    assert via == direct
