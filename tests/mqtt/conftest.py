"""Fixtures: bridge settings pointing at the test's real mosquitto (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.config import Settings, load_settings
from tests.support.broker import Broker


@pytest.fixture
def mqtt_settings(tmp_path: Path, broker: Broker) -> Callable[..., Settings]:
    def make(**mqtt: Any) -> Settings:
        cfg = {"enabled": True, "port": broker.port, "reconnect_min_s": 0.2, "reconnect_max_s": 1}
        cfg.update(mqtt)
        return load_settings(None, data_dir=tmp_path / "data", device_id="dev-1", mqtt=cfg)

    return make
