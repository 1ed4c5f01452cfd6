"""In-memory vector index for 1:N face search.

`VectorIndex` is the seam: the store keeps an index in step with its committed rows and asks
it for the best uuids; it never depends on how the index finds them. `ExactIndex` is the
default: per (instance, model) one contiguous float32 matrix of L2-normalised rows, so a
search is a single matrix-vector product (cosine = dot product) plus `argpartition` for the
top k. On two cores that is a few milliseconds at 100k x 128-d, exact, with no build step and
no recall loss, which is why it is the default for an edge box.

Beyond ~100k faces per (instance, model) the linear scan grows past the latency budget; an
ANN index (hnswlib's HNSW or a FAISS IVF/HNSW index with inner-product metric) can implement
the same protocol: keep the uuid <-> label map and the per-row `expires_at`, `collection` and
`key` next to it and apply them as a filter (hnswlib `filter=`, FAISS `IDSelector`) or by
over-fetching and post-filtering.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from edge.store.blas import ONE_BLAS_THREAD


@dataclass(frozen=True)
class IndexEntry:
    """What the index needs of one stored entity: its vector and the fields search filters on."""

    uuid: str
    instance: str
    model: str
    collection: str
    key: str
    expires_at: int  # unix seconds; the row is invisible once now >= expires_at
    vector: np.ndarray  # float32 (D,), L2-normalised


@runtime_checkable
class VectorIndex(Protocol):
    def add(self, entry: IndexEntry) -> None:
        """Insert, or replace an entry with the same uuid."""

    def add_many(self, entries: Iterable[IndexEntry]) -> None:
        """Bulk insert (start-up load); same semantics as repeated `add`."""

    def reserve(self, instance: str, model: str, dim: int, count: int) -> None:
        """Hint that `count` more rows of (instance, model) follow; may be a no-op."""

    def update(
        self,
        uuid: str,
        *,
        collection: str | None = None,
        key: str | None = None,
        expires_at: int | None = None,
        vector: np.ndarray | None = None,
    ) -> bool:
        """Change the given fields of an entry (None = keep); False if the uuid is unknown."""

    def remove(self, uuid: str) -> bool:
        """Drop an entry; False if the uuid is unknown."""

    def search(
        self,
        instance: str,
        model: str,
        query: np.ndarray,
        *,
        now: int,
        collection: str | None = None,
        key: str | None = None,
        limit: int = 10,
    ) -> list[tuple[str, float]]:
        """Best `limit` (uuid, cosine) pairs, best first, among unexpired matching entries."""

    def __len__(self) -> int: ...


class _RWLock:
    """Many concurrent searches (numpy releases the GIL in the product) or one writer."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Partition:
    """The rows of one (instance, model): matrix + parallel filter arrays, rows 0..n-1 live."""

    _MIN_CAPACITY = 64

    def __init__(self, dim: int, capacity: int = _MIN_CAPACITY) -> None:
        self.dim = dim
        self.n = 0
        cap = max(capacity, self._MIN_CAPACITY)
        self.matrix = np.empty((cap, dim), dtype=np.float32)
        self.expires = np.empty(cap, dtype=np.int64)
        # Filter strings are kept as their 64-bit hash: one vectorised comparison per filter
        # and no per-row Python strings (a table of 100k distinct keys would cost ~10 MB).
        # A hash collision (odds ~2**-64 per row) can only let a wrong row through, never
        # drop a right one; the store re-checks the real strings when it fetches the rows.
        self.collection = np.empty(cap, dtype=np.int64)
        self.key = np.empty(cap, dtype=np.int64)
        self.uuids: list[str] = []
        self.row: dict[str, int] = {}

    @property
    def capacity(self) -> int:
        return self.matrix.shape[0]

    def nbytes(self) -> int:
        return self.matrix.nbytes + self.expires.nbytes + self.collection.nbytes + self.key.nbytes

    def _grow(self, need: int) -> None:
        cap = self.capacity
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        n = self.n
        for name in ("matrix", "expires", "collection", "key"):
            old = getattr(self, name)
            new = np.empty((cap, *old.shape[1:]), dtype=old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)

    def set_row(self, i: int, e: IndexEntry) -> None:
        self.matrix[i] = e.vector
        self.expires[i] = e.expires_at
        self.collection[i] = _h(e.collection)
        self.key[i] = _h(e.key)

    def append(self, e: IndexEntry) -> None:
        self._grow(self.n + 1)
        i = self.n
        self.set_row(i, e)
        self.uuids.append(e.uuid)
        self.row[e.uuid] = i
        self.n += 1

    def remove(self, uuid: str) -> None:
        """Swap-remove: the last row moves into the hole, keeping rows 0..n-1 contiguous."""
        i = self.row.pop(uuid)
        last = self.n - 1
        if i != last:
            moved = self.uuids[last]
            self.matrix[i] = self.matrix[last]
            self.expires[i] = self.expires[last]
            self.collection[i] = self.collection[last]
            self.key[i] = self.key[last]
            self.uuids[i] = moved
            self.row[moved] = i
        self.uuids.pop()
        self.n = last

    def search(
        self,
        query: np.ndarray,
        now: int,
        collection: str | None,
        key: str | None,
        limit: int,
        one_blas_thread: bool,
    ) -> list[tuple[str, float]]:
        n = self.n
        if n == 0 or limit <= 0:
            return []
        mask = self.expires[:n] > now
        if collection is not None:
            mask &= self.collection[:n] == _h(collection)
        if key is not None:
            mask &= self.key[:n] == _h(key)
        live = int(np.count_nonzero(mask))
        if live == 0:
            return []
        rows = None if live == n else np.flatnonzero(mask)
        with ONE_BLAS_THREAD() if one_blas_thread else nullcontext():
            if rows is None:
                scores = self.matrix[:n] @ query
            elif live * 4 < n:  # selective filter: gather the few rows instead of scanning all
                scores = self.matrix[rows] @ query
            else:
                scores = (self.matrix[:n] @ query)[rows]
        k = min(limit, scores.shape[0])
        if k < scores.shape[0]:
            top = np.argpartition(-scores, k - 1)[:k]
        else:
            top = np.arange(scores.shape[0])
        top = top[np.argsort(-scores[top], kind="stable")]
        picked = top if rows is None else rows[top]
        return [(self.uuids[int(r)], float(s)) for r, s in zip(picked, scores[top], strict=True)]


