"""The model installer: mirror copies, sha256 enforcement, no half-written files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge.cli import main
from edge.runtime.fetch import FetchError, install_file, remove_stale_parts, verify_file
from edge.runtime.manifest import Manifest
from tests.support.paths import MODEL_MIRROR


def _small(manifest: Manifest):
    return min(manifest.pack_files("default"), key=lambda f: f.bytes)


def test_install_from_mirror_verifies_and_is_idempotent(tmp_path: Path, manifest: Manifest) -> None:
    spec = _small(manifest)
    logs: list[str] = []
    path = install_file(spec, tmp_path, mirror=MODEL_MIRROR, log=logs.append)
    assert path.read_bytes() == (MODEL_MIRROR / spec.file).read_bytes()
    assert verify_file(spec, tmp_path).state == "ok"
    install_file(spec, tmp_path, mirror=MODEL_MIRROR, log=logs.append)
    assert logs[0].split()[0] == "copied" and logs[1].split()[0] == "ok"


def test_tampered_mirror_file_is_rejected_and_nothing_left(
    tmp_path: Path, manifest: Manifest
) -> None:
    spec = _small(manifest)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    data = bytearray((MODEL_MIRROR / spec.file).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    (mirror / spec.file).write_bytes(bytes(data))
    dest = tmp_path / "models"
    with pytest.raises(FetchError, match="sha256 mismatch"):
        install_file(spec, dest, mirror=mirror, log=lambda _m: None)
    assert not (dest / spec.file).exists()
    assert list(dest.iterdir()) == []  # no .part leftovers


def test_verify_reports_missing_size_and_mismatch(tmp_path: Path, manifest: Manifest) -> None:
    spec = _small(manifest)
    assert verify_file(spec, tmp_path).state == "missing"
    (tmp_path / spec.file).write_bytes(b"short")
    assert verify_file(spec, tmp_path).state == "size"
    data = bytearray((MODEL_MIRROR / spec.file).read_bytes())
    data[0] ^= 0x01
    (tmp_path / spec.file).write_bytes(bytes(data))
    assert verify_file(spec, tmp_path).state == "mismatch"


def test_installed_wrong_file_is_replaced(tmp_path: Path, manifest: Manifest) -> None:
    spec = _small(manifest)
    (tmp_path / spec.file).write_bytes(b"garbage")
    install_file(spec, tmp_path, mirror=MODEL_MIRROR, log=lambda _m: None)
    assert verify_file(spec, tmp_path).state == "ok"


def test_missing_file_in_mirror_names_it(tmp_path: Path, manifest: Manifest) -> None:
    spec = _small(manifest)
    with pytest.raises(FetchError, match=spec.file):
        install_file(spec, tmp_path / "m", mirror=tmp_path, log=lambda _m: None)


def test_stale_parts_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".x.onnx.abc.part").write_bytes(b"partial")
    (tmp_path / "keep.onnx").write_bytes(b"k")
    assert remove_stale_parts(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.onnx"]


def test_cli_fetch_verify_and_tamper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "models"
    assert main(["models", "fetch", "--from", str(MODEL_MIRROR), "--dir", str(dest)]) == 0
    assert main(["models", "verify", "--dir", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "all files installed and verified" in out
    # Tamper with one installed file: verify fails and names it.
    victim = sorted(dest.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    assert main(["models", "verify", "--dir", str(dest)]) == 1
    assert f"mismatch {victim.name}" in " ".join(capsys.readouterr().out.split())
    # A tampered mirror makes fetch fail with exit 1 and leaves the bad file out.
    mirror = tmp_path / "mirror"
    shutil.copytree(MODEL_MIRROR, mirror)
    (mirror / victim.name).write_bytes(b"\x00" * (victim.stat().st_size))
    victim.unlink()
    assert main(["models", "fetch", "--from", str(mirror), "--dir", str(dest)]) == 1
    assert not victim.exists()
    assert "sha256 mismatch" in capsys.readouterr().err


def test_cli_list_shows_licence_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["models", "list", "--pack", "research-nc", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "scrfd_2.5g_bnkps.onnx" in out and "non-commercial" in out


def test_unknown_pack_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="unknown model pack 'nope'"):
        main(["models", "list", "--pack", "nope"])
