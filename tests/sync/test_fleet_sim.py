"""CI's short seed of the fault-injection run (tools/fleet_sim.py): real node processes,
SIGKILLs of boxes and the hub, partitions, then the checker (exit 0 = nothing lost,
nothing resurrected, no duplicates, equal replicas, last writer wins)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def test_a_short_seeded_fault_run_loses_and_resurrects_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "tools/fleet_sim.py", "--seed", "3", "--boxes", "3", "--ops", "300",
         "--kills", "6", "--hub-kills", "2", "--partitions", "5", "--dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for line in ("lost: 0", "resurrected: 0", "duplicated: 0", "digest mismatches: 0",
                 "not the LWW winner: 0"):  # fmt: skip
        assert line in out, out[-3000:]
    assert "SIGKILLs (2 of the hub)" in out


def test_a_box_sigkilled_mid_bootstrap_keeps_rows_and_cursor_in_step(tmp_path: Path) -> None:
    """Each pulled page and its cursor commit together: after a SIGKILL in the middle of
    loading a hub, the rows on disk are exactly the records up to the saved cursor (the
    seeded hub gives record i the feed sequence i), and a restart loads the rest."""
    import sqlite3
    import time

    from tools import fleet_sim as fs

    n = 30_000
    for d in ("hub", "box"):
        (tmp_path / d).mkdir(mode=0o700)
    fs.seed_hub(tmp_path / "hub" / "hub.sqlite3", n, 64)
    token = "kill-test-token-0123456789abcdef"
    hub = fs.Proc(["hub", "--data", str(tmp_path / "hub"), "--tokens", token],
                  fs._free_port(), tmp_path / "hub.log")  # fmt: skip
    box = fs.Proc(["box", "--data", str(tmp_path / "box"), "--upstream",
                   f"http://127.0.0.1:{hub.port}", "--token", token],
                  fs._free_port(), tmp_path / "box.log")  # fmt: skip
    db = tmp_path / "box" / "box.sqlite3"
    try:
        hub.start()
        box.start()
        deadline = time.monotonic() + 120
        while fs._call(box.port, "GET", "/w/status")["cursor"] == 0:
            assert time.monotonic() < deadline, "the box never started loading"
            time.sleep(0.01)
        box.kill()
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            rows = c.execute("SELECT count(*) FROM entities").fetchone()[0]
            cursor = int(c.execute("SELECT value FROM sync_state WHERE name = 'cursor'")
                         .fetchone()[0])  # fmt: skip
        assert 0 < cursor < n, "the kill was not in the middle of the load"
        assert rows == cursor
        box.start()
        while fs._call(box.port, "GET", "/w/status")["cursor"] < n:
            assert time.monotonic() < deadline + 120, "the restarted box did not finish"
            time.sleep(0.1)
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            assert c.execute("SELECT count(*) FROM entities").fetchone()[0] == n
    finally:
        box.stop()
        hub.stop()


def test_a_short_seeded_fault_run_against_a_postgresql_hub(tmp_path: Path) -> None:
    """The same fault run and checker with the hub in a real (private) PostgreSQL."""
    from tests.support.postgres import pg_bindir, shared_cluster

    if pg_bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    url = shared_cluster().new_database()
    proc = subprocess.run(
        [sys.executable, "tools/fleet_sim.py", "--seed", "3", "--boxes", "3", "--ops", "300",
         "--kills", "6", "--hub-kills", "2", "--partitions", "5", "--dir", str(tmp_path),
         "--hub-database", url],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "PostgreSQL hub" in out and "SIGKILLs (2 of the hub)" in out, out[-3000:]
    for line in ("lost: 0", "resurrected: 0", "duplicated: 0", "digest mismatches: 0",
                 "not the LWW winner: 0"):  # fmt: skip
        assert line in out, out[-3000:]
    assert not (tmp_path / "hub" / "hub.sqlite3").exists()  # the hub really was PostgreSQL
