"""INT8 variants: NNCF quantization from real faces, the accuracy gate, registry selection.

Real models installed by the product installer, real test images; the embedding is quantized
once per session from 30 calibration images (a few seconds) and gated on the labelled folder.
Registry selection is a unit test of `ModelRegistry`: it builds the class directly (elsewhere
only `edge.engine` does).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nncf")

from edge.config import Settings, load_settings
from edge.evaluation.quantization import (
    QuantContext,
    RoleResult,
    calibration_images,
    quantize_role,
)
from edge.runtime.backends import open_session
from edge.runtime.fetch import install_files
from edge.runtime.manifest import Manifest
from edge.runtime.quantize import output_layers, read_sidecar, select_int8, variant_paths
from edge.runtime.registry import ModelRegistry
from edge.vision.embedding import Embedder


@pytest.fixture(scope="module")
def private_models(
    tmp_path_factory: pytest.TempPathFactory, manifest: Manifest, shared_dir: Path
) -> Path:
    """The default pack in a directory of its own: these tests write `int8/` into it."""
    d = tmp_path_factory.mktemp("qmodels")
    install_files(
        manifest.pack_files("default"), d, mirror=shared_dir / "models", log=lambda _m: None
    )
    return d


def _settings(tmp: Path, model_dir: Path, int8: bool) -> Settings:
    return load_settings(None, data_dir=tmp / "data", models={"dir": model_dir, "int8": int8})


@pytest.fixture(scope="module")
def ctx(
    tmp_path_factory: pytest.TempPathFactory, private_models: Path, testdata: Path
) -> QuantContext:
    s = _settings(tmp_path_factory.mktemp("qdata"), private_models, int8=False)
    return QuantContext(s, testdata, progress=False)


@pytest.fixture(scope="module")
def embedding_result(ctx: QuantContext, testdata: Path) -> RoleResult:
    images = calibration_images([testdata / "faces_by_identity", testdata / "multi_face"], 30)
    return quantize_role(ctx, "embedding", images, runs=50)


def test_embedding_variant_written_with_sidecar(
    embedding_result: RoleResult, ctx: QuantContext
) -> None:
    r = embedding_result
    assert r.written is not None and r.written.is_file()
    meta = read_sidecar(variant_paths(ctx.registry.model_dir, r.file).sidecar)
    assert meta is not None
    assert meta.source_sha256 == ctx.registry.files("embedding")[0].sha256
    assert meta.calibration_images == 30 and meta.calibration_samples >= 30
    assert {c.metric for c in meta.checks} >= {
        "all TAR@FAR1e-3",
        "all AUC",
        "photo TAR@FAR1e-3",
        "FP-vs-INT8 all TAR@FAR1e-3",
    }
    assert meta.accepted == all(c.ok for c in meta.checks) == r.accepted
    # the IR really holds INT8 arithmetic
    assert "FakeQuantize" in r.written.read_text() or "u8" in r.written.read_text()
    for k in ("fp_p50", "fp_p95", "int8_p50", "int8_p95", "f32_p50"):
        assert meta.latency_ms[k] > 0


def test_int8_embedding_agrees_with_fp32(embedding_result: RoleResult, ctx: QuantContext) -> None:
    assert embedding_result.written is not None
    fp = Embedder(open_session(ctx.registry.path("embedding"), "embedding", precision="f32"))
    q = Embedder(open_session(embedding_result.written, "embedding", precision="f32"))
    crops = [it.crop for it in ctx.identity_faces() if it.crop is not None][::4]
    assert len(crops) > 100
    cos = np.array([float(fp.embed(c) @ q.embed(c)) for c in crops])
    assert np.median(cos) > 0.99
    assert np.mean(cos > 0.98) >= 0.95, f"min {cos.min():.4f}"


def test_registry_selects_int8_only_when_enabled_accepted_and_matching(
    embedding_result: RoleResult,
    ctx: QuantContext,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model_dir = ctx.registry.model_dir
    v = variant_paths(model_dir, embedding_result.file)
    original = v.sidecar.read_text()
    meta = json.loads(original)
    spec = ctx.registry.files("embedding")[0]

    def precision(int8: bool) -> str:
        reg = ModelRegistry(_settings(tmp_path, model_dir, int8))
        return reg.session("embedding").info.precision

    try:
        # An accepted verdict (the gate's own output when it passed; set here otherwise so
        # the selection rules are exercised either way).
        meta["accepted"] = True
        v.sidecar.write_text(json.dumps(meta))
        assert select_int8(model_dir, spec)[0] == v.xml
        assert precision(True) == "int8"
        assert precision(False) != "int8"
        reg = ModelRegistry(_settings(tmp_path, model_dir, True))
        reg.session("embedding")
        comp = next(c for c in reg.components() if c["role"] == "embedding")
        assert comp["precision"] == "int8"

        # rejected by the gate
        v.sidecar.write_text(json.dumps({**meta, "accepted": False, "reason": "x"}))
        with caplog.at_level(logging.INFO, logger="edge.runtime.registry"):
            assert precision(True) != "int8"
        assert "rejected" in caplog.text

        # made from another model version
        v.sidecar.write_text(json.dumps({**meta, "source_sha256": "0" * 64}))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="edge.runtime.registry"):
            assert precision(True) != "int8"
        assert "sha256" in caplog.text

        # IR weights swapped after the gate
        v.sidecar.write_text(json.dumps({**meta, "int8_sha256": "f" * 64}))
        assert precision(True) != "int8"

        # unreadable sidecar
        v.sidecar.write_text("{not json")
        assert precision(True) != "int8"
    finally:
        v.sidecar.write_text(original)


def test_output_layers_are_the_heads(private_models: Path) -> None:
    """Every YuNet output (12: cls/obj/bbox/kps x 3 strides) has its own head convolution;
    those, and only those, are kept FP."""
    import openvino as ov

    model = ov.Core().read_model(str(private_models / "face_detection_yunet_2026may.onnx"))
    kinds = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()}
    names = output_layers(model)
    convs = [n for n in names if kinds[n] in ("Convolution", "GroupConvolution")]
    assert len(convs) == len(model.outputs) == 12
    assert all(kinds[n] in ("Convolution", "GroupConvolution", "Add") for n in names)


def test_command_rejects_missing_calibration_folder(
    private_models: Path, tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli import main

    before = sorted(p.name for p in (private_models / "int8").glob("*"))
    rc = main(
        ["models", "quantize", "--dir", str(private_models), "--calib", str(tmp_path / "nope"),
         "--data", str(testdata)]
    )  # fmt: skip
    assert rc == 2
    assert "--calib" in capsys.readouterr().err
    assert sorted(p.name for p in (private_models / "int8").glob("*")) == before


def test_command_quantizes_prints_tables_and_records_verdict(
    embedding_result: RoleResult,
    private_models: Path,
    testdata: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from edge.cli import main

    calib = [str(testdata / "faces_by_identity"), str(testdata / "multi_face")]
    argv = ["models", "quantize", "--dir", str(private_models), "--roles", "embedding"]
    rc = main([*argv, "--max-images", "30", "--calib", *calib, "--data", str(testdata)])
    out = capsys.readouterr().out
    meta = read_sidecar(variant_paths(private_models, embedding_result.file).sidecar)
    assert meta is not None and meta.calibration_images == 30
    assert rc == (0 if meta.accepted else 1)
    assert "Accuracy gate" in out and "INT8 p50" in out
    assert ("ACCEPTED" if meta.accepted else "REJECTED") in out
    # progress bars and NNCF output stay off stdout
    assert "Statistics collection" not in out and "calibrate embedding" not in out


def test_gate_rejects_blank_calibration(
    embedding_result: RoleResult, ctx: QuantContext, tmp_path: Path
) -> None:
    """One black crop as the whole calibration set really breaks the ranges (measured: TAR
    at FAR 1e-3 falls by ~0.7); the gate must say so, and the registry must keep FP.
    Runs last in this module: it overwrites the session's variant with a rejected one."""
    name = ctx.registry.session("embedding").info.inputs[0].name
    blank = Embedder.preprocess(np.zeros((112, 112, 3), np.uint8))
    r = quantize_role(ctx, "embedding", [], runs=50, feeds=[{name: blank}])
    assert r.accepted is False
    failed = {c.metric for c in r.checks if not c.ok}
    assert "all TAR@FAR1e-3" in failed
    meta = read_sidecar(variant_paths(ctx.registry.model_dir, r.file).sidecar)
    assert meta is not None and meta.accepted is False and "TAR" in meta.reason
    reg = ModelRegistry(_settings(tmp_path, ctx.registry.model_dir, True))
    assert reg.session("embedding").info.precision != "int8"
