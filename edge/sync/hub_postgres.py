"""The scale-out hub engine: PostgreSQL, for fleets that outgrow one machine.

Several stateless hub processes can sit in front of one database. What makes that safe:

* Every `push` takes one transaction-scoped advisory lock (`pg_advisory_xact_lock`) before
  it reads anything, and holds it through the commit. That serialises pushes across all
  hub processes, which the merge needs anyway (it reads a record, merges, writes it back:
  two unserialised pushes of the same entity would lose one side's change), and it makes
  feed sequences commit in the order they are assigned: the next push reads `max(seq)`
  only after the previous one's commit is visible (PostgreSQL releases a transaction's
  locks after it becomes visible to new snapshots), so a reader can never be handed a
  page ending at N while a smaller sequence is still in flight (contract point 2 of
  `edge.sync.hubstore`). The xmin alternative (`feed` returns only sequences below the
  oldest in-flight writer's) would let pushes run in parallel, but the merge would then
  need row locks and upsert retries for entities two boxes create at once; pushes are
  batched (hundreds of records a transaction), so one writer at a time costs little.
* `feed` and `snapshot` read `max(seq)` and the rows in one REPEATABLE READ snapshot, so
  a short page's cursor jump to the head cannot pass a row the page did not see.
* A push that moved the feed sends a NOTIFY (delivered at its commit) that every hub
  process LISTENs for (`listen`), so a box long-polling one hub process wakes when
  another one took the push, not when its poll times out.
* Connections come from a small per-store pool, one per calling thread at a time; each
  method is one transaction on one connection. When the server restarts, the call that
  meets a dead connection fails (the box retries, as after any failed call) and the pool
  drops every idle connection with it, so the next call connects afresh.

A tombstone overwrites its entity's row. PostgreSQL keeps the old row version until VACUUM
reclaims it (autovacuum does so on its own); run `VACUUM records` after erasing faces if
the freed bytes must be gone at once.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict

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

log = logging.getLogger("edge.sync")

SCHEMA_VERSION: Final = 1
_CHANNEL: Final = "edge_hub_feed"  # NOTIFY channel: "the feed moved"
# One lock id for every hub process on a database (advisory locks are per database).
_PUSH_LOCK: Final = 0x6564_6765_6875_62  # "edgehub"
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS hub_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS records (
        uuid     TEXT COLLATE "C" PRIMARY KEY,
        instance TEXT COLLATE "C" NOT NULL,
        seq      BIGINT NOT NULL UNIQUE,
        deleted  BOOLEAN NOT NULL,
        body     BYTEA NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS records_instance_uuid ON records (instance, uuid)",
    "CREATE TABLE IF NOT EXISTS origins (origin TEXT PRIMARY KEY, acked BIGINT NOT NULL)",
)
_IDLE_MAX: Final = 8  # connections kept open between calls


def describe(url: str) -> str:
    """`user@host:port/dbname` of a connection URL: what logs and errors may show (no
    password)."""
    try:
        d = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparsable URL)"
    host = d.get("host") or "localhost"
    user = f"{d['user']}@" if d.get("user") else ""
    return f"{user}{host}:{d.get('port') or 5432}/{d.get('dbname') or ''}"


def open_error(e: Exception, url: str, password: str | None) -> str:
    """What `serve` says when the hub database cannot be opened: the setting, the database,
    the server's reason with any password blanked out, and what to check."""
    why = " ".join(str(e).split()) or type(e).__name__
    secrets_: list[object] = [password]
    with suppress(psycopg.Error):
        secrets_.append(conninfo_to_dict(url).get("password"))
    for secret in secrets_:
        if secret:
            why = why.replace(str(secret), "***")
    hint = (
        "check that the server runs and accepts connections from this host for this user "
        "and password (from the URL, sync.hub_database_password_file, PGPASSWORD or ~/.pgpass)"
        if isinstance(e, psycopg.OperationalError)
        else "check the URL and that this user may create tables in that database"
    )
    return f"sync.hub_database: cannot open the hub database {describe(url)}: {why}; {hint}"


