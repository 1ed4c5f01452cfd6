"""The registry opens a pack's models once and reports what actually runs them.

A unit test of `ModelRegistry`: it builds the class directly (elsewhere only `edge.engine` does).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import Settings
from edge.runtime.manifest import Manifest
from edge.runtime.registry import ModelMissingError, ModelRegistry


def test_sessions_are_cached_and_components_report_backend(session_settings: Settings) -> None:
    reg = ModelRegistry(session_settings)
    s1 = reg.session("embedding")
    assert reg.session("embedding") is s1
    comps = {c["file"]: c for c in reg.components()}
    emb = comps["recognition_mobilefacenet_foamliu_128d.onnx"]
    assert emb["loaded"] is True and emb["backend"] == "openvino" and emb["device"] == "CPU"
    assert comps["face_detection_yunet_2026may.onnx"]["loaded"] is False
    assert "review" in comps["landmark106_pfld_lite_insightface_order.onnx"]["licenceFlags"]
    assert not reg.verify()


def test_backend_override_per_role(make_settings) -> None:  # type: ignore[no-untyped-def]
    s = make_settings(models={"backend_overrides": {"embedding": "onnxruntime"}})
    reg = ModelRegistry(s)
    assert reg.session("embedding").info.backend == "onnxruntime"
    assert reg.session("detector_fast").info.backend == "openvino"


def test_missing_model_names_file_and_fix(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, models={"dir": tmp_path / "empty"})
    reg = ModelRegistry(s)
    with pytest.raises(ModelMissingError, match="edge-face models fetch"):
        reg.session("embedding")
    with pytest.raises(ModelMissingError, match="no 'nonexistent' model"):
        reg.path("nonexistent")
    assert reg.verify()  # every file reported missing


def test_fingerprint_follows_the_embedding_weights_only(make_settings) -> None:  # type: ignore[no-untyped-def]
    a = ModelRegistry(make_settings())
    b = ModelRegistry(make_settings(models={"pack": "research-nc"}))
    # Different detectors, same embedding file: enrolled vectors stay compatible.
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    data = a.manifest.model_dump(by_alias=True)
    emb = a.pack.roles["embedding"][0]
    for f in data["files"]:
        if f["file"] == emb:
            f["sha256"] = "0" * 64
    other = ModelRegistry(make_settings(), manifest=Manifest.model_validate(data))
    assert other.fingerprint != a.fingerprint
