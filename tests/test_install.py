"""tools/install.sh and tools/setup.sh, run for real.

The service install runs as root into temporary directories (prefix, /etc, /var/lib, unit
and bin dirs are options), builds a real venv with `pip install .`, creates a real system
user, and starts the service with exactly the command line and environment its installed
unit gives systemd, as that user, with a real sd_notify socket. The setup test copies the
checkout and proves that a second setup makes no pip call while the package index is
unreachable.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.api.keyring import read_key_file

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "tools" / "install.sh"
SETUP = REPO / "tools" / "setup.sh"
#: Not the real `edge-face`, so a box's own install is untouched; one per test process, so
#: two checkouts tested at once on one machine do not delete each other's user.
SERVICE_USER = f"edge-face-ci{os.getpid()}"
SYSTEM_PYTHON = Path("/usr/bin/python3")  # what the service user can execute (not ~/.pyenv)
#: The environment of a machine whose package index is unreachable and unconfigured.
OFFLINE_PIP = {
    "PIP_NO_INDEX": "1",
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_FIND_LINKS": "",
    "PIP_EXTRA_INDEX_URL": "",
    "PIP_CONFIG_FILE": os.devnull,
}


def test_install_help_and_bad_options() -> None:
    helped = subprocess.run([str(INSTALL), "--help"], capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0
    for option in ("--prefix", "--etc", "--data", "--from", "--uninstall", "--purge"):
        assert option in helped.stdout
    bad = subprocess.run([str(INSTALL), "--frm", "x"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "unknown option '--frm'" in bad.stderr
    purge = subprocess.run([str(INSTALL), "--purge"], capture_output=True, text=True, timeout=30)
    assert purge.returncode != 0 and "--uninstall" in purge.stderr


def test_purge_refuses_system_directories(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("install.sh runs as root only")
    proc = subprocess.run(
        [
            str(INSTALL), "--uninstall", "--purge", "--etc", "/etc", "--no-systemd",
            "--prefix", str(tmp_path / "opt"), "--unit-dir", str(tmp_path / "units"),
            "--bin-dir", str(tmp_path / "bin"), "--data", str(tmp_path / "data"),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "refusing to delete '/etc'" in proc.stderr
    assert Path("/etc/passwd").is_file()


# The service install -------------------------------------------------------------------------
@dataclass
class Install:
    base: Path
    prefix: Path
    etc: Path
    data: Path
    units: Path
    bin: Path
    mirror: Path

    @property
    def args(self) -> list[str]:
        return [
            "--prefix", str(self.prefix), "--etc", str(self.etc), "--data", str(self.data),
            "--unit-dir", str(self.units), "--bin-dir", str(self.bin),
            "--user", SERVICE_USER, "--from", str(self.mirror), "--no-systemd",
        ]  # fmt: skip

    def run(self, *extra: str, script: Path = INSTALL) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *self.args, *extra], capture_output=True, text=True, timeout=900
        )

    def edge_face(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed command, as an operator runs it (root, the wrapper's config)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        return subprocess.run(
            [str(self.bin / "edge-face"), *args], capture_output=True, text=True, timeout=300,
            env=env,
        )  # fmt: skip


def _purge(inst: Install) -> None:
    inst.run("--uninstall", "--purge")
    shutil.rmtree(inst.base, ignore_errors=True)


def _copy_checkout(dest: Path) -> None:
    def ignore(_d: str, names: list[str]) -> set[str]:
        junk = {".venv", ".git", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache"}
        return {n for n in names if n in junk or n.endswith(".egg-info")}

    shutil.copytree(REPO, dest, ignore=ignore)


@pytest.fixture(scope="module")
def installed(shared_dir: Path) -> Iterator[tuple[Install, subprocess.CompletedProcess[str]]]:
    if os.geteuid() != 0:
        pytest.skip("install.sh creates a system user and chowns files: run as root (CI does)")
    if not SYSTEM_PYTHON.is_file():
        pytest.skip(f"no {SYSTEM_PYTHON}: the service user needs a system-wide interpreter")
    # /tmp/pytest-of-root is 0700: the service user must reach the prefix, like /opt.
    base = Path(tempfile.mkdtemp(prefix="edge-face-install-", dir="/tmp"))
    base.chmod(0o755)
    inst = Install(
        base, base / "opt", base / "etc", base / "var", base / "units", base / "bin",
        shared_dir / "models",
    )  # fmt: skip
    with contextlib.suppress(KeyError):  # left by a run that was killed half-way
        pwd.getpwnam(SERVICE_USER)
        subprocess.run(["userdel", SERVICE_USER], check=True, timeout=60)
    # Installed from a copy of the clone that is deleted at once: nothing may need it.
    clone = base / "clone"
    _copy_checkout(clone)
    try:
        proc = inst.run(script=clone / "tools" / "install.sh")
        shutil.rmtree(clone)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        yield inst, proc
    finally:
        _purge(inst)


def unit_service(path: Path) -> dict[str, list[str]]:
    """The [Service] section of a unit file, each key with all its values in order."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.slow
