"""A non-editable install stands on its own: the wheel carries the model manifest and the
calibration data (and no benchmarks), and the installed copy fetches its models, analyses a
real photo and serves requests from a folder that holds nothing of the checkout."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

import edge
from tests.support.net import free_port
from tests.support.paths import MODEL_MIRROR, TESTDATA

SOURCE = Path(edge.__file__).resolve().parents[1]

#: Run inside the installed copy: the parts `serve` needs (manifest, registry, calibrations),
#: built as `serve` builds them.
PROBE = """
import json, sys
import cv2
import edge
from edge.config import load_settings
from edge.engine import Models
s = load_settings(None, data_dir=sys.argv[1] + "/data", models={"dir": sys.argv[1] + "/models"})
models = Models.load(s)
pipe, live = models.pipeline, models.liveness
face = pipe.analyze_largest(cv2.imread(sys.argv[2]))
print(json.dumps({"edge": edge.__file__, "score_at_1": pipe.cosine_to_score(1.0),
                  "liveness_threshold": live.params.threshold, "dim": int(face.embedding.size)}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """No index and no config: building and installing must not need the network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "EDGE_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel` of a copy of the source (the checkout itself stays free of build output)."""
    work = tmp_path_factory.mktemp("build")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(SOURCE / name, src / name)
    # Every top-level package of the checkout, so the wheel shows which of them it leaves out.
    for package in ("edge", "edge_face", "benchmarks"):
        shutil.copytree(
            SOURCE / package, src / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = work / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        env=_clean_env(),
    )  # fmt: skip
    (whl,) = out.glob("edge_face-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_carries_the_manifest_and_every_data_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        packaged = json.loads(zf.read("edge/data/manifest.json"))
    data_files = {f"edge/data/{p.name}" for p in (SOURCE / "edge" / "data").glob("*.json")}
    assert "edge/data/manifest.json" in data_files
    assert {"edge/data/liveness_default.json", "edge/data/similarity_default.json"} <= data_files
    assert data_files <= names, sorted(data_files - names)
    assert "edge/py.typed" in names
    assert "edge_face/client.py" in names and "edge/api/server.py" in names
    assert [n for n in names if n.startswith("benchmarks/")] == []  # measurement code stays out
    source = json.loads((SOURCE / "edge" / "data" / "manifest.json").read_text(encoding="utf-8"))
    assert packaged == source


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (no dependencies: they come from this environment) into a folder."""
    target = tmp_path_factory.mktemp("installed") / "site"
    _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        env=_clean_env(),
    )  # fmt: skip
    return target


@pytest.mark.slow
def test_installed_copy_fetches_models_and_analyses_a_photo(
    installed: Path, tmp_path: Path, shared_dir: Path
) -> None:
    target = installed
    home = tmp_path / "home"
    # Run from a folder holding nothing of the checkout; only the installed copy is importable
    # as `edge` (PYTHONPATH comes before the editable install of the checkout).
    env = _clean_env(PYTHONPATH=str(target), HOME=str(home), XDG_DATA_HOME=str(home / "share"))
    fetch = _run(
        [sys.executable, "-m", "edge.cli", "models", "fetch", "--from", str(MODEL_MIRROR),
         "--dir", str(tmp_path / "models")],
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert "all files installed and verified" in fetch.stdout
    photo = TESTDATA / "faces_by_identity" / "barack_obama" / "1.jpg"
    if not photo.is_file():
        photo = sorted((TESTDATA / "faces_by_identity").rglob("*.jpg"))[0]
    probe = _run([sys.executable, "-c", PROBE, str(tmp_path), str(photo)], env=env, cwd=tmp_path)
    out = json.loads(probe.stdout.strip().splitlines()[-1])
    assert Path(out["edge"]).resolve().is_relative_to(target.resolve())
    assert out["dim"] == 128
    assert 0 < out["score_at_1"] <= 1 and 0 < out["liveness_threshold"] < 1


def _call(port: int, method: str, path: str, body: object = None) -> tuple[int, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"api-key": "packaging-key-0123456789", "Content-Type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw else None
    finally:
        conn.close()


@pytest.mark.slow
def test_installed_edge_face_serves_a_detect_request_outside_the_checkout(
    installed: Path, tmp_path: Path, model_dir: Path, testdata: Path
) -> None:
    """The installed `edge-face` script, started in an empty folder, answers /readyz and a
    real detect; `bench` there says in one line that benchmarks need a source checkout."""
    env = _clean_env(PYTHONPATH=str(installed), HOME=str(tmp_path / "home"))
    script = str(installed / "bin" / "edge-face")
    which = _run([sys.executable, "-c", "import edge; print(edge.__file__)"], env=env, cwd=tmp_path)
    assert Path(which.stdout.strip()).resolve().is_relative_to(installed.resolve())
    bench = subprocess.run(
        [sys.executable, script, "bench", "http"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert bench.returncode == 2, bench.stderr
    assert bench.stderr.count("\n") == 1 and "python -m benchmarks http" in bench.stderr
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "models": {"dir": str(model_dir)},
                "server": {
                    "host": "127.0.0.1",
                    "api_keys": [{"key": "packaging-key-0123456789", "instance": "pkg"}],
                },
            }
        )
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, script, "serve", "-c", str(cfg), "--port", str(port)],
            env={**env, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "not ready:\n" + log.read_text()[-3000:]
            try:
                if _call(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        photo = testdata / "multi_face" / "deepface_selfie_many_people.jpg"
        image = {"data": base64.b64encode(photo.read_bytes()).decode("ascii")}
        status, found = _call(
            port, "POST", "/api/v1/entities/faces/detect", {"model": "EDGE_FACE_V1", "image": image}
        )
        assert status == 200, found
        assert isinstance(found, dict) and found["count"] >= 4
    finally:
        proc.terminate()
        proc.wait(60)