class ExactIndex:
    """Exact cosine search over contiguous float32 matrices, one per (instance, model).

    Thread-safe: searches share a read lock, mutations take it exclusively. Memory is
    capacity x (D x 4 + 24) bytes per partition (capacity doubles, so at most 2x the live
    rows, and pages never written are not resident). `one_blas_thread` (default on) runs
    the product on one BLAS thread; see `edge.store.blas` for why.
    """

    def __init__(self, *, one_blas_thread: bool = True) -> None:
        self.one_blas_thread = one_blas_thread
        self._lock = _RWLock()
        self._parts: dict[tuple[str, str], _Partition] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, uuid: object) -> bool:
        return isinstance(uuid, str) and self._find(uuid) is not None

    def _find(self, uuid: str) -> _Partition | None:
        # A box holds a handful of (instance, model) partitions; probing each one's dict is
        # cheaper than a second uuid -> partition map (~5 MB per 100k rows).
        for part in self._parts.values():
            if uuid in part.row:
                return part
        return None

    def nbytes(self) -> int:
        """Bytes allocated for the matrices and filter arrays (uuid strings not counted)."""
        with self._lock.read():
            return sum(p.nbytes() for p in self._parts.values())

    @staticmethod
    def _check(vector: np.ndarray) -> np.ndarray:
        v = np.asarray(vector, dtype=np.float32)
        if v.ndim != 1 or v.shape[0] == 0:
            raise ValueError("index vectors must be non-empty 1-D arrays")
        return v

    def _partition(self, instance: str, model: str, dim: int, capacity: int = 0) -> _Partition:
        part = self._parts.get((instance, model))
        if part is None:
            part = self._parts[(instance, model)] = _Partition(dim, capacity)
        elif part.dim != dim:
            raise ValueError(
                f"vector dimension {dim} differs from {part.dim} already indexed for "
                f"({instance!r}, {model!r})"
            )
        return part

    def _add_locked(self, e: IndexEntry) -> None:
        vec = self._check(e.vector)
        part = self._partition(e.instance, e.model, vec.shape[0])  # may refuse: before any change
        self._remove_locked(e.uuid)
        part.append(e if vec is e.vector else _with_vector(e, vec))
        self._count += 1

    def _remove_locked(self, uuid: str) -> bool:
        part = self._find(uuid)
        if part is None:
            return False
        part.remove(uuid)
        self._count -= 1
        return True

    def add(self, entry: IndexEntry) -> None:
        with self._lock.write():
            self._add_locked(entry)

    def add_many(self, entries: Iterable[IndexEntry]) -> None:
        items = list(entries)
        with self._lock.write():
            # Pre-size each partition once so a start-up load of N rows allocates N rows.
            counts: dict[tuple[str, str], tuple[int, int]] = {}
            for e in items:
                n, _ = counts.get((e.instance, e.model), (0, 0))
                counts[(e.instance, e.model)] = (n + 1, int(np.shape(e.vector)[0]))
            for (inst, model), (n, dim) in counts.items():
                self._reserve_locked(inst, model, dim, n)
            for e in items:
                self._add_locked(e)

    def reserve(self, instance: str, model: str, dim: int, count: int) -> None:
        """Size a partition once before a start-up load, so N rows allocate N rows, not 2N."""
        with self._lock.write():
            self._reserve_locked(instance, model, dim, count)

    def _reserve_locked(self, instance: str, model: str, dim: int, count: int) -> None:
        part = self._partition(instance, model, dim, capacity=count)
        part._grow(part.n + count)

    def update(
        self,
        uuid: str,
        *,
        collection: str | None = None,
        key: str | None = None,
        expires_at: int | None = None,
        vector: np.ndarray | None = None,
    ) -> bool:
        with self._lock.write():
            part = self._find(uuid)
            if part is None:
                return False
            i = part.row[uuid]
            if vector is not None:
                v = self._check(vector)
                if v.shape[0] != part.dim:
                    raise ValueError(f"vector dimension {v.shape[0]} differs from {part.dim}")
                part.matrix[i] = v
            if expires_at is not None:
                part.expires[i] = expires_at
            if collection is not None:
                part.collection[i] = _h(collection)
            if key is not None:
                part.key[i] = _h(key)
            return True

    def remove(self, uuid: str) -> bool:
        with self._lock.write():
            return self._remove_locked(uuid)

    def search(
        self,
        instance: str,
        model: str,
        query: np.ndarray,
        *,
        now: int,
        collection: str | None = None,
        key: str | None = None,
        limit: int = 10,
    ) -> list[tuple[str, float]]:
        q = self._check(query)
        with self._lock.read():
            part = self._parts.get((instance, model))
            if part is None:
                return []
            if q.shape[0] != part.dim:
                raise ValueError(f"query dimension {q.shape[0]} differs from {part.dim}")
            return part.search(q, now, collection, key, limit, self.one_blas_thread)


def _h(value: str) -> int:
    """Process-local 64-bit hash of a filter string (the index lives only in memory)."""
    return hash(value)


def _with_vector(e: IndexEntry, vector: np.ndarray) -> IndexEntry:
    return IndexEntry(e.uuid, e.instance, e.model, e.collection, e.key, e.expires_at, vector)
