"""The embedded hub engine: one SQLite file (the default for a site of 2-20 boxes).

One connection behind a lock: every push is one `BEGIN IMMEDIATE` transaction, so writers
are serialised and feed sequences become visible in order (contract point 2 of
`edge.sync.hubstore`). Records are stored as their wire encoding; a tombstone overwrites
the row of the entity it erases, and `secure_delete` zeroes the freed pages, so the hub
keeps no copy of an erased face either.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from edge.sync.codec import FeedPage, encode_record, pack
from edge.sync.hubstore import (
    HubCounts,
    PushResult,
    SnapshotPage,
    decode_body,
    feed_page,
    snapshot_page,
)
from edge.sync.record import Record, merge

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS hub_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS records (
        uuid     TEXT PRIMARY KEY,
        instance TEXT NOT NULL,
        seq      INTEGER NOT NULL UNIQUE,
        deleted  INTEGER NOT NULL,
        body     BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS records_instance_uuid ON records (instance, uuid)",
    "CREATE TABLE IF NOT EXISTS origins (origin TEXT PRIMARY KEY, acked INTEGER NOT NULL)",
)


class SqliteHubStore:
    """`HubStore` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        db = self._db
        db.execute("PRAGMA secure_delete=ON")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # an ack promises the batch survives power loss
        with self._tx() as c:
            for stmt in _SCHEMA:
                c.execute(stmt)
            row = c.execute("SELECT value FROM hub_meta WHERE name = 'epoch'").fetchone()
            if row is None:
                self._epoch = secrets.token_hex(8)
                c.execute("INSERT INTO hub_meta VALUES ('epoch', ?)", (self._epoch,))
            else:
                self._epoch = str(row[0])
        self.path.chmod(0o600)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @property
    def epoch(self) -> str:
        return self._epoch

    def push(self, origin: str, changes: Sequence[tuple[int, Record]]) -> PushResult:
        applied = unchanged = skipped = conflicts = 0
        with self._tx() as c:
            row = c.execute("SELECT acked FROM origins WHERE origin = ?", (origin,)).fetchone()
            acked = int(row[0]) if row else 0
            head = int(c.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0])
            new_acked = acked
            for seq, rec in changes:
                # Merged even when already acknowledged: the merge makes a resend change
                # nothing, and a box restored from a backup reuses sequence numbers.
                if 0 < seq <= acked:
                    skipped += 1
                new_acked = max(new_acked, seq)  # seq 0: a re-push, merged, never acked
                old = c.execute("SELECT body FROM records WHERE uuid = ?", (rec.uuid,)).fetchone()
                stored = None if old is None else decode_body(old[0])
                merged = rec if stored is None else merge(stored, rec)
                if merged == stored:
                    unchanged += 1
                    continue
                if stored is not None and merged != rec and merged.deleted is None:
                    conflicts += 1
                head += 1
                c.execute(
                    "INSERT OR REPLACE INTO records (uuid, instance, seq, deleted, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (merged.uuid, merged.instance, head, int(merged.deleted is not None),
                     pack(encode_record(merged))),
                )  # fmt: skip
                applied += 1
            c.execute(
                "INSERT INTO origins VALUES (?, ?) ON CONFLICT (origin) DO UPDATE SET acked = ?",
                (origin, new_acked, new_acked),
            )
        return PushResult(new_acked, applied, unchanged, skipped, conflicts)

    def acked(self, origin: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT acked FROM origins WHERE origin = ?", (origin,)
            ).fetchone()
        return int(row[0]) if row else 0

    def head(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0])

    def feed(self, instances: Sequence[str], fingerprint: str, after: int, limit: int) -> FeedPage:
        marks = ",".join("?" * len(instances))
        with self._lock:
            self._db.execute("BEGIN")  # head and rows from one snapshot (another process writes)
            try:
                db = self._db
                head = int(db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0])
                rows = db.execute(
                    f"SELECT seq, body FROM records WHERE instance IN ({marks}) AND seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (*instances, after, limit),
                ).fetchall()
            finally:
                self._db.execute("COMMIT")
        return feed_page(self._epoch, rows, fingerprint, after, head, limit)

    def snapshot(
        self,
        instances: Sequence[str],
        fingerprint: str,
        after_uuid: str,
        limit: int,
        head: int | None = None,
    ) -> SnapshotPage:
        marks = ",".join("?" * len(instances))
        with self._tx() as c:  # one snapshot of head and rows
            start = head
            if start is None:
                start = int(c.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0])
            rows = c.execute(
                f"SELECT uuid, body FROM records WHERE instance IN ({marks}) AND deleted = 0 "
                "AND uuid > ? ORDER BY uuid LIMIT ?",
                (*instances, after_uuid, limit),
            ).fetchall()
        return snapshot_page(rows, fingerprint, start, limit)

    def scan(
        self, instances: Sequence[str], after_uuid: str, limit: int, bucket: str | None = None
    ) -> list[Record]:
        marks = ",".join("?" * len(instances))
        where = f"instance IN ({marks}) AND uuid > ?"
        args: list[object] = [*instances, after_uuid]
        if bucket is not None:
            where += " AND lower(substr(uuid, -?)) = ?"
            args += [len(bucket), bucket.lower()]
        with self._lock:
            rows = self._db.execute(
                f"SELECT body FROM records WHERE {where} ORDER BY uuid LIMIT ?", (*args, limit)
            ).fetchall()
        return [decode_body(b) for (b,) in rows]

    def get(self, uuid: str) -> Record | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM records WHERE uuid = ?", (uuid,)).fetchone()
        return None if row is None else decode_body(row[0])

    def counts(self) -> HubCounts:
        with self._lock:
            n, dead, head = self._db.execute(
                "SELECT count(*), coalesce(sum(deleted), 0), coalesce(max(seq), 0) FROM records"
            ).fetchone()
            origins = self._db.execute("SELECT count(*) FROM origins").fetchone()[0]
        return HubCounts(int(n) - int(dead), int(dead), int(head), int(origins))

    def close(self) -> None:
        with self._lock:
            self._db.close()
