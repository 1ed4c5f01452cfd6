"""Key rotation reaches a running service over real HTTP, without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.api.app import create_app
from edge.api.keyring import read_key_file
from edge.config import load_settings
from tests.support.servers import Gate, Server, add_test_routes, start_server, stop_server


def keys_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGE_DATA_DIR": str(data_dir)}
    env.pop("EDGE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "keys", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def status(srv: Server, key: str) -> int:
    return srv.call("POST", "/test/echo", {"a": 1}, key=key).status


def settle(srv: Server, key: str, expected: int, within_s: float = 30) -> int:
    """Poll until `key` gets `expected` (the service re-reads the file about once a second)."""
    deadline = time.monotonic() + within_s
    got = status(srv, key)
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        got = status(srv, key)
    return got


def test_rotate_and_prune_reach_the_running_service(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    settings = load_settings(None, data_dir=data, models={"dir": model_dir})
    app = create_app(settings, load_models=False)
    old = read_key_file(settings.api_key_path)[0]
    capsys.readouterr()
    add_test_routes(app, Gate())
    srv = start_server(app, settings)
    try:
        assert status(srv, old) == 200

        rotated = keys_cli(data, "rotate")
        assert rotated.returncode == 0, rotated.stderr
        new = read_key_file(settings.api_key_path)[0]
        assert new != old and new in rotated.stdout
        assert settle(srv, new, 200) == 200  # accepted without a restart
        assert status(srv, old) == 200  # the old key stays valid until pruned

        pruned = keys_cli(data, "prune")
        assert pruned.returncode == 0, pruned.stderr
        assert settle(srv, old, 401) == 401  # revoked without a restart
        assert status(srv, new) == 200

        # A key file emptied by mistake does not lock every client out.
        settings.api_key_path.write_text("# emptied\n")
        time.sleep(1.5)
        assert status(srv, new) == 200
    finally:
        stop_server(srv)
