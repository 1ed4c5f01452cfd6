"""Schema migrations: versioned by PRAGMA user_version, applied once, in order, atomically."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from store_helpers import make

from edge.store import MIGRATIONS, EntityStore, Migration, SchemaError
from edge.store.schema import migrate, schema_version


def _conn(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_new_file_gets_latest_version_and_reopen_is_idempotent(
    open_store: Callable[..., EntityStore], db_path: Path
) -> None:
    s = open_store()
    e = make(s)
    s.close()
    conn = _conn(db_path)
    assert schema_version(conn) == MIGRATIONS[-1].version
    schema_before = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert migrate(conn) == 0
    conn.close()
    for _ in range(2):
        s = open_store()
        assert s.get("inst-a", e.uuid) is not None
        s.close()
    conn = _conn(db_path)
    assert conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema_before
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_later_migration_applies_once_in_order(tmp_path: Path) -> None:
    calls: list[int] = []

    base = MIGRATIONS[-1].version

    def v2(conn: sqlite3.Connection) -> None:
        calls.append(base + 1)
        conn.execute("ALTER TABLE entities ADD COLUMN note TEXT NOT NULL DEFAULT ''")

    def v3(conn: sqlite3.Connection) -> None:
        calls.append(base + 2)
        conn.execute("CREATE INDEX entities_note ON entities (note)")

    path = tmp_path / "m.sqlite3"
    conn = _conn(path)
    assert migrate(conn) == len(MIGRATIONS)
    plan = (*MIGRATIONS, Migration(base + 1, "note", v2), Migration(base + 2, "note index", v3))
    assert migrate(conn, plan) == 2
    assert migrate(conn, plan) == 0
    assert calls == [base + 1, base + 2]
    assert schema_version(conn) == base + 2
    cols = [r[1] for r in conn.execute("PRAGMA table_info(entities)")]
    assert "note" in cols
    conn.close()


def test_failing_migration_leaves_previous_version_intact(tmp_path: Path) -> None:
    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE entities ADD COLUMN half TEXT")
        raise RuntimeError("migration bug")

    path = tmp_path / "m.sqlite3"
    conn = _conn(path)
    migrate(conn)
    base = MIGRATIONS[-1].version
    with pytest.raises(RuntimeError, match="migration bug"):
        migrate(conn, (*MIGRATIONS, Migration(base + 1, "bad", bad)))
    assert schema_version(conn) == base
    assert "half" not in [r[1] for r in conn.execute("PRAGMA table_info(entities)")]
    conn.close()


def test_newer_database_is_refused(open_store: Callable[..., EntityStore], db_path: Path) -> None:
    open_store().close()
    conn = _conn(db_path)
    conn.execute(f"PRAGMA user_version = {MIGRATIONS[-1].version + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="newer"):
        open_store()


def test_unordered_migration_list_is_a_programming_error(tmp_path: Path) -> None:
    conn = _conn(tmp_path / "x.sqlite3")
    noop = MIGRATIONS[0].apply
    with pytest.raises(ValueError):
        migrate(conn, (Migration(2, "b", noop), Migration(1, "a", noop)))
    conn.close()
