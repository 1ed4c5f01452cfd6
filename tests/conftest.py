"""Fixtures shared by the whole suite: real shared data, real installed models."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from edge.config import Settings, load_settings
from edge.runtime.fetch import install_files
from edge.runtime.manifest import Manifest
from tests.support.broker import Broker
from tests.support.paths import MODEL_MIRROR, SHARED, TESTDATA

# OpenVINO's "auto" precision is bf16 on CPUs with AMX/AVX512-bf16 and f32 elsewhere, so
# the same suite would compute different numbers on different machines. Tests run in f32
# everywhere (subprocesses inherit it); set EDGE_MODELS__OPENVINO_PRECISION=bf16 (or auto)
# to run the whole suite in another precision, which it must also pass.
os.environ.setdefault("EDGE_MODELS__OPENVINO_PRECISION", "f32")

# Property tests explore new random examples on every plain `pytest` run (that is how they
# find bugs); `tools/test.sh` (the README's command, and CI) selects the "ci" profile, whose
# examples are derived from each test's own source, so a submission is judged on the same
# examples wherever it runs. A failure found locally is reported with its reproducing seed.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"edge-face shared data: {SHARED} (exists: {SHARED.is_dir()})"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED}; set EDGE_SHARED_DIR")
    return SHARED


@pytest.fixture(scope="session")
def testdata(shared_dir: Path) -> Path:
    return TESTDATA


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return Manifest.load()


@pytest.fixture(scope="session")
def model_dir(
    tmp_path_factory: pytest.TempPathFactory, manifest: Manifest, shared_dir: Path
) -> Path:
    """Every pack's files installed through the product's own installer from the mirror."""
    d = tmp_path_factory.mktemp("models")
    files = {f.file: f for p in manifest.packs for f in manifest.pack_files(p)}
    install_files(files.values(), d, mirror=MODEL_MIRROR, log=lambda _m: None)
    return d


@pytest.fixture
def make_settings(tmp_path: Path, model_dir: Path) -> Callable[..., Settings]:
    """Settings with a private data dir and the session's installed models."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {"data_dir": tmp_path / "data", "models": {"dir": model_dir}}
        for k, v in overrides.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                base[k] = {**base[k], **v}
            else:
                base[k] = v
        return load_settings(None, **base)

    return make


@pytest.fixture(scope="session")
def session_settings(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Settings:
    return load_settings(None, data_dir=tmp_path_factory.mktemp("data"), models={"dir": model_dir})


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto on a free loopback port, for this test only."""
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()
