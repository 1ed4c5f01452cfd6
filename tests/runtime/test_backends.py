"""Every model file of the default pack runs on both backends and they agree."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.metrics import MODEL_INFERENCE
from edge.runtime.backends import INFERENCE_WORK, BackendError, open_session
from edge.runtime.manifest import Manifest
from edge.runtime.probe import probe_inputs
from edge.runtime.registry import ONE_THREAD_ROLES
from tests.support.images import read_bgr

REFERENCE_ONLY = {"liveness_v2_reference", "liveness_v1se_reference", "emotion_reference"}


def _default_roles(manifest: Manifest) -> list[tuple[str, str]]:
    pack = manifest.pack("default")
    return [(role, files[0]) for role, files in sorted(pack.roles.items())]


@pytest.fixture(scope="module")
def face_photo(testdata: Path) -> np.ndarray:
    return read_bgr(testdata / "multi_face" / "fr_obama_and_biden.jpg")


@pytest.mark.parametrize("role,file", _default_roles(Manifest.load()))
def test_backends_agree_on_real_photo(
    role: str, file: str, model_dir: Path, face_photo: np.ndarray
) -> None:
    path = model_dir / file
    # f32 on both sides: OpenVINO's CPU default may be bf16 (checked separately below).
    ov = open_session(path, role, "openvino", precision="f32")
    assert ov.info.backend == "openvino" and ov.info.device == "CPU"
    assert ov.info.precision == "f32"
    feeds = probe_inputs(ov.info, face_photo)
    out_ov = ov.run(feeds)
    assert len(out_ov) == len(ov.info.outputs)
    assert all(np.isfinite(o).all() for o in out_ov)
    if path.suffix != ".onnx":
        # IR / TFLite: onnxruntime cannot read them; the request is routed to OpenVINO.
        routed = open_session(path, role, "onnxruntime")
        assert routed.info.backend == "openvino"
        return
    ort = open_session(path, role, "onnxruntime", providers=["cpu"])
    assert ort.info.backend == "onnxruntime" and ort.info.device == "CPUExecutionProvider"
    out_ort = ort.run(feeds)
    for a, b in zip(out_ov, out_ort, strict=True):
        assert a.shape == b.shape
        scale = max(float(np.abs(b).max()), 1.0)
        assert float(np.abs(a - b).max()) <= 2e-3 * scale, f"{role}: backends disagree"


def test_inference_time_is_recorded(model_dir: Path, face_photo: np.ndarray) -> None:
    sess = open_session(model_dir / "face_detection_yunet_2026may.onnx", "probe_role", "openvino")
    before = MODEL_INFERENCE.snapshot().get((("backend", "openvino"), ("role", "probe_role")))
    sess.run(probe_inputs(sess.info, face_photo))
    after = MODEL_INFERENCE.snapshot()[(("backend", "openvino"), ("role", "probe_role"))]
    assert after[1] == (before[1] if before else 0) + 1 and after[0] > 0


def test_unknown_backend_and_unreadable_file(tmp_path: Path) -> None:
    bogus = tmp_path / "x.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(BackendError, match="unknown backend"):
        open_session(bogus, "r", "tensorflow")
    with pytest.raises(BackendError, match=r"x\.onnx"):
        open_session(bogus, "r", "onnxruntime")
    with pytest.raises(BackendError, match=r"x\.onnx"):
        open_session(bogus, "r", "openvino")


def test_ort_provider_order_falls_back_to_cpu_and_says_so(model_dir: Path) -> None:
    sess = open_session(
        model_dir / "recognition_mobilefacenet_foamliu_128d.onnx",
        "embedding",
        "onnxruntime",
        providers=["tensorrt", "cuda", "cpu"],
    )
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a GPU provider is present on this machine")
    # No GPU provider installed: the graph runs on CPU, which was the first *available* choice.
    assert sess.info.device == "CPUExecutionProvider"
    assert "TensorrtExecutionProvider" in sess.info.requested
    assert sess.info.fallback is False


def test_bf16_default_keeps_embeddings_close(model_dir: Path, face_photo: np.ndarray) -> None:
    """Where the CPU computes in bf16 by default, embeddings still point the same way."""
    path = model_dir / "recognition_mobilefacenet_foamliu_128d.onnx"
    fast = open_session(path, "embedding", "openvino")
    exact = open_session(path, "embedding", "openvino", precision="f32")
    feeds = probe_inputs(exact.info, face_photo)
    a, b = fast.run(feeds)[0].ravel(), exact.run(feeds)[0].ravel()
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert cos > 0.99, f"{fast.info.precision} vs f32 cosine {cos:.4f}"


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
@pytest.mark.parametrize("role", sorted(ONE_THREAD_ROLES))
def test_one_thread_sessions_match_the_default_and_any_concurrency(
    role: str, backend: str, model_dir: Path, face_photo: np.ndarray
) -> None:
    """The request path's models run one thread per inference, several at once: the results
    are those of the default session, bit for bit, however many calls overlap (OpenVINO
    returns zeros for some models with several streams; this would catch it here)."""
    path = model_dir / Manifest.load().pack("default").roles[role][0]
    default = open_session(path, role, backend)
    narrow = open_session(path, role, backend, one_thread=True)
    photos = [face_photo, face_photo[::2, ::2].copy(), cv2.flip(face_photo, 1)]
    feeds = [probe_inputs(default.info, p) for p in photos]
    expected = [default.run(f) for f in feeds]
    alone = [narrow.run(f) for f in feeds]  # nothing else running: all cores
    started, release = threading.Event(), threading.Event()

    def other_request() -> None:
        with INFERENCE_WORK:
            started.set()
            release.wait(30)

    with ThreadPoolExecutor(5) as pool:
        pool.submit(other_request)
        assert started.wait(30)
        beside = [narrow.run(f) for f in feeds]  # another request busy: one thread
        got = list(pool.map(narrow.run, feeds * 8))
        release.set()
    for i, out in enumerate([*alone, *beside, *got]):
        for a, b in zip(out, expected[i % len(feeds)], strict=True):
            assert np.array_equal(a, b) and np.abs(a).max() > 0


def test_concurrent_callers_each_take_a_replica_up_to_the_limit(
    model_dir: Path, face_photo: np.ndarray
) -> None:
    """A one-thread compilation runs one inference at a time, so a caller finding every
    replica busy compiles another (same results), up to the limit; past it, it waits."""
    from edge.runtime import backends

    path = model_dir / Manifest.load().pack("default").roles["embedding"][0]
    sess = open_session(path, "embedding", "openvino", one_thread=True)
    assert isinstance(sess, backends.OpenVinoSession)
    feeds = probe_inputs(sess.info, face_photo)
    expected = sess.run(feeds)[0]
    core = backends.OpenVinoSession.core()
    model = core.read_model(str(path))
    config = {"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}

    def compile_one() -> object:
        return core.compile_model(model, "CPU", config)

    exact = open_session(path, "embedding", "openvino", precision="f32").run(feeds)[0]
    for limit in (2, 1):
        replicas = backends._Replicas(compile_one(), compile_one, limit)
        held = replicas._take()  # a caller in the middle of an inference
        with ThreadPoolExecutor(1) as pool:
            other = pool.submit(replicas.infer, feeds, 1)
            if limit == 2:
                got = other.result(60)  # did not wait for the held replica
                assert replicas.count == 2
            else:
                with pytest.raises(FuturesTimeout):
                    other.result(0.5)  # waits: no replica may be added
                replicas._give(held)
                got = other.result(60)
                assert replicas.count == 1
        assert np.array_equal(got[0], exact)
    assert np.abs(expected).max() > 0 and expected.shape == exact.shape


def test_a_replica_that_fails_to_compile_caps_the_replicas_at_those_made(
    model_dir: Path, face_photo: np.ndarray
) -> None:
    """Out of memory for a second replica, say: the caller waits for the one there is and
    gets its result; no further compile is tried."""
    from edge.runtime import backends

    path = model_dir / Manifest.load().pack("default").roles["embedding"][0]
    core = backends.OpenVinoSession.core()
    model = core.read_model(str(path))
    config = {"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    tries: list[int] = []

    def no_memory() -> object:
        tries.append(1)
        raise RuntimeError("cannot allocate memory")

    replicas = backends._Replicas(core.compile_model(model, "CPU", config), no_memory, 4)
    feeds = probe_inputs(open_session(path, "embedding", "openvino").info, face_photo)
    alone = replicas.infer(feeds, 1)[0]
    held = replicas._take()
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(replicas.infer, feeds, 1)
        with pytest.raises(FuturesTimeout):
            other.result(0.5)  # the compile failed: it waits for the held replica
        replicas._give(held)
        assert np.array_equal(other.result(60)[0], alone)
    assert tries == [1] and replicas.count == 1
    held = replicas._take()
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(replicas.infer, feeds, 1)
        with pytest.raises(FuturesTimeout):
            other.result(0.5)
        replicas._give(held)
        other.result(60)
    assert tries == [1]  # capped: not tried again


def test_dynamic_input_model_runs_each_size_on_its_own_static_compilation(
    model_dir: Path, face_photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """YuNet takes any size: each size met gets a static compilation (faster on the CPU
    plugin) with the dynamic graph's results, up to a limit; later sizes stay dynamic."""
    from edge.runtime import backends

    monkeypatch.setattr(backends._StaticShapes, "LIMIT", 2)
    path = model_dir / "face_detection_yunet_2026may.onnx"
    sess = open_session(path, "detector_fast", "openvino", precision="f32", one_thread=True)
    assert isinstance(sess, backends.OpenVinoSession) and sess._shapes is not None
    dynamic = sess._compiled.create_infer_request()  # the dynamic-shape compilation
    name = sess.info.inputs[0].name
    sizes = [(256, 320), (320, 256), (192, 320)]
    for h, w in sizes:
        img = cv2.resize(face_photo, (w, h))
        blob = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)[None]
        got = sess.run({name: blob})
        ref = dynamic.infer({name: blob})
        for i, out in enumerate(got):
            assert np.allclose(out, ref[i], atol=1e-4), (h, w, i)
        assert sess.run({name: blob})[0].tobytes() == got[0].tobytes()  # same compile again
    assert sess._shapes.sizes == [(1, 3, 256, 320), (1, 3, 320, 256)]  # the third: dynamic
    # A static-input model has nothing to reshape.
    emb = open_session(model_dir / "recognition_mobilefacenet_foamliu_128d.onnx", "e", "openvino")
    assert isinstance(emb, backends.OpenVinoSession) and emb._shapes is None
