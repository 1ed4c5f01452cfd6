"""The gallery is readable only by the service user: data dir 0700, every database file 0600."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_helpers import make

from edge.store import EntityStore


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual permissive umask, so the test shows the store does not rely on one."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_store_creates_a_private_dir_and_private_files(
    open_store: Callable[..., EntityStore], tmp_path: Path, open_umask: None
) -> None:
    db = tmp_path / "var" / "edge-face" / "edge.sqlite3"
    store = open_store(path=db)
    e = make(store)
    reader = store.get("inst-a", e.uuid)  # a read connection opened too
    assert reader is not None
    wal, shm = (db.with_name(db.name + s) for s in ("-wal", "-shm"))
    assert wal.exists() and shm.exists()  # the store is open and has written
    assert _mode(db.parent) == 0o700
    assert {p.name: _mode(p) for p in (db, wal, shm)} == {
        db.name: 0o600,
        wal.name: 0o600,
        shm.name: 0o600,
    }
    assert _mode(db.parent.parent) == 0o755  # only the data dir itself is made private


def test_loose_existing_files_are_tightened_with_a_warning(
    open_store: Callable[..., EntityStore],
    tmp_path: Path,
    open_umask: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = tmp_path / "data" / "edge.sqlite3"
    make(open_store(path=db))
    # Simulate files an older release left world-readable (the store is still open).
    wal = db.with_name(db.name + "-wal")
    for p in (db, wal):
        os.chmod(p, 0o644)
    os.chmod(db.parent, 0o755)
    with caplog.at_level(logging.WARNING, logger="edge.store.files"):
        store = open_store(path=db)
    make(store)
    assert _mode(db) == 0o600 and _mode(wal) == 0o600
    assert "tightened to 0600" in caplog.text and str(db) in caplog.text
    # An existing directory may be shared: it is left alone, but the log says what to do.
    assert _mode(db.parent) == 0o755
    assert f"chmod 700 {db.parent}" in caplog.text


def test_private_dir_keeps_a_private_dir_quiet(
    open_store: Callable[..., EntityStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "quiet" / "edge.sqlite3"
    open_store(path=db).close()
    with caplog.at_level(logging.WARNING, logger="edge.store.files"):
        open_store(path=db)
    assert caplog.text == ""
