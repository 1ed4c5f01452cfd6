"""Downloads without a mirror: wheel members through pip, release-archive members, fallbacks,
and the message an offline box gets. Every source is a real HTTP server on loopback."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.runtime.fetch import DownloadFailed, install_file, verify_file
from edge.runtime.manifest import ModelFile
from tests.support.net import free_port

PAYLOAD = bytes(range(256)) * 300 + b"tiny model"  # stands in for a model file
MEMBER = "tinymodels/data/model.bin"


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the test output stays clean
        self.server.seen.append(self.path)  # type: ignore[attr-defined]


class Site:
    """A folder served over HTTP on 127.0.0.1; `seen` lists the paths requested."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(_Handler, directory=str(root))
        )
        self.httpd.seen = []  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def seen(self) -> list[str]:
        return self.httpd.seen  # type: ignore[attr-defined]

    def put(self, rel: str, data: bytes) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.url}/{rel}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path / "www")
    yield s
    s.close()


@pytest.fixture
def closed_url() -> str:
    """A loopback address nothing listens on: what an offline box sees for every host."""
    return f"http://127.0.0.1:{free_port()}"


def spec_for(data: bytes, source: dict[str, Any], name: str = "tiny.bin") -> ModelFile:
    return ModelFile.model_validate(
        {
            "file": name,
            "role": "test",
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "licence": "test",
            "licence_detail": "test",
            "licence_flags": [],
            "non_commercial": False,
            "source": source,
        }
    )


