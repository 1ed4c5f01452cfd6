"""The four accuracy-v2 files: installed from a mirror like every model, sha256-checked; a
source in another format names everything its conversion checks (tests/runtime/test_convert.py
converts them for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.runtime.fetch import install_file, sha256_file
from edge.runtime.manifest import Manifest

NEW = (
    "recognition_dlib_resnet_v1_128d.onnx",
    "agegender_hse_faceres_224.onnx",
    "landmark468_mediapipe_face_mesh.onnx",
    "landmark468_mediapipe_face_landmark.tflite",
)


@pytest.mark.parametrize("name", NEW)
def test_new_files_install_from_the_mirror_verified(
    name: str, manifest: Manifest, shared_dir: Path, tmp_path: Path
) -> None:
    spec = manifest.by_file[name]
    path = install_file(spec, tmp_path, mirror=shared_dir / "models", log=lambda _m: None)
    assert sha256_file(path) == spec.sha256 and path.stat().st_size == spec.bytes


def test_licence_flags_are_visible(manifest: Manifest) -> None:
    f = manifest.by_file
    assert f["recognition_dlib_resnet_v1_128d.onnx"].licence.startswith("CC0")
    assert not f["recognition_dlib_resnet_v1_128d.onnx"].licence_flags
    age = f["agegender_hse_faceres_224.onnx"]
    assert "licence-unclear" in age.licence_flags and age.non_commercial
    # licence unclear: only in opt-in non-commercial packs (research-nc), never the default
    holders = [n for n, p in manifest.packs.items() if any(age.file in f for f in p.roles.values())]
    assert holders == ["research-nc"] and manifest.pack("research-nc").non_commercial
    # the licence-clean pack's recognizer is the public-domain network alone
    assert manifest.pack("cc0").roles["embedding"] == ["recognition_dlib_resnet_v1_128d.onnx"]
    assert not any(r.startswith("embedding_") for r in manifest.pack("cc0").roles)


def test_every_convert_source_is_complete(manifest: Manifest) -> None:
    """A convert source names its converter and every sha256 the install checks: the source
    archive, the member it converts, and the conversion's own bytes (what verify accepts)."""
    converts = [f for f in manifest.files if f.source.kind == "convert"]
    assert {f.file for f in converts} == set(NEW[:3])
    for f in converts:
        src = f.source
        assert src.converter in ("dlib-dat", "tfjs-graph") and src.package and src.version
        assert src.archive_sha256 and src.archive_bytes and src.converted_sha256
        assert src.member in src.member_sha256 and len(f.accepted()) == 2
        assert not src.urls  # npm: the registry's tarball (npm_config_registry); PyPI: pip
