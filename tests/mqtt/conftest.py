"""Fixtures: a real mosquitto per test and bridge settings pointing at it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mosquitto_broker import Broker

from edge.config import Settings, load_settings


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def mqtt_settings(tmp_path: Path, broker: Broker) -> Callable[..., Settings]:
    def make(**mqtt: Any) -> Settings:
        cfg = {"enabled": True, "port": broker.port, "reconnect_min_s": 0.2, "reconnect_max_s": 1}
        cfg.update(mqtt)
        return load_settings(None, data_dir=tmp_path / "data", device_id="dev-1", mqtt=cfg)

    return make
