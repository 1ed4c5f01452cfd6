"""The composition root: what `Models`/`Engine` load (liveness only with its roles), how they
warm up and log, and what closing an engine closes. Real models, real SQLite files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge.config import Settings
from edge.engine import Engine, Models, open_store
from edge.vision.liveness import LivenessParams
from tests.support.engine import manifest_without_liveness, shared_models


def test_liveness_is_loaded_when_the_pack_has_its_roles(
    make_settings: Callable[..., Settings],
) -> None:
    for pack in ("default", "research-nc"):
        models = Models.load(make_settings(models={"pack": pack}))
        assert models.liveness is not None, pack
        roles = {m.role for m in LivenessParams.load(pack).models}
        assert models.liveness.model_info().roles == roles
        assert all(models.registry.has(r) for r in roles)
        assert models.registry.opened() == {}  # loading opens nothing: warm_up does


def test_liveness_is_none_exactly_when_a_role_is_missing(
    make_settings: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = manifest_without_liveness(tmp_path / "manifest.json")
    caplog.set_level(logging.WARNING, logger="edge.engine")
    models = Models.load(make_settings(models={"manifest": manifest}))
    assert models.liveness is None
    (warning,) = [r for r in caplog.records if r.name == "edge.engine"]
    assert "liveness not available" in warning.message and "liveness_v2" in warning.message
    # Everything else of the pack is still there: only the liveness roles went.
    assert models.registry.has("embedding") and not models.registry.has("liveness_v2")
    with Engine.open(make_settings(models={"manifest": manifest}), models=models) as engine:
        assert engine.liveness is None


def test_warm_up_opens_every_model_the_engine_serves(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    manifest = manifest_without_liveness(tmp_path / "manifest.json")
    with Engine.open(make_settings(models={"manifest": manifest})) as engine:
        assert engine.registry.opened() == {}
        engine.warm_up()
        opened = set(engine.registry.opened())
    assert {"detector_fast", "detector_slow", "embedding"} <= opened
    assert not any(r.startswith("liveness") for r in opened)  # no liveness: none opened

    with Engine.open(make_settings()) as full:
        full.warm_up()
        assert full.liveness is not None
        assert full.liveness.model_info().roles <= set(full.registry.opened())


def test_warm_up_logs_backend_per_model_and_a_fallback_as_warning(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    import openvino as ov

    if any(d.startswith("GPU") for d in ov.Core().available_devices):
        pytest.skip("this box has an OpenVINO GPU: no fallback to observe")
    models = Models.load(make_settings(models={"openvino_device": "GPU"}))
    caplog.set_level(logging.INFO, logger="edge.engine")
    models.warm_up()
    records = [r for r in caplog.records if r.name == "edge.engine" and "model " in r.message]
    roles = {r.message.split()[1] for r in records}
    assert {"detector_fast", "detector_slow", "embedding", "liveness_v2"} <= roles
    for r in records:  # every model asked for GPU and runs on CPU: each is a WARNING
        assert r.levelno == logging.WARNING and "FALLBACK" in r.message, r.message


def test_the_store_is_the_configured_file_stamped_with_the_pack(
    make_settings: Callable[..., Settings], model_dir: Path
) -> None:
    settings = make_settings()
    with Engine.open(settings, models=shared_models(str(model_dir))) as engine:
        assert settings.store_path.is_file()
        assert engine.store.pack_fingerprint == engine.registry.fingerprint


def test_close_closes_the_store_and_leaves_shared_models_usable(
    make_settings: Callable[..., Settings], model_dir: Path, tmp_path: Path
) -> None:
    models = shared_models(str(model_dir))
    engine = Engine.open(make_settings(), models=models)
    engine.store.count()
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(RuntimeError):
        engine.store.count()
    # The models serve the next engine (another data dir) without being loaded again.
    other = make_settings(data_dir=tmp_path / "other")
    with Engine.open(other, models=models) as again:
        assert again.models is models and again.store.count() == 0
        vec = again.pipeline.embedder.embed(np.full((112, 112, 3), 120, np.uint8))
        assert vec.shape == (again.pipeline.embedding_dim,)
    with pytest.raises(RuntimeError):
        again.store.count()  # the with block closed it


def test_models_of_another_pack_are_refused(
    make_settings: Callable[..., Settings], model_dir: Path
) -> None:
    with pytest.raises(ValueError, match="research-nc"):
        Engine.open(
            make_settings(models={"pack": "research-nc"}), models=shared_models(str(model_dir))
        )


def test_open_store_with_a_fingerprint_keeps_the_service_rules(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Synthetic galleries (benchmarks, tools) need no model pack, yet get the service's file
    and change-log rule: a short window without sync, the whole log with it."""
    rng = np.random.default_rng(0)
    for sync, kept in ((False, 2), (True, 4)):
        settings = make_settings(
            data_dir=tmp_path / f"sync-{sync}",
            store={"change_log_keep_rows": 2},
            sync={"enabled": True, "upstream": "http://hub:8080", "token": "t" * 20}
            if sync
            else {},
        )
        with open_store(settings, fingerprint="synthetic") as store:
            assert store.path == settings.store_path and store.pack_fingerprint == "synthetic"
            for i in range(4):
                store.create(
                    instance="default",
                    model="EDGE_FACE_V1",
                    model_name="EDGE_FACE_V1",
                    collection="",
                    key=f"k{i}",
                    metadata=[],
                    ttl=-1,
                    vector=rng.standard_normal(128).astype(np.float32),
                )
            assert len(store.changes_since(0, limit=100)) == kept, sync


def test_open_store_takes_the_registry_or_a_fingerprint_not_both(
    make_settings: Callable[..., Settings], model_dir: Path
) -> None:
    settings = make_settings()
    with pytest.raises(TypeError, match="registry or a fingerprint"):
        open_store(settings)
    with pytest.raises(TypeError, match="not both"):
        open_store(settings, shared_models(str(model_dir)).registry, fingerprint="x")
    assert not settings.store_path.exists()  # refused before any file is made