def test_install_layout(installed: tuple[Install, subprocess.CompletedProcess[str]]) -> None:
    inst, _ = installed
    user = pwd.getpwnam(SERVICE_USER)
    assert user.pw_shell.endswith("nologin") and user.pw_uid < 1000  # a system user

    venv = inst.prefix / "venv"
    assert venv.is_symlink() and os.readlink(venv).startswith("releases/")
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import edge; print(edge.__file__)"],
        capture_output=True, text=True, check=True, cwd="/",
    ).stdout.strip()  # fmt: skip
    assert Path(where).resolve().is_relative_to(inst.prefix.resolve())  # not the clone
    assert not list((venv / "lib").glob("python3*/site-packages/__editable__*"))

    config = inst.etc / "config.yaml"
    st = config.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0 and st.st_gid == user.pw_gid
    text = config.read_text()
    assert f"data_dir: {inst.data}\n" in text and text.count("\n#") > 10  # commented
    assert (inst.etc / "config.yaml.example").read_text() == text

    st = inst.data.stat()
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == user.pw_uid

    verify = inst.edge_face("models", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    for p in inst.data.rglob("*"):
        assert p.stat().st_uid == user.pw_uid, p

    unit = unit_service(inst.units / "edge-face.service")
    assert unit["Type"] == ["notify"] and unit["User"] == [SERVICE_USER]
    assert unit["ExecStart"] == [f"{inst.prefix}/venv/bin/edge-face serve"]
    assert unit["ReadWritePaths"] == [str(inst.data)]
    assert f"EDGE_CONFIG={inst.etc}/config.yaml" in unit["Environment"]


@pytest.mark.slow
def test_installed_units_pass_systemd_analyze(
    installed: tuple[Install, subprocess.CompletedProcess[str]],
) -> None:
    inst, _ = installed
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is absent (apt-get install systemd provides it)")
    units = [str(inst.units / "edge-face.service"), str(inst.units / "edge-face-camera@.service")]
    proc = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "edge-face" not in proc.stderr  # no warning about our units


def _get(port: int, path: str, key: str | None = None, body: object = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"api-key": key} if key else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    try:
        conn.request("POST" if body is not None else "GET", path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(sock: socket.socket, proc: subprocess.Popen[str], want: str, seen: list[str]) -> None:
    deadline = time.monotonic() + 300
    while want not in seen:
        if proc.poll() is not None and want != "STOPPING=1":
            raise AssertionError(f"the service exited with {proc.returncode} before {want}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {want} from the service; got {seen}")
        with contextlib.suppress(TimeoutError):
            seen.extend(sock.recv(4096).decode().split("\n"))


@pytest.mark.slow
def test_service_runs_from_its_unit_then_upgrade_and_uninstall_keep_the_gallery(
    installed: tuple[Install, subprocess.CompletedProcess[str]], testdata: Path
) -> None:
    inst, _ = installed
    unit = unit_service(inst.units / "edge-face.service")
    user = pwd.getpwnam(SERVICE_USER)
    port = _free_port()

    # What systemd would do: the unit's environment and command, as its user, with a
    # notify socket and the watchdog period; only the port is moved off 8080.
    notify_path = inst.base / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    notify_path.chmod(0o666)
    sock.settimeout(1.0)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(inst.data)}
    env.update(v.split("=", 1) for v in unit["Environment"])  # type: ignore[arg-type]
    watchdog_s = int(unit["WatchdogSec"][0])
    env.update(
        NOTIFY_SOCKET=str(notify_path),
        WATCHDOG_USEC=str(watchdog_s * 1_000_000),
        EDGE_SERVER__PORT=str(port),
    )
    umask = int(unit.get("UMask", ["0022"])[0], 8)
    proc = subprocess.Popen(
        shlex.split(unit["ExecStart"][0]), env=env, user=user.pw_uid, group=user.pw_gid,
        umask=umask, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen: list[str] = []
    try:
        _wait_for(sock, proc, "READY=1", seen)
        assert _get(port, "/readyz")[0] == 200
        key_file = inst.data / "api-key"
        key = read_key_file(key_file)[0]
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key_file.stat().st_uid == user.pw_uid
        status, body = _get(port, "/api/v1/models", key)
        assert status == 200, body
        assert "EDGE_FACE_V1" in body.decode()
        assert _get(port, "/api/v1/models")[0] == 401

        photo = next((testdata / "faces_by_identity" / "barack_obama").iterdir())
        image = base64.b64encode(photo.read_bytes()).decode()
        enrol = {"model": "EDGE_FACE_V1", "image": {"data": image}, "key": "obama"}
        status, body = _get(port, "/api/v1/entities/faces", key, enrol)
        assert status == 201, body

        # Operator commands against the running service, as root through the wrapper.
        backup = inst.base / "gallery-backup.sqlite3"
        done = inst.edge_face("backup", str(backup))
        assert done.returncode == 0, done.stderr
        assert "backed up 1 face entities" in done.stdout
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        refused = inst.edge_face("restore", str(backup))
        assert refused.returncode == 1 and str(proc.pid) in refused.stderr

        rotated = inst.edge_face("keys", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        new_key = read_key_file(key_file)[0]
        assert key_file.stat().st_uid == user.pw_uid  # still readable by the service
        deadline = time.monotonic() + 30
        while _get(port, "/api/v1/models", new_key)[0] != 200:
            assert time.monotonic() < deadline, "the rotated key was never accepted"
            time.sleep(0.3)
        assert _get(port, "/api/v1/models", key)[0] == 200  # old key valid until pruned

        _wait_for(sock, proc, "WATCHDOG=1", seen)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out[-3000:]
        _wait_for(sock, proc, "STOPPING=1", seen)  # queued before the exit
        assert key not in out and new_key not in out and image[:64] not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        sock.close()
    for p in inst.data.rglob("*"):  # nothing root-owned the service could not open
        assert p.stat().st_uid == user.pw_uid, p

    # Upgrade: install.sh again keeps the edited config and the gallery; a config with a
    # typo stops it before anything is switched or restarted, naming the key.
    config = inst.etc / "config.yaml"
    good = config.read_text()
    config.write_text(good + "server_typo: 1\n")
    broken = inst.run()
    assert broken.returncode != 0
    assert "server_typo" in broken.stdout + broken.stderr
    assert config.read_text() == good + "server_typo: 1\n"
    config.write_text(good)
    config.write_text(config.read_text() + "# edited on this box\n")
    edited = config.read_text()
    again = inst.run()
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "no pip" in again.stdout
    assert config.read_text() == edited
    gallery = inst.data / "edge.sqlite3"
    with sqlite3.connect(f"file:{gallery}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT key FROM entities").fetchall() == [("obama",)]
    assert stat.S_IMODE(inst.data.stat().st_mode) == 0o700

    # Uninstall keeps config, gallery and keys; twice is fine.
    for _ in range(2):
        gone = inst.run("--uninstall")
        assert gone.returncode == 0, gone.stderr
    assert not inst.prefix.exists() and not (inst.bin / "edge-face").exists()
    assert not list(inst.units.glob("edge-face*"))
    assert config.read_text() == edited
    assert read_key_file(key_file)[0] == new_key
    with sqlite3.connect(f"file:{gallery}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM entities").fetchone()[0] == 1

    purged = inst.run("--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not inst.etc.exists() and not inst.data.exists()
    with pytest.raises(KeyError):
        pwd.getpwnam(SERVICE_USER)


# tools/setup.sh: a second run needs no package index -----------------------------------------
@pytest.mark.slow
def test_setup_twice_second_run_is_offline(tmp_path: Path, shared_dir: Path) -> None:
    repo = tmp_path / "clone"
    _copy_checkout(repo)
    # A venv that sees this test run's installed dependencies through a .pth file, so the
    # first setup installs only the project itself (a real `pip install -e .`).
    subprocess.run([sys.executable, "-m", "venv", str(repo / ".venv")], check=True, timeout=300)
    site = next((repo / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "PIP_"))}
    env.update(
        EDGE_MODELS__MIRROR=str(shared_dir / "models"),
        EDGE_MODELS__DIR=str(tmp_path / "models"),
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
    )

    first = subprocess.run(
        [str(repo / "tools" / "setup.sh")], env=env, capture_output=True, text=True, timeout=900
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (repo / ".venv" / ".edge-face-setup").is_file()

    pip_log = tmp_path / "pip.log"  # pip writes it whenever it runs at all
    offline = {**env, **OFFLINE_PIP, "PIP_LOG": str(pip_log)}
    second = subprocess.run(
        [str(repo / "tools" / "setup.sh")], env=offline, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert not pip_log.exists()
    assert "all files installed and verified" in second.stdout

    ran = subprocess.run(
        [str(repo / "tools" / "run.sh"), "--help"], env=offline, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "usage: edge-face serve" in ran.stdout
    assert not pip_log.exists()

    # Changed dependencies do need pip: offline, setup now tries and fails, loudly.
    with open(repo / "pyproject.toml", "a") as f:
        f.write("\n# a dependency changed\n")
    changed = subprocess.run(
        [str(repo / "tools" / "setup.sh")], env=offline, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert changed.returncode != 0
    assert pip_log.exists()
    assert not (repo / ".venv" / ".edge-face-setup").exists()