def tiny_wheel(name: str, version: str, members: dict[str, bytes]) -> tuple[str, bytes]:
    """A minimal valid wheel (METADATA, WHEEL, RECORD), as pip expects to find one."""
    dist = f"{name}-{version}.dist-info"
    files = dict(members)
    files[f"{dist}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    )
    files[f"{dist}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: edge-face-tests\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


def serve_index(site: Site, name: str, version: str, members: dict[str, bytes]) -> str:
    """A PEP 503 simple index holding one wheel; returns the index URL."""
    filename, whl = tiny_wheel(name, version, members)
    site.put(f"files/{filename}", whl)
    digest = hashlib.sha256(whl).hexdigest()
    page = (
        f'<html><body><a href="../../files/{filename}#sha256={digest}">{filename}</a></body></html>'
    )
    site.put(f"simple/{name}/index.html", page.encode())
    return f"{site.url}/simple/"


@pytest.fixture
def pip_index(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point pip at one index only, as a site's pip configuration would, isolated from this
    machine's own pip configuration; returns a setter for the index URL."""
    for key in list(os.environ):
        if key.startswith("PIP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "10")
    return partial(monkeypatch.setenv, "PIP_INDEX_URL")


def wheel_source(member: str = MEMBER, version: str = "1.0") -> dict[str, Any]:
    return {"kind": "pypi-wheel", "package": "tinymodels", "version": version, "member": member}


def test_wheel_member_comes_through_pip_from_the_configured_index(
    tmp_path: Path, site: Site, pip_index: Any
) -> None:
    pip_index(serve_index(site, "tinymodels", "1.0", {MEMBER: PAYLOAD, "tinymodels/x.py": b""}))
    spec = spec_for(PAYLOAD, wheel_source())
    logs: list[str] = []
    path = install_file(spec, tmp_path / "models", log=logs.append)
    assert path.read_bytes() == PAYLOAD
    assert verify_file(spec, tmp_path / "models").state == "ok"
    assert logs == ["  fetched  tiny.bin"]
    # pip asked the configured index for the project, then fetched the wheel it listed.
    assert "/simple/tinymodels/" in site.seen
    assert any(p.startswith("/files/tinymodels-1.0-") for p in site.seen)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny.bin"]


def test_wheel_member_with_other_bytes_is_not_installed(
    tmp_path: Path, site: Site, pip_index: Any
) -> None:
    pip_index(serve_index(site, "tinymodels", "1.0", {MEMBER: PAYLOAD[:-1] + b"X"}))
    spec = spec_for(PAYLOAD, wheel_source())
    with pytest.raises(DownloadFailed, match="sha256 mismatch"):
        install_file(spec, tmp_path / "models", log=lambda _m: None)
    assert list((tmp_path / "models").iterdir()) == []  # no file, no .part leftover


def test_wheel_without_the_member_or_version_names_the_problem(
    tmp_path: Path, site: Site, pip_index: Any
) -> None:
    pip_index(serve_index(site, "tinymodels", "1.0", {"tinymodels/other.bin": PAYLOAD}))
    with pytest.raises(DownloadFailed, match=f"has no member {MEMBER}"):
        install_file(spec_for(PAYLOAD, wheel_source()), tmp_path / "m", log=lambda _m: None)
    with pytest.raises(DownloadFailed, match=r"pip download tinymodels==9\.9"):
        install_file(spec_for(PAYLOAD, wheel_source(version="9.9")), tmp_path / "m")


def test_release_archive_member_is_extracted_and_verified(tmp_path: Path, site: Site) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("det_tiny.onnx", PAYLOAD)
        zf.writestr("other.onnx", b"not this one")
    url = site.put("releases/download/v1/pack.zip", buf.getvalue())
    spec = spec_for(PAYLOAD, {"kind": "zip", "urls": [url], "member": "det_tiny.onnx"})
    path = install_file(spec, tmp_path / "models", log=lambda _m: None)
    assert path.read_bytes() == PAYLOAD
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["tiny.bin"]


def test_canonical_source_with_other_bytes_falls_back_to_the_copy(
    tmp_path: Path, site: Site, closed_url: str
) -> None:
    # A Git LFS pointer is what a wrong upstream URL serves: small text, other sha256.
    pointer = site.put("upstream/tiny.bin", b"version https://git-lfs.github.com/spec/v1\n")
    copy = site.put("copy/tiny.bin", PAYLOAD)
    spec = spec_for(
        PAYLOAD,
        {"kind": "github", "urls": [f"{closed_url}/gone.bin", pointer], "fallback_urls": [copy]},
    )
    install_file(spec, tmp_path / "models", log=lambda _m: None)
    assert verify_file(spec, tmp_path / "models").state == "ok"
    assert site.seen == ["/upstream/tiny.bin", "/copy/tiny.bin"]  # in manifest order


def test_no_network_fails_with_the_mirror_hint(
    tmp_path: Path, closed_url: str, pip_index: Any
) -> None:
    pip_index(f"{closed_url}/simple/")
    for source in (
        {"kind": "github", "urls": [f"{closed_url}/a.onnx"], "fallback_urls": [f"{closed_url}/b"]},
        {"kind": "zip", "urls": [f"{closed_url}/pack.zip"], "member": "a.onnx"},
        wheel_source(),
    ):
        with pytest.raises(DownloadFailed) as info:
            install_file(spec_for(PAYLOAD, source), tmp_path / "m", log=lambda _m: None)
        msg = str(info.value)
        assert "--from DIR" in msg and "models.mirror" in msg
        assert len(info.value.errors) == len(source.get("urls", [1])) + len(
            source.get("fallback_urls", [])
        )
    assert not (tmp_path / "m").exists() or list((tmp_path / "m").iterdir()) == []


def test_cli_fetch_offline_exits_1_and_says_how_to_install_from_a_folder(
    tmp_path: Path,
    closed_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = spec_for(PAYLOAD, {"kind": "github", "urls": [f"{closed_url}/tiny.bin"]})
    manifest = {
        "schema": 1,
        "files": [spec.model_dump()],
        "packs": {
            "default": {"description": "t", "non_commercial": False, "roles": {"t": ["tiny.bin"]}}
        },
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    monkeypatch.setenv("EDGE_MODELS__MANIFEST", str(path))
    assert main(["models", "fetch", "--dir", str(tmp_path / "models")]) == 1
    err = capsys.readouterr().err
    assert "tiny.bin" in err and "--from DIR" in err and "models.mirror" in err
    # The same folder then installs it: the path the message points to works.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tiny.bin").write_bytes(PAYLOAD)
    assert main(["models", "fetch", "--dir", str(tmp_path / "models"), "--from", str(mirror)]) == 0
