"""The entity store: enrolled faces in one SQLite file plus an in-memory vector index.

SQLite is the source of truth; the index is a cache rebuilt from it at start and updated
only after a write has committed, so a crash can never leave the index ahead of the file.
Every create/update/delete/expire writes its change-log (outbox) row in the same
transaction as the entity row: the sync worker and the MQTT bridge can trust that a change
they see happened, and that nothing happened without a change row.

Erase means erased: a delete or expiry removes the entity's earlier change rows (the only
other copies of its vector and metadata) in the same transaction, SQLite overwrites the
freed pages (`secure_delete`), and a WAL checkpoint then truncates the old frames, so the
face cannot be recovered from the files either. The log is compacted (an entity's latest
row, a full state or a tombstone, supersedes its earlier ones) and, without fleet sync,
pruned by age and count at each write, so the file stays proportional to the live gallery.
"""

from __future__ import annotations

import base64
import builtins
import json
import logging
import sqlite3
import threading
import time
import uuid as _uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import numpy as np

from edge.metrics import REGISTRY
from edge.store.files import private_database, private_dir
from edge.store.hlc import Hlc, HybridClock
from edge.store.ids import UuidV7Generator
from edge.store.index import ExactIndex, IndexEntry, VectorIndex
from edge.store.schema import NEVER_EXPIRES, migrate
from edge.timefmt import iso_utc

log = logging.getLogger(__name__)

SEARCH_SECONDS = REGISTRY.histogram(
    "edge_store_search_seconds", "1:N vector search time inside the store (index scan + fetch)"
)

_VECTOR_DTYPE: Final = np.dtype("<f4")  # little-endian float32 on disk, whatever the CPU
_PURGE_BATCH: Final = 1000
_LOAD_CHUNK: Final = 4096
_FETCH_CHUNK: Final = 500  # stays under SQLite's host-parameter limit on old builds
_BUSY_MS: Final = 30_000
# A checkpoint waits at most this long for readers of old snapshots, then retries later
# (the periodic purge) instead of stalling the erasing request.
_CHECKPOINT_WAIT_MS: Final = 200
_CHECKPOINT_TRIES: Final = 3
_WAL_SIZE_LIMIT: Final = 1 << 20  # a reset WAL is cut back to this many bytes
_AUTO_VACUUM_INCREMENTAL: Final = 2


class _Unset:
    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()
"""Marks an `update` argument as "leave unchanged" (None can be a meaningful value later)."""


@dataclass
class Entity:
    uuid: str
    instance: str
    model: str  # canonical local model name: the search scope
    model_name: str  # the name the creating request used, echoed back (api.md §2.3)
    collection: str
    key: str
    metadata: list[dict[str, object]]
    created_at: datetime  # tz-aware UTC, second precision
    updated_at: datetime
    expires_at: datetime
    vector: np.ndarray | None = None  # float32 (D,), L2-normalised; only when asked for
    pack_fingerprint: str = ""


@dataclass(frozen=True)
class Change:
    """One outbox row. `payload` holds the entity's state after the change (never images)."""

    change_id: str
    seq: int
    op: str  # create | update | delete | expire
    entity_uuid: str
    instance: str
    at: datetime  # tz-aware UTC, millisecond precision
    payload: dict[str, Any] = field(default_factory=dict)
    #: applied from the fleet hub (`sync_apply`): no outbox row (seq 0), not pushed back
    remote: bool = False


@dataclass(frozen=True)
class NewEntity:
    """The arguments of one `create`, for `create_many`."""

    instance: str
    model: str
    model_name: str
    vector: np.ndarray
    collection: str = ""
    key: str = ""
    metadata: list[dict[str, object]] = field(default_factory=list)
    ttl: int = -1


@dataclass
class SyncRow:
    """One entity row as fleet sync reads and writes it (stamps: `Hlc.encode` text)."""

    uuid: str
    instance: str
    model: str
    model_name: str
    collection: str
    key: str
    metadata: str  # JSON text
    created_at: int
    updated_at: int
    expires_at: int
    pack_fingerprint: str
    vector: np.ndarray  # float32, L2-normalised
    v_meta: str
    v_vec: str
    v_exp: str


@dataclass(frozen=True)
class SyncTombstone:
    """A deleted uuid and the stamp of its delete (kept for ever; holds no personal data)."""

    uuid: str
    instance: str
    stamp: str


_SyncItems = list[SyncRow | SyncTombstone]  # `list` is a method name inside EntityStore
_Uuids = list[str]

SyncResolve = Callable[[str, "SyncRow | SyncTombstone | None"], "SyncRow | SyncTombstone | None"]


_COLUMNS: Final = (
    "uuid, instance, model, model_name, collection, key, metadata, created_at, updated_at, "
    "expires_at, pack_fingerprint"
)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _remote_change(op: str, row: SyncRow, now: datetime) -> Change:
    """A change applied from the hub, shaped as a local one for listeners (no vector)."""
    payload: dict[str, Any] = {
        "uuid": row.uuid,
        "instance": row.instance,
        "model": row.model,
        "model_name": row.model_name,
    }
    if op != "delete":
        payload |= {
            "collection": row.collection,
            "key": row.key,
            "metadata": json.loads(row.metadata),
            "created_at": iso_utc(_utc(row.created_at)),
            "updated_at": iso_utc(_utc(row.updated_at)),
            "expires_at": iso_utc(_utc(row.expires_at)),
        }
    change_id = str(_uuid.uuid4())
    return Change(change_id, 0, op, row.uuid, row.instance, now, payload, remote=True)


