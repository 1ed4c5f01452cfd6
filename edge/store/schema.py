"""Versioned schema migrations for the entity store.

The database carries its schema version in `PRAGMA user_version`. Migrations form an ordered
list; opening a store applies, each in its own transaction together with the version bump,
every migration newer than the file, so a box upgraded in the field converts its data once
and a crash half-way leaves either the old or the new schema, never a mix. A file written by
a newer release is refused rather than silently misread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Expiry "never" (api.md §2.3) as unix seconds: 3000-01-01T00:00:00Z.
NEVER_EXPIRES = 32503680000


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


def _statements(*sql: str) -> Callable[[sqlite3.Connection], None]:
    # executescript() would COMMIT the surrounding transaction; run statements one by one.
    def run(conn: sqlite3.Connection) -> None:
        for stmt in sql:
            conn.execute(stmt)

    return run


_V1 = _statements(
    """
    CREATE TABLE entities (
        uuid             TEXT PRIMARY KEY,
        instance         TEXT NOT NULL,
        model            TEXT NOT NULL,
        model_name       TEXT NOT NULL,
        collection       TEXT NOT NULL DEFAULT '',
        key              TEXT NOT NULL DEFAULT '',
        metadata         TEXT NOT NULL DEFAULT '[]',
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,
        dim              INTEGER NOT NULL CHECK (dim > 0),
        vector           BLOB NOT NULL CHECK (length(vector) = 4 * dim),
        pack_fingerprint TEXT NOT NULL
    )
    """,
    "CREATE INDEX entities_instance_uuid ON entities (instance, uuid)",
    "CREATE INDEX entities_instance_model_uuid ON entities (instance, model, uuid)",
    "CREATE INDEX entities_instance_collection_uuid ON entities (instance, collection, uuid)",
    "CREATE INDEX entities_instance_key_uuid ON entities (instance, key, uuid)",
    "CREATE INDEX entities_expires ON entities (expires_at)",
    """
    CREATE TABLE changes (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        change_id   TEXT NOT NULL UNIQUE,
        op          TEXT NOT NULL CHECK (op IN ('create', 'update', 'delete', 'expire')),
        entity_uuid TEXT NOT NULL,
        instance    TEXT NOT NULL,
        at_ms       INTEGER NOT NULL,
        payload     TEXT NOT NULL
    )
    """,
    "CREATE INDEX changes_entity ON changes (entity_uuid)",
)

# The change log becomes compacted (an entity's latest row supersedes its earlier ones) and
# pruned by age: drop the superseded rows, which still hold old vectors and metadata, and
# the states of entities already gone; index the age.
_V2 = _statements(
    "DELETE FROM changes WHERE seq NOT IN (SELECT max(seq) FROM changes GROUP BY entity_uuid)",
    "DELETE FROM changes WHERE op IN ('create', 'update') "
    "AND entity_uuid NOT IN (SELECT uuid FROM entities)",
    "CREATE INDEX changes_at ON changes (at_ms)",
)


def _v3(conn: sqlite3.Connection) -> None:
    """Fleet sync: a hybrid-logical-clock stamp per field group of each row (meta, vector,
    expiry: `edge.store.hlc` text form), tombstones of deleted uuids (no personal data: a
    stale replica must not bring them back), the replica's origin id and sync cursors.
    Existing rows are stamped at their updated_at by this file's new origin (a sync worker
    pushes the whole gallery on first contact with a hub, so older change rows, which
    carry no stamps, need no conversion)."""
    import secrets

    origin = "r" + secrets.token_hex(8)
    for group in ("meta", "vec", "exp"):
        conn.execute(f"ALTER TABLE entities ADD COLUMN v_{group} TEXT NOT NULL DEFAULT ''")
    conn.execute(
        "UPDATE entities SET v_meta = printf('%016x', updated_at * 65536000) || ':' || ?",
        (origin,),
    )
    conn.execute("UPDATE entities SET v_vec = v_meta, v_exp = v_meta")
    conn.execute(
        "CREATE TABLE tombstones (uuid TEXT PRIMARY KEY, instance TEXT NOT NULL, "
        "stamp TEXT NOT NULL)"
    )
    conn.execute("CREATE TABLE sync_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO sync_state VALUES ('origin', ?)", (origin,))
    # Deletes still in the log become tombstones (stamped at their time).
    conn.execute(
        "INSERT OR REPLACE INTO tombstones SELECT entity_uuid, instance, "
        "printf('%016x', at_ms * 65536) || ':' || ? FROM changes WHERE op = 'delete'",
        (origin,),
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "entities, vector blobs and the change log (outbox)", _V1),
    Migration(2, "compacted change log: superseded and erased states dropped", _V2),
    Migration(3, "fleet sync: per-group clock stamps, tombstones, origin and cursors", _v3),
)


class SchemaError(RuntimeError):
    """The database file cannot be used by this release."""


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring `conn`'s database to the newest version; returns the number of steps applied.

    `conn` must be in autocommit mode (isolation_level=None) so that each step's
    transaction is exactly the one opened here.
    """
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise ValueError("migration versions must be unique, ascending and start at >= 1")
    latest = versions[-1] if versions else 0
    current = schema_version(conn)
    if current > latest:
        raise SchemaError(
            f"database schema version {current} is newer than this release supports ({latest})"
        )
    applied = 0
    for m in migrations:
        if m.version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            if schema_version(conn) >= m.version:
                conn.execute("ROLLBACK")
                continue
            m.apply(conn)
            conn.execute(f"PRAGMA user_version = {int(m.version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied += 1
    return applied
