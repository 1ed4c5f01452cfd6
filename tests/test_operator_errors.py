"""Operator mistakes end in one line that says what to do next, a non-zero exit and no
traceback: a taken port, missing models, a typo in an EDGE_* variable or in the config,
a failed model fetch, bad arguments to any command. All run `edge-face` as a real process.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edge.config import check_environment
from edge.usererror import UserError
from tests.support.paths import REPO_ROOT

MIRROR_HINT = "--from DIR"


def edge(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m edge.cli ARGS` with a clean EDGE_* environment plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("EDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, **(env or {})},
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The stderr of a failed command: exactly one `edge-face...` line, no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edge-face"), lines[0]
    return lines[0]


def write_config(tmp_path: Path, model_dir: Path, **extra: object) -> Path:
    cfg = tmp_path / "edge.yaml"
    data = {"data_dir": str(tmp_path / "data"), "models": {"dir": str(model_dir)}, **extra}
    cfg.write_text(yaml.safe_dump(data))
    return cfg


# Port already taken ---------------------------------------------------------------------------
def test_taken_port_is_one_line_naming_port_before_anything_loads(
    tmp_path: Path, model_dir: Path
) -> None:
    cfg = write_config(tmp_path, model_dir)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = edge("serve", "-c", str(cfg), "--port", str(port))
    line = one_line_error(proc)
    assert f"port {port} on 127.0.0.1 is already in use" in line
    assert "--port N" in line and "server.port" in line
    # nothing else started: no model lines, no listening line, no api-key generated
    assert "runs on" not in proc.stderr and "listening" not in proc.stderr
    assert "generated api-key" not in proc.stdout
    assert not (tmp_path / "data" / "api-key").exists()


def test_unknown_host_and_out_of_range_port_name_the_option(
    tmp_path: Path, model_dir: Path
) -> None:
    cfg = write_config(tmp_path, model_dir)
    line = one_line_error(edge("serve", "-c", str(cfg), "--port", "70000"))
    assert "--port 70000" in line
    line = one_line_error(edge("serve", "-c", str(cfg), "--host", "192.0.2.1", "--port", "0"))
    assert "192.0.2.1 is not an address of this machine" in line and "--host" in line


# Models missing -------------------------------------------------------------------------------
def test_serve_without_models_exits_with_the_fetch_command_that_fixes_it(
    tmp_path: Path, shared_dir: Path
) -> None:
    empty = tmp_path / "no-models"
    cfg = write_config(tmp_path, empty)
    proc = edge("serve", "-c", str(cfg), "--port", "0")
    line = one_line_error(proc)
    assert proc.returncode == 2
    assert f"not installed in {empty}" in line and MIRROR_HINT in line
    assert "listening" not in proc.stderr
    command = line.split("`")[1]
    assert command == f"edge-face models fetch -c {cfg.resolve()} --dir {empty}"
    # the printed command (plus the offline mirror) really installs what serve needs
    words = [*shlex.split(command)[1:], "--from", str(shared_dir / "models")]
    fetched = edge(*words)
    assert fetched.returncode == 0, fetched.stderr
    assert edge("models", "verify", "-c", str(cfg)).returncode == 0


# EDGE_* environment ---------------------------------------------------------------------------
def test_env_typo_names_the_variable_and_the_closest_key() -> None:
    proc = edge("config", "show", env={"EDGE_SERVER__PROT": "1"})
    line = one_line_error(proc)
    assert proc.returncode == 2
    assert "EDGE_SERVER__PROT" in line and "did you mean EDGE_SERVER__PORT?" in line
    assert "port" in line.split("valid:")[1]


def test_env_typo_in_section_name_is_named() -> None:
    line = one_line_error(edge("config", "show", env={"EDGE_SERVRE__PORT": "1"}))
    assert "EDGE_SERVRE__PORT" in line and "did you mean EDGE_SERVER?" in line


def test_single_underscore_variable_is_warned_about_and_ignored() -> None:
    proc = edge("config", "show", "--json", env={"EDGE_SERVER_PORT": "9999"})
    assert proc.returncode == 0, proc.stderr
    assert "EDGE_SERVER_PORT" in proc.stderr and "did you mean EDGE_SERVER__PORT?" in proc.stderr
    assert json.loads(proc.stdout)["server"]["port"] == 8080  # ignored, as the warning says


def test_bad_env_value_names_the_variable() -> None:
    line = one_line_error(edge("config", "show", env={"EDGE_SERVER__PORT": "eighty"}))
    assert "server.port" in line and "EDGE_SERVER__PORT" in line


def test_valid_environment_passes_the_check() -> None:
    env = {
        "EDGE_SERVER__PORT": "9000",
        "edge_models__backend_overrides__embedding": "onnxruntime",
        "EDGE_DATA_DIR": "/srv/x",
        "EDGE_CONFIG": "c.yaml",
        "EDGE_API_KEY": "k",
        "PATH": "/bin",
    }
    assert check_environment(env) == []
    with pytest.raises(UserError, match="EDGE_SERVER__PORT__X"):
        check_environment({"EDGE_SERVER__PORT__X": "1"})


# Config file mistakes -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (None, "config file not found"),
        ("server:\n  host: [\n", "is not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
        ("server:\n  prot: 1\n", "server.prot: unknown key; did you mean 'port'?"),
        ("server:\n  port: many\n", "server.port: Input should be a valid integer"),
        ("cameras:\n  - {name: a, source: '0', fsp: 2}\n", "cameras.0.fsp: unknown key"),
    ],
)
def test_config_file_mistakes_are_one_line(
    tmp_path: Path, content: str | None, expect: str
) -> None:
    cfg = tmp_path / "edge.yaml"
    if content is not None:
        cfg.write_text(content)
    line = one_line_error(edge("config", "show", "-c", str(cfg)))
    assert expect in line


def test_config_path_that_is_a_folder(tmp_path: Path) -> None:
    line = one_line_error(edge("config", "show", "-c", str(tmp_path)))
    assert f"cannot read config file {tmp_path}" in line


# Every command: user mistakes never print a traceback -----------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["enroll", "/nonexistent/photo.jpg"],
        ["enroll", "{photo}", "--url", "not-a-url", "--api-key", "k"],
        ["eval", "faces", "--data", "/nonexistent"],
        ["eval", "liveness", "--data", "/nonexistent"],
        ["bench", "liveness", "--data", "/nonexistent"],
        ["bench", "pipeline", "--data", "/nonexistent"],
        ["camera", "--source", "/nonexistent.mp4"],
        ["camera", "--name", "no-such-camera"],
        ["models", "fetch", "--pack", "no-such-pack"],
        ["models", "quantize", "--data", "/nonexistent"],
        ["serve", "--port", "-5"],
    ],
)
def test_commands_answer_user_mistakes_in_one_line(
    args: list[str], tmp_path: Path, testdata: Path
) -> None:
    photo = next((testdata / "faces_by_identity").glob("*/1.jpg"))
    cfg = write_config(tmp_path, tmp_path / "models")
    argv = [a.format(photo=photo) for a in args]
    one_line_error(edge(*argv, "-c", str(cfg), timeout=120))


@pytest.mark.parametrize(
    "args", [["serve", "--port", "eighty"], ["bench", "models", "--runs", "x"], ["nonsense"]]
)
def test_bad_option_values_get_usage_not_traceback(args: list[str]) -> None:
    proc = edge(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error:" in proc.stderr.splitlines()[-1]


# models fetch ---------------------------------------------------------------------------------
class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dead_source() -> Iterator[str]:
    """A real loopback HTTP server answering 404: a model source that is gone."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _one_file_manifest(tmp_path: Path, url: str, sha256: str, size: int) -> Path:
    manifest = json.loads((REPO_ROOT / "edge" / "data" / "manifest.json").read_text())
    spec = dict(manifest["files"][0])
    spec["sha256"], spec["bytes"] = sha256, size
    spec["source"] = {**spec["source"], "urls": [f"{url}/{spec['file']}"]}
    pack = {"description": "one file", "non_commercial": False, "roles": {"x": [spec["file"]]}}
    manifest.update(files=[spec], packs={"default": pack})
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_fetch_from_a_dead_source_suggests_the_offline_mirror(
    tmp_path: Path, dead_source: str
) -> None:
    manifest = _one_file_manifest(tmp_path, dead_source, "0" * 64, 10)
    cfg = write_config(tmp_path, tmp_path / "m")
    proc = edge("models", "fetch", "-c", str(cfg), env={"EDGE_MODELS__MANIFEST": str(manifest)})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "404" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"edge-face models fetch --dir {tmp_path / 'm'} --from DIR" in last
    assert "models.mirror" in last


