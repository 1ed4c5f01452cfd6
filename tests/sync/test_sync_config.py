"""The `sync` settings section: mistakes fail at start with the key and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("sync", "says"),
    [
        ({"upstream": "http://hub:8080"}, "sync.enabled is false"),
        ({"enabled": True}, "needs sync.upstream"),
        ({"enabled": True, "upstream": "http://hub:8080"}, "sync.token"),
        ({"enabled": True, "role": "hub"}, "sync.boxes"),
        ({"enabled": True, "role": "hub", "boxes": [
            {"id": "a", "token_sha256": ["abc"], "instances": ["x"]}]}, "64 hex digits"),
        ({"enabled": True, "role": "hub", "boxes": [
            {"id": "a", "token_sha256": ["0" * 64], "instances": []}]}, "instances"),
        ({"require_client_cert": True}, "client_ca_file"),
        ({"cert_file": "/x.pem"}, "go together"),
        ({"long_poll_s": -1}, "long_poll_s"),
        ({"upstrem": "http://hub"}, "did you mean 'upstream'"),
    ],
)  # fmt: skip
def test_bad_sync_settings_name_the_problem(sync: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_settings(None, sync=sync)


def test_valid_box_and_hub_settings() -> None:
    box = load_settings(
        None, sync={"enabled": True, "upstream": "https://hub:8443", "token": "t" * 20}
    ).sync
    assert box.role == "box" and box.token is not None and "t" * 20 not in repr(box)
    hub = load_settings(None, sync={"enabled": True, "role": "hub", "boxes": [
        {"id": "a", "token_sha256": ["AB" * 32], "instances": ["x"]}]}).sync  # fmt: skip
    assert hub.boxes[0].token_sha256 == ["ab" * 32]  # normalised to lower case


HUB = {"enabled": True, "role": "hub",
       "boxes": [{"id": "a", "token_sha256": ["ab" * 32], "instances": ["x"]}]}  # fmt: skip


@pytest.mark.parametrize(
    ("sync", "says"),
    [
        ({**HUB, "upstream": "http://central:8080"}, "site hub"),
        ({**HUB, "doorbell_topic": "edge-face/+/sync/head"}, "one MQTT topic"),
    ],
)
def test_site_hub_and_doorbell_mistakes_name_the_key(sync: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_settings(None, sync=sync)


def test_a_hub_opens_its_store_without_models_unless_it_serves_the_api(
    tmp_path: Path, model_dir: Path
) -> None:
    """The engine of a model-less hub: a store stamped with the pack's fingerprint (read
    from the manifest), no model registry; reaching for a model is the contract's 503."""
    from edge.engine import Engine, ModelsNotLoaded
    from edge.runtime.manifest import Manifest
    from edge.runtime.registry import pack_fingerprint

    hub = load_settings(None, data_dir=tmp_path, models={"dir": str(model_dir)}, sync=HUB)
    assert not hub.sync.loads_models
    with Engine.open(hub) as engine:
        assert engine.models is None
        want = pack_fingerprint(Manifest.load(hub.models.manifest), hub.models.pack)
        assert engine.store.pack_fingerprint == want
        with pytest.raises(ModelsNotLoaded) as err:
            _ = engine.pipeline
        assert err.value.http_status == 503 and "sync.hub_serves_api: true" in err.value.message
        engine.warm_up()  # nothing to warm: no error either
    assert load_settings(None, sync={**HUB, "hub_serves_api": True}).sync.loads_models
    assert load_settings(None).sync.loads_models  # a box (or no sync) always loads them