def _epoch_s(t: datetime) -> int:
    """Whole unix seconds: the resolution of every stored timestamp but the outbox's."""
    return int(t.timestamp() // 1)


def _vector(blob: bytes) -> np.ndarray:
    """A stored vector as a native float32 copy (the file is little-endian)."""
    return np.frombuffer(blob, dtype=_VECTOR_DTYPE).astype(np.float32)


def normalise_vector(vector: np.ndarray) -> np.ndarray:
    """Validate a feature vector and return it as an L2-normalised float32 copy."""
    v = np.array(vector, dtype=np.float32).reshape(-1) if np.ndim(vector) == 1 else None
    if v is None or v.size == 0:
        raise ValueError("vector must be a non-empty 1-D array")
    if not np.all(np.isfinite(v)):
        raise ValueError("vector must be finite")
    norm = float(np.linalg.norm(v.astype(np.float64)))
    if norm == 0.0 or not np.isfinite(norm):
        raise ValueError("vector must have a non-zero norm")
    return (v / norm).astype(np.float32)


def _check_ttl(ttl: int) -> None:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not (ttl == -1 or ttl >= 1):
        raise ValueError("ttl must be -1 (never) or >= 1 seconds")


def _expiry(now_s: int, ttl: int) -> int:
    # Capped at "never" so absurd ttls still give a representable date.
    return NEVER_EXPIRES if ttl == -1 else min(now_s + ttl, NEVER_EXPIRES)


def _vector_b64(vec: np.ndarray) -> str:
    return base64.b64encode(vec.astype(_VECTOR_DTYPE).tobytes()).decode("ascii")


class EntityStore:
    """Thread-safe store of face entities for a pool of request threads.

    Durability: WAL with `synchronous=FULL`, so the WAL is fsync'ed at every commit. The API
    answers 2xx only after `create`/`update`/`delete` return, and in WAL mode `NORMAL` would
    let a power cut roll back commits already acknowledged to a client; `FULL` makes every
    acknowledged write survive power loss, not just a process crash, at ~1 fsync per write,
    which an enrolment rate of a few per second easily affords.

    Concurrency: one writer connection behind a lock (SQLite admits one writer anyway);
    reads use one connection per thread, which WAL lets run alongside the writer.

    Vectors are stamped with the model pack's fingerprint. Rows from another pack (the box
    was upgraded to new weights) are kept and listed but not searched, because their
    vectors are not comparable with the new model's; `stale_count` says how many, and
    re-enrolling (an update with a new vector) re-stamps a row.

    Change-log retention: `change_log_keep_s` / `change_log_keep_rows` (None = unbounded)
    drop change rows older / beyond that at every write. Leave both None when a sync worker
    owns the log and prunes what the hub acknowledged (`prune_changes`).
    """

    def __init__(
        self,
        path: Path,
        *,
        pack_fingerprint: str,
        clock: Callable[[], datetime] | None = None,
        index: VectorIndex | None = None,
        change_log_keep_s: float | None = None,
        change_log_keep_rows: int | None = None,
    ) -> None:
        if change_log_keep_s is not None and change_log_keep_s < 0:
            raise ValueError("change_log_keep_s must be >= 0 or None")
        if change_log_keep_rows is not None and change_log_keep_rows < 0:
            raise ValueError("change_log_keep_rows must be >= 0 or None")
        self.path = Path(path)
        self._keep_ms = None if change_log_keep_s is None else int(change_log_keep_s * 1000)
        self._keep_rows = change_log_keep_rows
        self._scrub_pending = False
        self.pack_fingerprint = pack_fingerprint
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._ids = UuidV7Generator()
        self._index: VectorIndex = index if index is not None else ExactIndex()
        self._dims: dict[tuple[str, str], int] = {}
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._listeners: list[Callable[[Change], None]] = []
        self._closed = False

        private_dir(self.path.parent)
        private_database(self.path)
        self._writer = self._connect()
        self.stale_count = 0
        try:
            self._configure_writer()
            migrate(self._writer)
            self.hlc = self._open_clock()
            self._convert_to_incremental_vacuum()
            self._reclaim(scrub=True)  # a file from an older release may hold erased rows
            self._load_index()
        except BaseException:
            self.close()
            raise

    def _open_clock(self) -> HybridClock:
        """This file's replica clock, never behind a stamp it already wrote or received."""
        w = self._writer
        origin = str(w.execute("SELECT value FROM sync_state WHERE name = 'origin'").fetchone()[0])
        clock = HybridClock(origin)
        newest = w.execute(
            "SELECT max(max(v_meta), max(v_vec), max(v_exp)) FROM entities"
        ).fetchone()[0]
        dead = w.execute("SELECT max(stamp) FROM tombstones").fetchone()[0]
        for text in (newest, dead):
            if text:
                clock.seed(Hlc.decode(str(text)))
        return clock

    # Connections --------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        return conn

    def _configure_writer(self) -> None:
        w = self._writer
        # Zero what a delete frees, so an erased face is not left in free space.
        if int(w.execute("PRAGMA secure_delete=ON").fetchone()[0]) != 1:
            raise RuntimeError(
                "this SQLite build cannot overwrite deleted data (PRAGMA secure_delete); "
                "install a Python whose sqlite3 supports it"
            )
        w.execute("PRAGMA temp_store=MEMORY")  # VACUUM's copy never touches a temp file
        # Only takes effect on a new, empty file; older files are converted once below.
        w.execute(f"PRAGMA auto_vacuum={_AUTO_VACUUM_INCREMENTAL}")
        mode = w.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL mode for {self.path} (got {mode!r})")
        w.execute("PRAGMA synchronous=FULL")
        w.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")

    def _convert_to_incremental_vacuum(self) -> None:
        """Let a file written by an older release give freed pages back to the filesystem."""
        w = self._writer
        if int(w.execute("PRAGMA auto_vacuum").fetchone()[0]) == _AUTO_VACUUM_INCREMENTAL:
            return
        log.info("compacting %s once so that erased data also shrinks the file", self.path)
        w.execute(f"PRAGMA auto_vacuum={_AUTO_VACUUM_INCREMENTAL}")
        w.execute("VACUUM")

    def _checkpoint(self, tries: int) -> bool:
        """Copy the WAL into the file and truncate it; False if a reader kept it busy."""
        w = self._writer
        w.execute(f"PRAGMA busy_timeout={_CHECKPOINT_WAIT_MS}")
        try:
            for attempt in range(tries):
                if attempt:
                    time.sleep(_CHECKPOINT_WAIT_MS / 1000)
                try:
                    busy = int(w.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
                except sqlite3.OperationalError as e:  # locked by another process' writer
                    log.debug("checkpoint of %s: %s", self.path, e)
                    busy = 1
                if not busy:
                    return True
        finally:
            w.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        return False

    def _reclaim(self, *, scrub: bool, truncate_wal: bool = False) -> None:
        """After a write: give free pages back; after an erase also empty the WAL.

        The caller holds `_write_lock` (or is the constructor). A checkpoint that readers of
        an old snapshot block is retried at the next erase or `purge_expired`.
        """
        w = self._writer
        if int(w.execute("PRAGMA freelist_count").fetchone()[0]):
            # executescript steps the pragma to the end; execute() would free one page.
            w.executescript("PRAGMA incremental_vacuum")
        must = scrub or self._scrub_pending
        if not (must or truncate_wal):
            return
        done = self._checkpoint(_CHECKPOINT_TRIES if must else 1)
        if not must:
            return
        self._scrub_pending = not done
        if self._scrub_pending:
            log.warning(
                "erased rows of %s are still in its WAL: a reader holds an old snapshot; "
                "the next purge retries the checkpoint",
                self.path,
            )

    @property
    def erase_pending(self) -> bool:
        """True while erased data may still sit in the WAL (a checkpoint was blocked)."""
        return self._scrub_pending

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the entity store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, so multi-statement reads see a single snapshot."""
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT on the writer; caller holds `_write_lock`."""
        if self._closed:
            raise RuntimeError("the entity store is closed")
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            with self._readers_lock:
                for conn in self._readers:
                    conn.close()
                self._readers.clear()
            self._writer.close()

    def __enter__(self) -> EntityStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Time ---------------------------------------------------------------------------------
    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the store clock must return tz-aware datetimes")
        return now

    def _now_s(self) -> int:
        return _epoch_s(self._now())

    # Index --------------------------------------------------------------------------------
    def _load_index(self) -> None:
        """Rebuild the index from the file, streaming rows so start-up memory stays flat."""
        now_s = self._now_s()
        live = "pack_fingerprint = ? AND expires_at > ?"
        with self._read() as conn:
            groups = conn.execute(
                f"SELECT instance, model, dim, count(*) AS n FROM entities WHERE {live} "
                "GROUP BY instance, model, dim ORDER BY n DESC",
                (self.pack_fingerprint, now_s),
            ).fetchall()
            for instance, model, dim, n in groups:
                if (instance, model) not in self._dims:  # the most common dimension wins
                    self._dims[(instance, model)] = dim
                    self._index.reserve(instance, model, dim, n)
            self.stale_count = int(
                conn.execute(
                    "SELECT count(*) FROM entities WHERE pack_fingerprint != ?",
                    (self.pack_fingerprint,),
                ).fetchone()[0]
            )
            cur = conn.execute(
                "SELECT uuid, instance, model, collection, key, expires_at, dim, vector "
                f"FROM entities WHERE {live}",
                (self.pack_fingerprint, now_s),
            )
            while rows := cur.fetchmany(_LOAD_CHUNK):
                entries = []
                for uuid, instance, model, collection, key, expires_at, dim, blob in rows:
                    if self._dims[(instance, model)] != dim:
                        self.stale_count += 1
                        continue
                    vec = np.frombuffer(blob, dtype=_VECTOR_DTYPE)
                    entries.append(
                        IndexEntry(uuid, instance, model, collection, key, expires_at, vec)
                    )
                self._index.add_many(entries)
        if self.stale_count:
            log.warning(
                "%d stored vectors come from another model pack than %s (or disagree with "
                "its dimension); they are listed but not searched until re-enrolled",
                self.stale_count,
                self.pack_fingerprint,
            )

    def _check_dim(self, instance: str, model: str, vec: np.ndarray) -> None:
        dim = self._dims.get((instance, model))
        if dim is not None and dim != vec.shape[0]:
            raise ValueError(
                f"vector dimension {vec.shape[0]} differs from {dim} stored for model {model!r}"
            )

    # Rows ---------------------------------------------------------------------------------
    @staticmethod
    def _entity(row: Sequence[Any], vector: bytes | None = None) -> Entity:
        return Entity(
            uuid=row[0],
            instance=row[1],
            model=row[2],
            model_name=row[3],
            collection=row[4],
            key=row[5],
            metadata=json.loads(row[6]),
            created_at=_utc(row[7]),
            updated_at=_utc(row[8]),
            expires_at=_utc(row[9]),
            pack_fingerprint=row[10],
            vector=None if vector is None else _vector(vector),
        )

    @staticmethod
    def _state(e: Entity, vec: np.ndarray, stamps: tuple[str, str, str]) -> dict[str, Any]:
        """The change payload: everything a replica needs to rebuild the row, no image data."""
        return {
            "stamps": {"meta": stamps[0], "vec": stamps[1], "exp": stamps[2]},
            "uuid": e.uuid,
            "instance": e.instance,
            "model": e.model,
            "model_name": e.model_name,
            "collection": e.collection,
            "key": e.key,
            "metadata": e.metadata,
            "created_at": iso_utc(e.created_at),
            "updated_at": iso_utc(e.updated_at),
            "expires_at": iso_utc(e.expires_at),
            "pack_fingerprint": e.pack_fingerprint,
            "dim": int(vec.shape[0]),
            "vector": _vector_b64(vec),
        }

    def _log_change(
        self,
        conn: sqlite3.Connection,
        op: str,
        uuid: str,
        instance: str,
        now: datetime,
        payload: dict[str, Any],
    ) -> Change:
        change_id = str(_uuid.uuid4())
        at_ms = int(now.timestamp() * 1000)
        cur = conn.execute(
            "INSERT INTO changes (change_id, op, entity_uuid, instance, at_ms, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (change_id, op, uuid, instance, at_ms, json.dumps(payload, separators=(",", ":"))),
        )
        at = _utc(at_ms / 1000)
        return Change(change_id, int(cur.lastrowid or 0), op, uuid, instance, at, payload)

    @staticmethod
    def _forget(conn: sqlite3.Connection, uuid: str) -> None:
        """Drop the entity's earlier change rows: the new row supersedes them, and an
        erased entity's vector and metadata must not survive in the log."""
        conn.execute("DELETE FROM changes WHERE entity_uuid = ?", (uuid,))

    def _prune_log(self, conn: sqlite3.Connection, now: datetime) -> None:
        """Apply the retention limits (none when a sync worker owns the log)."""
        if self._keep_ms is not None:
            cutoff = int(now.timestamp() * 1000) - self._keep_ms
            conn.execute("DELETE FROM changes WHERE at_ms < ?", (cutoff,))
        if self._keep_rows is not None:
            row = conn.execute(
                "SELECT seq FROM changes ORDER BY seq DESC LIMIT 1 OFFSET ?", (self._keep_rows,)
            ).fetchone()
            if row is not None:
                conn.execute("DELETE FROM changes WHERE seq <= ?", (row[0],))

    def _notify(self, changes: Sequence[Change]) -> None:
        for change in changes:
            for fn in list(self._listeners):
                try:
                    fn(change)
                except Exception:
                    log.exception("entity change listener %r failed", fn)

    # Writes -------------------------------------------------------------------------------
    def create(
        self,
        *,
        instance: str,
        model: str,
        model_name: str,
        collection: str,
        key: str,
        metadata: list[dict[str, object]],
        ttl: int,
        vector: np.ndarray,
    ) -> Entity:
        new = NewEntity(instance, model, model_name, vector, collection, key, metadata, ttl)
        return self.create_many([new])[0]

    def create_many(self, items: Sequence[NewEntity]) -> list[Entity]:
        """Create several entities in ONE transaction (bulk enrolment, imports, benchmarks)."""
        prepared = []
        for it in items:
            _check_ttl(it.ttl)
            if not it.instance or not it.model:
                raise ValueError("instance and model must be non-empty")
            vec = normalise_vector(it.vector)
            meta = json.dumps(it.metadata, separators=(",", ":"), allow_nan=False)
            prepared.append((it, vec, meta))
        created: list[tuple[Entity, np.ndarray]] = []
        changes: list[Change] = []
        with self._write_lock:
            batch_dims: dict[tuple[str, str], int] = {}
            for it, vec, _ in prepared:  # against stored rows AND earlier rows of this batch
                self._check_dim(it.instance, it.model, vec)
                want = batch_dims.setdefault((it.instance, it.model), vec.shape[0])
                if want != vec.shape[0]:
                    raise ValueError(f"vector dimensions {want} and {vec.shape[0]} in one batch")
            now = self._now()
            now_s = _epoch_s(now)
            now_ms = int(now.timestamp() * 1000)
            with self._transaction() as conn:
                for it, vec, meta in prepared:
                    uuid = self._ids.next(now_ms)
                    expires = _expiry(now_s, it.ttl)
                    stamp = self.hlc.now().encode()
                    conn.execute(
                        f"INSERT INTO entities ({_COLUMNS}, dim, vector, v_meta, v_vec, v_exp) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            uuid,
                            it.instance,
                            it.model,
                            it.model_name,
                            it.collection,
                            it.key,
                            meta,
                            now_s,
                            now_s,
                            expires,
                            self.pack_fingerprint,
                            int(vec.shape[0]),
                            vec.astype(_VECTOR_DTYPE).tobytes(),
                            stamp,
                            stamp,
                            stamp,
                        ),
                    )
                    ent = Entity(
                        uuid=uuid,
                        instance=it.instance,
                        model=it.model,
                        model_name=it.model_name,
                        collection=it.collection,
                        key=it.key,
                        metadata=json.loads(meta),
                        created_at=_utc(now_s),
                        updated_at=_utc(now_s),
                        expires_at=_utc(expires),
                        pack_fingerprint=self.pack_fingerprint,
                    )
                    changes.append(
                        self._log_change(
                            conn,
                            "create",
                            uuid,
                            it.instance,
                            now,
                            self._state(ent, vec, (stamp, stamp, stamp)),
                        )
                    )
                    created.append((ent, vec))
                self._prune_log(conn, now)
            self._reclaim(scrub=False)
            # Committed: now (and only now) the index may show the rows.
            entries = []
            for ent, vec in created:
                self._dims.setdefault((ent.instance, ent.model), vec.shape[0])
                entries.append(
                    IndexEntry(
                        ent.uuid, ent.instance, ent.model, ent.collection, ent.key,
                        int(ent.expires_at.timestamp()), vec,
                    )
                )  # fmt: skip
            self._index.add_many(entries)
        self._notify(changes)
        return [ent for ent, _ in created]

    def update(
        self,
        instance: str,
        uuid: str,
        *,
        collection: str | _Unset = UNSET,
        key: str | _Unset = UNSET,
        metadata: list[dict[str, object]] | _Unset = UNSET,
        ttl: int | _Unset = UNSET,
        vector: np.ndarray | _Unset = UNSET,
        model_name: str | _Unset = UNSET,
    ) -> Entity | None:
        """Change the given fields; None if the entity is unknown, expired or not `instance`'s.

        `updated_at` always advances to now; a given `ttl` restarts from now.
        """
        if not isinstance(ttl, _Unset):
            _check_ttl(ttl)
        vec = None if isinstance(vector, _Unset) else normalise_vector(vector)
        meta = (
            None
            if isinstance(metadata, _Unset)
            else json.dumps(metadata, separators=(",", ":"), allow_nan=False)
        )
        with self._write_lock:
            now = self._now()
            now_s = _epoch_s(now)
            with self._transaction() as conn:
                row = conn.execute(
                    f"SELECT {_COLUMNS}, vector, v_meta, v_vec, v_exp FROM entities "
                    "WHERE uuid = ? AND instance = ? AND expires_at > ?",
                    (uuid, instance, now_s),
                ).fetchone()
                if row is None:
                    return None
                ent = self._entity(row[:11])
                old_vec = _vector(row[11])
                # Only the field groups this update touches get a new stamp (per-group LWW).
                stamp = self.hlc.now().encode()
                v_meta, v_vec, v_exp = (
                    stamp if touched else str(old)
                    for touched, old in zip(
                        (
                            not all(isinstance(a, _Unset) for a in (collection, key, metadata)),
                            not (isinstance(vector, _Unset) and isinstance(model_name, _Unset)),
                            not isinstance(ttl, _Unset),
                        ),
                        row[12:15],
                        strict=True,
                    )
                )
                if vec is not None:
                    if vec.shape[0] != old_vec.shape[0] and ent.pack_fingerprint == (
                        self.pack_fingerprint
                    ):
                        raise ValueError(
                            f"vector dimension {vec.shape[0]} differs from {old_vec.shape[0]}"
                        )
                    self._check_dim(instance, ent.model, vec)
                    ent.pack_fingerprint = self.pack_fingerprint
                if not isinstance(collection, _Unset):
                    ent.collection = collection
                if not isinstance(key, _Unset):
                    ent.key = key
                if meta is not None:
                    ent.metadata = json.loads(meta)
                if not isinstance(model_name, _Unset):
                    ent.model_name = model_name
                if not isinstance(ttl, _Unset):
                    ent.expires_at = _utc(_expiry(now_s, ttl))
                ent.updated_at = _utc(now_s)
                new_vec = old_vec if vec is None else vec
                conn.execute(
                    "UPDATE entities SET collection = ?, key = ?, metadata = ?, model_name = ?, "
                    "updated_at = ?, expires_at = ?, pack_fingerprint = ?, dim = ?, vector = ?, "
                    "v_meta = ?, v_vec = ?, v_exp = ? WHERE uuid = ?",
                    (
                        ent.collection,
                        ent.key,
                        json.dumps(ent.metadata, separators=(",", ":")),
                        ent.model_name,
                        now_s,
                        int(ent.expires_at.timestamp()),
                        ent.pack_fingerprint,
                        int(new_vec.shape[0]),
                        new_vec.astype(_VECTOR_DTYPE).tobytes(),
                        v_meta,
                        v_vec,
                        v_exp,
                        uuid,
                    ),
                )
                self._forget(conn, uuid)
                state = self._state(ent, new_vec, (v_meta, v_vec, v_exp))
                change = self._log_change(conn, "update", uuid, instance, now, state)
                self._prune_log(conn, now)
            self._reclaim(scrub=False)
            expires_s = int(ent.expires_at.timestamp())
            in_index = self._index.update(
                uuid,
                collection=ent.collection,
                key=ent.key,
                expires_at=expires_s,
                vector=vec,
            )
            if not in_index and ent.pack_fingerprint == self.pack_fingerprint:
                # A re-enrolled stale row joins the searchable set.
                self._dims.setdefault((instance, ent.model), new_vec.shape[0])
                self._index.add(
                    IndexEntry(
                        uuid, instance, ent.model, ent.collection, ent.key, expires_s, new_vec
                    )
                )
        self._notify([change])
        return ent

    def delete(self, instance: str, uuid: str) -> bool:
        """False if the entity is unknown, expired or belongs to another instance."""
        with self._write_lock:
            now = self._now()
            now_s = _epoch_s(now)
            with self._transaction() as conn:
                row = conn.execute(
                    "SELECT model FROM entities WHERE uuid = ? AND instance = ? AND expires_at > ?",
                    (uuid, instance, now_s),
                ).fetchone()
                if row is None:
                    return False
                conn.execute("DELETE FROM entities WHERE uuid = ?", (uuid,))
                self._forget(conn, uuid)
                # The tombstone (a uuid and a stamp, no personal data) keeps any replica's
                # stale copy from bringing the face back.
                stamp = self.hlc.now().encode()
                conn.execute(
                    "INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?)", (uuid, instance, stamp)
                )
                payload = {"uuid": uuid, "model": row[0], "deleted": stamp}
                change = self._log_change(conn, "delete", uuid, instance, now, payload)
                self._prune_log(conn, now)
            self._index.remove(uuid)
            self._reclaim(scrub=True)
        self._notify([change])
        return True

    def purge_expired(self) -> int:
        """Physically delete expired rows (each with an 'expire' change); returns how many.

        Works in batches so that a large purge never holds the write lock for long. Also
        empties the WAL, retrying an erase checkpoint that readers blocked (`erase_pending`).
        """
        total = 0
        while True:
            changes: list[Change] = []
            with self._write_lock:
                now = self._now()
                now_s = _epoch_s(now)
                with self._transaction() as conn:
                    rows = conn.execute(
                        "SELECT uuid, instance, model, expires_at FROM entities "
                        "WHERE expires_at <= ? LIMIT ?",
                        (now_s, _PURGE_BATCH),
                    ).fetchall()
                    for uuid, instance, model, expires_at in rows:
                        conn.execute("DELETE FROM entities WHERE uuid = ?", (uuid,))
                        self._forget(conn, uuid)
                        expires = iso_utc(_utc(expires_at))
                        payload = {"uuid": uuid, "model": model, "expires_at": expires}
                        changes.append(
                            self._log_change(conn, "expire", uuid, instance, now, payload)
                        )
                    if rows:
                        self._prune_log(conn, now)
                for uuid, *_ in rows:
                    self._index.remove(uuid)
                # The periodic purge also leaves the WAL empty at rest (file size, privacy).
                self._reclaim(scrub=bool(rows), truncate_wal=len(rows) < _PURGE_BATCH)
            self._notify(changes)
            total += len(rows)
            if len(rows) < _PURGE_BATCH:
                return total

    # Reads --------------------------------------------------------------------------------
    def get(self, instance: str, uuid: str, *, with_vector: bool = False) -> Entity | None:
        """The live entity, or None if unknown, expired or another instance's."""
        cols = f"{_COLUMNS}, vector" if with_vector else _COLUMNS
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {cols} FROM entities WHERE uuid = ? AND instance = ? AND expires_at > ?",
                (uuid, instance, self._now_s()),
            ).fetchone()
        if row is None:
            return None
        return self._entity(row[:11], row[11] if with_vector else None)

    def list(
        self,
        instance: str,
        *,
        model: str | None = None,
        collection: str | None = None,
        key: str | None = None,
        limit: int = 20,
        after: str = "",
    ) -> tuple[int, list[Entity]]:
        """(total live entities matching the filters, the page after `after` by ascending uuid).

        `total` ignores the cursor: it is the size of the whole filtered set.
        """
        if limit < 0:
            raise ValueError("limit must be >= 0")
        where = ["instance = ?", "expires_at > ?"]
        args: list[Any] = [instance, self._now_s()]
        for col, value in (("model", model), ("collection", collection), ("key", key)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        cond = " AND ".join(where)
        with self._read() as conn:
            count_sql = f"SELECT count(*) FROM entities WHERE {cond}"
            total = int(conn.execute(count_sql, args).fetchone()[0])
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM entities WHERE {cond} AND uuid > ? ORDER BY uuid LIMIT ?",
                [*args, after, limit],
            ).fetchall()
        return total, [self._entity(r) for r in rows]

    def search(
        self,
        instance: str,
        model: str,
        vector: np.ndarray,
        *,
        collection: str | None = None,
        key: str | None = None,
        limit: int = 10,
    ) -> builtins.list[tuple[Entity, float]]:
        """Best `limit` live entities of (instance, model) by cosine to `vector`, best first."""
        started = time.perf_counter()
        query = normalise_vector(vector)
        now_s = self._now_s()
        hits = self._index.search(
            instance, model, query, now=now_s, collection=collection, key=key, limit=limit
        )
        found: dict[str, Entity] = {}
        # The fetch re-checks every filter on the real row: the index may compare hashes.
        cond = "instance = ? AND model = ? AND expires_at > ?"
        args: list[Any] = [instance, model, now_s]
        for col, value in (("collection", collection), ("key", key)):
            if value is not None:
                cond += f" AND {col} = ?"
                args.append(value)
        with self._read() as conn:
            for i in range(0, len(hits), _FETCH_CHUNK):
                chunk = [u for u, _ in hits[i : i + _FETCH_CHUNK]]
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(
                    f"SELECT {_COLUMNS} FROM entities WHERE uuid IN ({marks}) AND {cond}",
                    [*chunk, *args],
                ).fetchall():
                    found[row[0]] = self._entity(row)
        # A hit deleted between the scan and the fetch simply drops out.
        result = [(found[u], score) for u, score in hits if u in found]
        SEARCH_SECONDS.observe(time.perf_counter() - started)
        return result

    def changes_since(self, seq: int, limit: int = 1000) -> builtins.list[Change]:
        """Outbox rows with seq > `seq`, oldest first (the sync worker's cursor).

        The log is compacted: only an entity's latest change is kept (a full state, or a
        delete/expire tombstone without vector or metadata), so a consumer that fell behind
        sees the newest state directly. Listeners (`add_listener`) still get every change.
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT change_id, seq, op, entity_uuid, instance, at_ms, payload FROM changes "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [
            Change(
                cid,
                s,
                op,
                uuid,
                inst,
                _utc(at_ms / 1000),
                json.loads(payload),
            )
            for cid, s, op, uuid, inst, at_ms, payload in rows
        ]

    def prune_changes(self, through_seq: int) -> int:
        """Drop outbox rows with seq <= `through_seq` (delivered upstream); returns how many.

        seq comes from AUTOINCREMENT, so pruned numbers are never handed out again and a
        sync cursor stays valid across prunes and restarts.
        """
        with self._write_lock:
            with self._transaction() as conn:
                n = conn.execute("DELETE FROM changes WHERE seq <= ?", (through_seq,)).rowcount
            self._reclaim(scrub=False)
            return n

    # Fleet sync ---------------------------------------------------------------------------
    _SYNC_COLS: Final = f"{_COLUMNS}, vector, v_meta, v_vec, v_exp"  # the SyncRow field order

    @staticmethod
    def _sync_row(r: Sequence[Any]) -> SyncRow:
        return SyncRow(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
            _vector(r[11]), r[12], r[13], r[14],
        )  # fmt: skip

    def sync_state(self) -> dict[str, str]:
        """The replica's sync bookkeeping (origin, cursor, hub epoch, ...)."""
        with self._read() as conn:
            return {str(k): str(v) for k, v in conn.execute("SELECT name, value FROM sync_state")}

    def set_sync_state(self, values: Mapping[str, str]) -> None:
        with self._write_lock, self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO sync_state VALUES (?, ?)", list(values.items())
            )

    def sync_export(self, after_uuid: str, limit: int) -> _SyncItems:
        """Rows and tombstones with uuid > `after_uuid`, in uuid order (a full re-push)."""
        with self._read() as conn:
            rows: _SyncItems = [
                self._sync_row(r)
                for r in conn.execute(
                    f"SELECT {self._SYNC_COLS} FROM entities WHERE uuid > ? ORDER BY uuid LIMIT ?",
                    (after_uuid, limit),
                )
            ]
            rows += [
                SyncTombstone(*r)
                for r in conn.execute(
                    "SELECT uuid, instance, stamp FROM tombstones WHERE uuid > ? ORDER BY uuid "
                    "LIMIT ?",
                    (after_uuid, limit),
                )
            ]
        rows.sort(key=lambda r: r.uuid)
        return rows[:limit]

    def sync_load(self, uuids: Sequence[str]) -> dict[str, SyncRow | SyncTombstone]:
        """The current rows or tombstones of `uuids` (unknown and purged ones are absent)."""
        out: dict[str, SyncRow | SyncTombstone] = {}
        with self._read() as conn:
            for i in range(0, len(uuids), _FETCH_CHUNK):
                chunk = list(uuids[i : i + _FETCH_CHUNK])
                marks = ",".join("?" * len(chunk))
                for t in conn.execute(
                    f"SELECT uuid, instance, stamp FROM tombstones WHERE uuid IN ({marks})", chunk
                ):
                    out[t[0]] = SyncTombstone(*t)
                for r in conn.execute(
                    f"SELECT {self._SYNC_COLS} FROM entities WHERE uuid IN ({marks})", chunk
                ):
                    out[r[0]] = self._sync_row(r)
        return out

    def change_backlog(self, after_seq: int) -> tuple[int, datetime | None]:
        """(outbox rows after `after_seq`, the time of the oldest of them): sync's pending."""
        with self._read() as conn:
            n, oldest = conn.execute(
                "SELECT count(*), min(at_ms) FROM changes WHERE seq > ?", (after_seq,)
            ).fetchone()
        return int(n), None if oldest is None else _utc(int(oldest) / 1000)

    def sync_apply(
        self, uuids: Sequence[str], resolve: SyncResolve, state: Mapping[str, str]
    ) -> int:
        """Apply remote states and save `state` (the new cursor) in ONE transaction.

        For each uuid, `resolve(uuid, local)` gets the local row, tombstone or None and
        returns what to store (None: nothing changes). Nothing is written to the outbox:
        a change that came from the hub is not sent back (no echo). A tombstone erases the
        row and its change rows as a local delete does. Returns how many uuids changed.
        """
        rows: _SyncItems = []
        removed: _Uuids = []
        notes: list[Change] = []  # for listeners (MQTT events/entity), as local writes get
        now = datetime.now(timezone.utc)
        with self._write_lock:
            with self._transaction() as conn:
                for uuid in uuids:
                    got = conn.execute(
                        f"SELECT {self._SYNC_COLS} FROM entities WHERE uuid = ?", (uuid,)
                    ).fetchone()
                    local: SyncRow | SyncTombstone | None = None
                    if got is not None:
                        local = self._sync_row(got)
                    else:
                        t = conn.execute(
                            "SELECT uuid, instance, stamp FROM tombstones WHERE uuid = ?", (uuid,)
                        ).fetchone()
                        local = None if t is None else SyncTombstone(*t)
                    out = resolve(uuid, local)
                    if out is None:
                        continue
                    if isinstance(out, SyncTombstone):
                        conn.execute("DELETE FROM entities WHERE uuid = ?", (uuid,))
                        self._forget(conn, uuid)
                        conn.execute(
                            "INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?)",
                            (out.uuid, out.instance, out.stamp),
                        )
                        removed.append(uuid)
                        if isinstance(local, SyncRow):  # an entity this replica held
                            notes.append(_remote_change("delete", local, now))
                        continue
                    # Stored exactly as received (fp16 values, unit norm within rounding):
                    # renormalising would make this replica describe it differently.
                    vec = np.asarray(out.vector, dtype=np.float32).reshape(-1)
                    if vec.size == 0 or not np.all(np.isfinite(vec)):
                        raise ValueError(f"remote vector of {uuid} is empty or not finite")
                    conn.execute(
                        f"INSERT OR REPLACE INTO entities ({_COLUMNS}, dim, vector, v_meta, "
                        "v_vec, v_exp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (out.uuid, out.instance, out.model, out.model_name, out.collection,
                         out.key, out.metadata, out.created_at, out.updated_at, out.expires_at,
                         out.pack_fingerprint, int(vec.shape[0]),
                         vec.astype(_VECTOR_DTYPE).tobytes(), out.v_meta, out.v_vec, out.v_exp),
                    )  # fmt: skip
                    rows.append(replace(out, vector=vec))
                    op = "update" if isinstance(local, SyncRow) else "create"
                    notes.append(_remote_change(op, out, now))
                conn.executemany(
                    "INSERT OR REPLACE INTO sync_state VALUES (?, ?)", list(state.items())
                )
            self._reclaim(scrub=bool(removed))
            for uuid in removed:
                self._index.remove(uuid)
            for r in rows:
                assert isinstance(r, SyncRow)
                self._index.remove(r.uuid)
                dim = self._dims.setdefault((r.instance, r.model), int(r.vector.shape[0]))
                if r.pack_fingerprint == self.pack_fingerprint and dim == r.vector.shape[0]:
                    self._index.add(
                        IndexEntry(r.uuid, r.instance, r.model, r.collection, r.key,
                                   r.expires_at, r.vector)
                    )  # fmt: skip
        self._notify(notes)
        return len(rows) + len(removed)

    def add_listener(self, fn: Callable[[Change], None]) -> None:
        """`fn(change)` runs after each commit, on the writing thread; keep it quick."""
        self._listeners.append(fn)

    # Introspection ------------------------------------------------------------------------
    @property
    def index(self) -> VectorIndex:
        return self._index

    def count(self, instance: str | None = None) -> int:
        """Live entities (of one instance, or all)."""
        sql = "SELECT count(*) FROM entities WHERE expires_at > ?"
        args: list[Any] = [self._now_s()]
        if instance is not None:
            sql += " AND instance = ?"
            args.append(instance)
        with self._read() as conn:
            return int(conn.execute(sql, args).fetchone()[0])