def test_fetch_of_a_tampered_file_is_refused_and_points_at_the_mirror(
    tmp_path: Path, shared_dir: Path
) -> None:
    manifest = json.loads((REPO_ROOT / "edge" / "data" / "manifest.json").read_text())
    name = manifest["files"][0]["file"]
    good = (shared_dir / "models" / name).read_bytes()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / name).write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one bit flipped
    manifest_path = _one_file_manifest(
        tmp_path, "http://127.0.0.1:9", hashlib.sha256(good).hexdigest(), len(good)
    )
    proc = edge(
        "models",
        "fetch",
        "--dir",
        str(tmp_path / "m"),
        "--from",
        str(mirror),
        env={"EDGE_MODELS__MANIFEST": str(manifest_path)},
    )
    assert proc.returncode == 1
    assert "sha256 mismatch" in proc.stderr and "Traceback" not in proc.stderr
    assert "--from DIR / models.mirror" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "m" / name).exists()


# Unexpected errors: one line without -v, the traceback with -v --------------------------------
def test_bug_is_one_line_and_traceback_only_with_verbose(tmp_path: Path) -> None:
    """A manifest that is not JSON is no user input the CLI checks: it surfaces as a bug."""
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    env = {"EDGE_MODELS__MANIFEST": str(bad)}
    line = one_line_error(edge("models", "list", env=env))
    assert "unexpected error" in line and "-v" in line
    verbose = edge("models", "list", "-v", env=env)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr
