"""`edge-face backup|restore|keys`: real SQLite galleries, the real CLI in a subprocess."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.api.keyring import read_key_file
from edge.config import load_settings
from edge.engine import open_store
from edge.store import EntityStore
from edge.store.schema import MIGRATIONS

#: the vectors here are synthetic: no model pack made them
FINGERPRINT = "pack-admin-test"


def cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command line, pointed at a private data dir through the environment."""
    full_env = {**os.environ, "EDGE_DATA_DIR": str(data_dir), **env}
    full_env.pop("EDGE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )


def enrol(store: EntityStore, n: int, seed: int = 0, key: str = "") -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        store.create(
            instance="default",
            model="EDGE_FACE_V1",
            model_name="EDGE_FACE_V1",
            collection="",
            key=key,
            metadata=[],
            ttl=-1,
            vector=rng.standard_normal(128).astype(np.float32),
        )


def gallery(data_dir: Path) -> EntityStore:
    """The gallery of `data_dir` as the service opens it (the file the CLI backs up)."""
    return open_store(load_settings(None, data_dir=data_dir), fingerprint=FINGERPRINT)


def count_rows(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM entities").fetchone()[0])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def store(data_dir: Path) -> Iterator[EntityStore]:
    s = gallery(data_dir)
    yield s
    s.close()


def test_backup_while_the_gallery_is_being_written(
    store: EntityStore, data_dir: Path, tmp_path: Path
) -> None:
    """A consistent 0600 snapshot while another connection keeps committing."""
    enrol(store, 200)
    stop = threading.Event()

    def writer() -> None:
        seed = 1
        while not stop.is_set():
            enrol(store, 5, seed=seed)
            seed += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        before = store.count()
        proc = cli(data_dir, "backup", str(tmp_path / "nightly.sqlite3"))
        after = store.count()
    finally:
        stop.set()
        t.join()
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "nightly.sqlite3"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not Path(f"{out}-wal").exists()  # one self-contained file
    with sqlite3.connect(out) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == MIGRATIONS[-1].version
    assert before <= count_rows(out) <= after
    assert f"backed up {count_rows(out)} face entities" in proc.stdout
    assert not list(tmp_path.glob(".nightly*part"))  # no temporary file left

    again = cli(data_dir, "backup", str(out))
    assert again.returncode == 1 and "--overwrite" in again.stderr


def test_backup_without_a_gallery_says_where_it_looked(data_dir: Path, tmp_path: Path) -> None:
    proc = cli(data_dir, "backup", str(tmp_path / "b.sqlite3"))
    assert proc.returncode == 1
    assert str(data_dir / "edge.sqlite3") in proc.stderr
    assert not (tmp_path / "b.sqlite3").exists()


def test_restore_refuses_while_open_then_restores(data_dir: Path, tmp_path: Path) -> None:
    live = data_dir / "edge.sqlite3"
    store = gallery(data_dir)
    enrol(store, 3, key="kept")
    backup = tmp_path / "b.sqlite3"
    assert cli(data_dir, "backup", str(backup)).returncode == 0
    enrol(store, 4, seed=9, key="after-backup")

    refused = cli(data_dir, "restore", str(backup))
    assert refused.returncode == 1
    assert str(os.getpid()) in refused.stderr and "--force" in refused.stderr
    assert store.count() == 7  # untouched
    store.close()

    done = cli(data_dir, "restore", str(backup))
    assert done.returncode == 0, done.stderr
    assert "restored 3 face entities" in done.stdout
    assert stat.S_IMODE(live.stat().st_mode) == 0o600
    previous = list(data_dir.glob("edge.sqlite3.before-restore-*"))
    assert len(previous) == 1 and count_rows(previous[0]) == 7
    assert stat.S_IMODE(previous[0].stat().st_mode) == 0o600

    reopened = gallery(data_dir)  # the service's next start
    try:
        assert reopened.count() == 3
        assert {e.key for e in reopened.list("default", limit=10)[1]} == {"kept"}
    finally:
        reopened.close()


def test_forced_restore_into_an_open_gallery_is_seen_by_its_readers(
    data_dir: Path, tmp_path: Path
) -> None:
    """--force writes through SQLite's locks: an open connection reads the restored rows."""
    live = data_dir / "edge.sqlite3"
    store = gallery(data_dir)
    try:
        enrol(store, 2)
        backup = tmp_path / "b.sqlite3"
        assert cli(data_dir, "backup", str(backup)).returncode == 0
        enrol(store, 5, seed=3)
        forced = cli(data_dir, "restore", "--force", str(backup))
        assert forced.returncode == 0, forced.stderr
        assert "restart the service" in forced.stdout
        assert store.count() == 2  # SQL reads see the restored file at once
    finally:
        store.close()
    with sqlite3.connect(live) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_restore_onto_a_fresh_box(data_dir: Path, tmp_path: Path) -> None:
    src_dir = tmp_path / "old-box"
    with gallery(src_dir) as old:
        enrol(old, 6)
    backup = tmp_path / "b.sqlite3"
    assert cli(src_dir, "backup", str(backup)).returncode == 0
    proc = cli(data_dir, "restore", str(backup))
    assert proc.returncode == 0, proc.stderr
    assert "previous gallery" not in proc.stdout
    with gallery(data_dir) as new:
        assert new.count() == 6


def test_restore_replaces_a_damaged_gallery_and_keeps_its_bytes(
    data_dir: Path, tmp_path: Path
) -> None:
    src_dir = tmp_path / "good"
    with gallery(src_dir) as good:
        enrol(good, 4)
    backup = tmp_path / "b.sqlite3"
    assert cli(src_dir, "backup", str(backup)).returncode == 0
    damaged = b"SQLite format 3\x00" + b"\xff" * 8000
    (data_dir / "edge.sqlite3").write_bytes(damaged)

    proc = cli(data_dir, "restore", str(backup))
    assert proc.returncode == 0, proc.stderr
    previous = list(data_dir.glob("edge.sqlite3.before-restore-*"))
    assert [p.read_bytes() for p in previous] == [damaged]
    with gallery(data_dir) as restored:
        assert restored.count() == 4


def _sqlite_file(path: Path, *sql: str) -> Path:
    with sqlite3.connect(path) as conn:
        for s in sql:
            conn.execute(s)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"not a database at all" * 100) and p, "not a readable SQLite"),
        (lambda p: _sqlite_file(p, "CREATE TABLE t (x)"), "not an edge-face gallery"),
        (
            lambda p: _sqlite_file(
                p,
                "CREATE TABLE entities (x)",
                "CREATE TABLE changes (x)",
                f"PRAGMA user_version = {MIGRATIONS[-1].version + 1}",
            ),
            "newer than this release supports",
        ),
    ],
    ids=["garbage", "foreign-schema", "newer-schema"],
)
def test_restore_rejects_a_bad_file_and_keeps_the_gallery(
    store: EntityStore, data_dir: Path, tmp_path: Path, make: object, message: str
) -> None:
    enrol(store, 2)
    store.close()
    bad = make(tmp_path / "bad.sqlite3")  # type: ignore[operator]
    proc = cli(data_dir, "restore", str(bad))
    assert proc.returncode == 1
    assert message in proc.stderr
    assert count_rows(data_dir / "edge.sqlite3") == 2
    assert not list(data_dir.glob("*.before-restore-*"))


def test_keys_rotate_then_prune(data_dir: Path) -> None:
    empty = cli(data_dir, "keys", "list")
    assert empty.returncode == 0 and "generates one on its first start" in empty.stdout

    first = cli(data_dir, "keys", "rotate")  # no file yet: the first key
    assert first.returncode == 0, first.stderr
    key_file = data_dir / "api-key"
    k1 = read_key_file(key_file)
    assert len(k1) == 1 and k1[0] in first.stdout

    second = cli(data_dir, "keys", "rotate")
    assert second.returncode == 0
    keys = read_key_file(key_file)
    assert len(keys) == 2 and keys[1] == k1[0]  # newest first, the old one still valid
    assert keys[0] in second.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    listing = cli(data_dir, "keys", "list")
    assert keys[0] not in listing.stdout and keys[1] not in listing.stdout  # ids only
    assert listing.stdout.count("\n  ") == 2

    pruned = cli(data_dir, "keys", "prune")
    assert pruned.returncode == 0 and "revoked 1 key" in pruned.stdout
    assert read_key_file(key_file) == [keys[0]]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert cli(data_dir, "keys", "prune", "--keep", "0").returncode == 1


def test_keys_commands_refuse_configured_keys(data_dir: Path) -> None:
    proc = cli(
        data_dir,
        "keys",
        "rotate",
        EDGE_SERVER__API_KEYS='[{"key": "configured-key-1234", "instance": "a"}]',
    )
    assert proc.returncode == 1
    assert "server.api_keys" in proc.stderr
    assert not (data_dir / "api-key").exists()