class PostgresHubStore:
    """`HubStore` on a PostgreSQL database (the schema is created on first open)."""

    def __init__(self, url: str, *, password: str | None = None, connect_timeout: int = 10) -> None:
        self._url = url
        self._kwargs: dict[str, Any] = {
            "autocommit": True,  # transactions are explicit: `with conn.transaction()`
            "connect_timeout": connect_timeout,
            "application_name": "edge-face hub",
        }
        if password is not None:
            self._kwargs["password"] = password
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._listener: threading.Thread | None = None
        with self._tx() as c:
            c.execute("SELECT pg_advisory_xact_lock(%s)", (_PUSH_LOCK,))  # racing hub starts
            for stmt in _SCHEMA:
                c.execute(stmt)
            row = c.execute("SELECT value FROM hub_meta WHERE name = 'schema'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the hub database {describe(url)} has schema {version}, newer than this "
                    f"edge-face knows ({SCHEMA_VERSION}): upgrade edge-face on this hub"
                )
            if version < SCHEMA_VERSION:  # migrations from older schemas go here, in order
                c.execute(
                    "INSERT INTO hub_meta VALUES ('schema', %s) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (str(SCHEMA_VERSION),),
                )
            c.execute(
                "INSERT INTO hub_meta VALUES ('epoch', %s) ON CONFLICT (name) DO NOTHING",
                (secrets.token_hex(8),),
            )
            row = c.execute("SELECT value FROM hub_meta WHERE name = 'epoch'").fetchone()
            assert row is not None
            self._epoch = str(row[0])

    @property
    def where(self) -> str:
        """The database, for logs (never the password)."""
        return describe(self._url)

    # Connections -------------------------------------------------------------------------
    def _take(self) -> psycopg.Connection[Any]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the hub store is closed")
            while self._idle:
                conn = self._idle.pop()
                if not (conn.closed or conn.broken):
                    return conn
        return psycopg.connect(self._url, **self._kwargs)

    def _give(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            if not (self._closed or conn.closed or conn.broken) and len(self._idle) < _IDLE_MAX:
                self._idle.append(conn)
                return
        conn.close()

    @contextmanager
    def _tx(self, *, snapshot: bool = False) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction on a pooled connection; `snapshot`: read-only, every statement
        sees the same data (REPEATABLE READ)."""
        conn = self._take()
        try:
            with conn.transaction(), conn.cursor() as cur:
                if snapshot:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield cur
        except psycopg.OperationalError:
            if conn.broken:  # the server restarted or the link dropped: so did the idle ones,
                with self._lock:  # and the caller's retry must get a fresh connection
                    idle, self._idle = self._idle, []
                for other in idle:
                    other.close()
            raise
        finally:
            self._give(conn)

    # HubStore ----------------------------------------------------------------------------
    @property
    def epoch(self) -> str:
        return self._epoch

    def push(self, origin: str, changes: Sequence[tuple[int, Record]]) -> PushResult:
        applied = unchanged = skipped = conflicts = 0
        with self._tx() as c:
            # Held to the commit: pushes of every hub process run one at a time, so
            # sequences become visible in the order they are handed out (rule 2).
            c.execute("SELECT pg_advisory_xact_lock(%s)", (_PUSH_LOCK,))
            row = c.execute("SELECT acked FROM origins WHERE origin = %s", (origin,)).fetchone()
            acked = int(row[0]) if row else 0
            row = c.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()
            head = int(row[0]) if row else 0
            # Merged even when already acknowledged (contract rule 1): the merge makes a
            # resend change nothing, and a box restored from a backup reuses sequences.
            todo = list(changes)
            skipped = sum(1 for seq, _ in changes if 0 < seq <= acked)
            uuids = list({rec.uuid for _, rec in todo})
            current: dict[str, Record] = {}
            if uuids:
                c.execute("SELECT body FROM records WHERE uuid = ANY(%s)", (uuids,))
                current = {r.uuid: r for r in (decode_body(b) for (b,) in c.fetchall())}
            new_acked = acked
            writes: dict[str, tuple[int, Record]] = {}
            for seq, rec in todo:
                new_acked = max(new_acked, seq)  # seq 0: a re-push, merged, never acked
                stored = current.get(rec.uuid)
                merged = rec if stored is None else merge(stored, rec)
                if merged == stored:
                    unchanged += 1
                    continue
                if stored is not None and merged != rec and merged.deleted is None:
                    conflicts += 1
                head += 1
                current[rec.uuid] = merged
                writes[rec.uuid] = (head, merged)  # one row per entity, at its last sequence
                applied += 1
            if writes:
                c.executemany(
                    "INSERT INTO records (uuid, instance, seq, deleted, body) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (uuid) DO UPDATE SET "
                    "instance = excluded.instance, seq = excluded.seq, "
                    "deleted = excluded.deleted, body = excluded.body",
                    [(m.uuid, m.instance, s, m.deleted is not None, pack(encode_record(m)))
                     for s, m in sorted(writes.values(), key=lambda w: w[0])],
                )  # fmt: skip
            c.execute(
                "INSERT INTO origins VALUES (%s, %s) "
                "ON CONFLICT (origin) DO UPDATE SET acked = excluded.acked",
                (origin, new_acked),
            )
            if writes:  # sent at commit, to the listeners of every hub process
                c.execute("SELECT pg_notify(%s, '')", (_CHANNEL,))
        return PushResult(new_acked, applied, unchanged, skipped, conflicts)

    def acked(self, origin: str) -> int:
        with self._tx() as c:
            row = c.execute("SELECT acked FROM origins WHERE origin = %s", (origin,)).fetchone()
        return int(row[0]) if row else 0

    def head(self) -> int:
        with self._tx() as c:
            row = c.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()
        return int(row[0]) if row else 0

    def feed(self, instances: Sequence[str], fingerprint: str, after: int, limit: int) -> FeedPage:
        with self._tx(snapshot=True) as c:
            row = c.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()
            head = int(row[0]) if row else 0
            c.execute(
                "SELECT seq, body FROM records WHERE instance = ANY(%s) AND seq > %s "
                "ORDER BY seq LIMIT %s",
                (list(instances), after, limit),
            )
            rows = c.fetchall()
        return feed_page(self._epoch, rows, fingerprint, after, head, limit)

    def snapshot(
        self,
        instances: Sequence[str],
        fingerprint: str,
        after_uuid: str,
        limit: int,
        head: int | None = None,
    ) -> SnapshotPage:
        with self._tx(snapshot=True) as c:  # one snapshot of head and rows
            start = head
            if start is None:
                row = c.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()
                start = int(row[0]) if row else 0
            c.execute(
                "SELECT uuid, body FROM records WHERE instance = ANY(%s) AND NOT deleted "
                "AND uuid > %s ORDER BY uuid LIMIT %s",
                (list(instances), after_uuid, limit),
            )
            rows = c.fetchall()
        return snapshot_page(rows, fingerprint, start, limit)

    def scan(
        self, instances: Sequence[str], after_uuid: str, limit: int, bucket: str | None = None
    ) -> list[Record]:
        where = "instance = ANY(%s) AND uuid > %s"
        args: list[object] = [list(instances), after_uuid]
        if bucket is not None:
            where += " AND lower(right(uuid, %s)) = %s"
            args += [len(bucket), bucket.lower()]
        with self._tx() as c:
            c.execute(
                f"SELECT body FROM records WHERE {where} ORDER BY uuid LIMIT %s",
                (*args, limit),
            )
            rows = c.fetchall()
        return [decode_body(b) for (b,) in rows]

    def get(self, uuid: str) -> Record | None:
        with self._tx() as c:
            row = c.execute("SELECT body FROM records WHERE uuid = %s", (uuid,)).fetchone()
        return None if row is None else decode_body(row[0])

    def counts(self) -> HubCounts:
        with self._tx(snapshot=True) as c:
            row = c.execute(
                "SELECT count(*), count(*) FILTER (WHERE deleted), coalesce(max(seq), 0) "
                "FROM records"
            ).fetchone()
            assert row is not None
            n, dead, head = row
            row = c.execute("SELECT count(*) FROM origins").fetchone()
            origins = int(row[0]) if row else 0
        return HubCounts(int(n) - int(dead), int(dead), int(head), origins)

    def listen(self, changed: Callable[[], None]) -> None:
        """Call `changed()` (from a thread of its own) whenever a push of ANY hub process on
        this database moved the feed, and once after each (re)connection, since
        notifications sent while disconnected are lost. Until `close()`."""
        if self._listener is None:
            self._listener = threading.Thread(
                target=self._listen, args=(changed,), name="edge-hub-listen", daemon=True
            )
            self._listener.start()

    def _listen(self, changed: Callable[[], None]) -> None:
        delay = 0.5
        while not self._closed:
            try:
                with psycopg.connect(self._url, **self._kwargs) as conn:
                    conn.execute(f"LISTEN {_CHANNEL}")
                    changed()
                    delay = 0.5
                    while not self._closed:
                        for _ in conn.notifies(timeout=1.0):
                            changed()
            except psycopg.OperationalError as e:
                if self.closed():  # (a method: the loop's check would narrow the attribute)
                    return
                log.warning("sync hub: feed notifications from %s lost (%s); reconnecting "
                            "in %.1f s", self.where, " ".join(str(e).split()), delay)  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def closed(self) -> bool:
        """True once `close` ran (set from another thread)."""
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        if self._listener is not None and self._listener is not threading.current_thread():
            self._listener.join(5)
