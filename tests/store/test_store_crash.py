"""kill -9 at an arbitrary moment loses no acknowledged write and leaves nothing half-made.

A unit test of `EntityStore`: it builds the class directly (elsewhere only `edge.engine` does).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from store_helpers import ManualClock

from edge.store import EntityStore
from tests.support.paths import REPO_ROOT

WRITER = Path(__file__).with_name("crash_writer.py")


def _run_and_kill(db: Path, seed: int, acks_before_kill: int) -> list[list[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(db), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[list[str]] = []
    deadline = time.monotonic() + 120
    try:
        while len(lines) < acks_before_kill:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"writer died early: {proc.stderr.read()}")  # type: ignore[union-attr]
            lines.append(line.split())
            assert time.monotonic() < deadline, "writer too slow"
        os.kill(proc.pid, signal.SIGKILL)  # mid-way: the writer is busy with the next write
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Lines already in the pipe were printed after their commit: they are acknowledged too.
    lines += [ln.split() for ln in rest.splitlines() if ln.strip()]
    return lines


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite3"
    alive: dict[str, str | None] = {}  # acknowledged live uuid -> acknowledged key (None: k*)
    deleted: set[str] = set()
    unacked: set[str] = set()
    for round_, acks in enumerate((40, 90, 65)):
        for op, uuid, *rest in _run_and_kill(db, seed=round_, acks_before_kill=acks):
            if op == "create":
                alive[uuid] = None
            elif op == "delete":
                alive.pop(uuid)
                deleted.add(uuid)
            elif op == "update":
                alive[uuid] = rest[0]

        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = {
                u: (k, dim, vec)
                for u, k, dim, vec in conn.execute("SELECT uuid, key, dim, vector FROM entities")
            }
            # The compacted log keeps each entity's latest change: its create or update.
            created = {
                u
                for (u,) in conn.execute(
                    "SELECT entity_uuid FROM changes WHERE op IN ('create', 'update')"
                )
            }
            deleted_logged = {
                u for (u,) in conn.execute("SELECT entity_uuid FROM changes WHERE op='delete'")
            }
        finally:
            conn.close()
        # At most ONE write was in flight at the kill: committed but never acknowledged. It may
        # have added a row (create) or removed an acknowledged one (delete); nothing else may
        # differ from what the writer acknowledged.
        unacked_new = set(rows) - set(alive) - unacked
        unacked_gone = set(alive) - set(rows)
        assert len(unacked_new) + len(unacked_gone) <= 1, (unacked_new, unacked_gone)
        unacked |= unacked_new
        for u in unacked_gone:
            alive.pop(u)
        assert not deleted & set(rows)
        # An acknowledged update is visible (the one unacknowledged write may be newer).
        for u, key in alive.items():
            if key is not None:
                stored = rows[u][0]
                assert stored == key or int(stored[1:]) > int(key[1:])
        # Nothing half-written: every row whole, and its latest state logged in the outbox.
        for _, dim, vec in rows.values():
            assert dim == 128 and len(vec) == 4 * 128
            v = np.frombuffer(vec, "<f4")
            assert np.isfinite(v).all() and abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
        assert set(rows) <= created
        assert not set(rows) & deleted_logged

    # The store reopens on the crashed file and its index agrees with the rows.
    with EntityStore(db, pack_fingerprint="crash-pack", clock=ManualClock()) as store:
        assert len(store.index) == store.count() == len(rows)
        for u in alive:
            got = store.get("crash", u, with_vector=True)
            assert got is not None and got.vector is not None
            (hit, score), *_ = store.search("crash", "EDGE_FACE_V1", got.vector, limit=1)
            assert hit.uuid == u and score > 0.999
