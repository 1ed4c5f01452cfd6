"""Typed settings: YAML + EDGE_* env, unknown keys rejected with their dotted path."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import ConfigError, load_settings, masked_dump
from tests.support.paths import REPO_ROOT


def test_embedded_defaults_are_safe() -> None:
    s = load_settings(None)
    assert s.server.host == "127.0.0.1"  # never the LAN unless asked
    assert s.models.pack == "default"
    assert s.server.max_body_bytes == 5 * 2**20


@pytest.mark.parametrize("name", ["default.yaml", "nuc.yaml", "jetson.yaml"])
def test_shipped_configs_load(name: str) -> None:
    s = load_settings(REPO_ROOT / "configs" / name)
    assert s.models.backend in ("openvino", "onnxruntime")


def test_unknown_key_is_named(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("server:\n  prot: 8080\n")
    with pytest.raises(ConfigError) as e:
        load_settings(f)
    assert "server.prot: unknown key" in str(e.value)


def test_wrong_value_is_named(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("server:\n  port: 70000\nmodels:\n  backend: tensorflow\n")
    with pytest.raises(ConfigError) as e:
        load_settings(f)
    msg = str(e.value)
    assert "server.port" in msg and "models.backend" in msg


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("server:\n  port: 8081\n  host: 0.0.0.0\n")
    monkeypatch.setenv("EDGE_SERVER__PORT", "9001")
    s = load_settings(f)
    assert s.server.port == 9001 and s.server.host == "0.0.0.0"


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(top)


def test_secrets_are_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(
        "server:\n  api_keys:\n    - key: s3cr3t-key-value\n      instance: a\n"
        "mqtt:\n  password: mqtt-pass-value\n"
    )
    dumped = str(masked_dump(load_settings(f)))
    assert "s3cr3t-key-value" not in dumped and "mqtt-pass-value" not in dumped
    assert main(["config", "show", "-c", str(f)]) == 0
    out = capsys.readouterr().out
    assert "s3cr3t-key-value" not in out and "instance: a" in out


def test_cli_reports_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("nonsense_key: 1\n")
    assert main(["config", "show", "-c", str(f)]) == 2
    assert "nonsense_key: unknown key" in capsys.readouterr().err
