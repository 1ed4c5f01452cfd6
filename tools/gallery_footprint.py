"""Measure the database bytes per live entity after a simulated stretch of operation.

Usage: python tools/gallery_footprint.py [--live 82] [--visitors 3000] [--deletes 500]
       [--updates 500] [--dim 128] [--keep]

Runs a deterministic workload on a fresh store in a temporary directory, with the change-log
retention `edge-face serve` uses by default and a simulated clock (one operation a minute,
the purge loop's tick every ten): `--live` residents enrolled once and re-enrolled
(`--updates`), `--visitors` enrolled with a one-day TTL that expire, `--deletes` enrolments
erased on request; an hour later one resident is re-enrolled (retention applies at writes).
It then prints the size of the database file and its WAL per live entity.

The workload only uses the store API every release has, so the same command compares
releases: `PYTHONPATH=<other checkout> python tools/gallery_footprint.py`.
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import sqlite3
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parents[1]))  # PYTHONPATH, if set, wins

from edge.config import Settings
from edge.store import EntityStore

try:
    from edge.engine import open_store
except ImportError:  # a release from before the composition root
    open_store = None  # type: ignore[assignment]


class SimClock:
    """Time moves only when the workload says so: days of operation in seconds."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 60) -> None:
        self.now += timedelta(seconds=seconds)


def open_like_serve(path: Path, clock: SimClock) -> EntityStore:
    """The store as `edge-face serve` opens it (`path` is the data dir's `edge.sqlite3`).

    Synthetic vectors come from no model, so a fixed fingerprint stands in for the pack's. A
    release from before `edge.engine.open_store(fingerprint=)` gets the store class with the
    service's default retention, where it has the options (a release without them has none).
    """
    settings = Settings(data_dir=path.parent)
    if open_store is not None and "fingerprint" in inspect.signature(open_store).parameters:
        return open_store(settings, fingerprint="footprint", clock=clock)
    defaults = settings.store
    params = inspect.signature(EntityStore).parameters
    options = {
        name: getattr(defaults, name)
        for name in ("change_log_keep_s", "change_log_keep_rows")
        if name in params
    }
    return EntityStore(path, pack_fingerprint="footprint", clock=clock, **options)


def run(args: argparse.Namespace, path: Path) -> dict[str, int | str]:
    rng = np.random.default_rng(7)
    clock = SimClock()
    store = open_like_serve(path, clock)
    ops = 0

    def vec() -> np.ndarray:
        return rng.standard_normal(args.dim).astype(np.float32)

    def enrol(i: int, ttl: int) -> str:
        nonlocal ops
        meta = [
            {"name": "name", "type": "string", "value": f"Person {i:06d}"},
            {"name": "badge", "type": "integer", "value": i},
            {"name": "site", "type": "string", "value": "north gate"},
        ]
        e = store.create(
            instance="default",
            model="EDGE_FACE_V1",
            model_name="EDGE_FACE_V1",
            collection="staff" if ttl == -1 else "visitors",
            key=f"p{i:06d}",
            metadata=meta,
            ttl=ttl,
            vector=vec(),
        )
        step()
        return e.uuid

    def step() -> None:
        nonlocal ops
        ops += 1
        clock.tick()
        if ops % 10 == 0:
            store.purge_expired()  # the service's periodic loop

    residents = [enrol(i, -1) for i in range(args.live)]
    n = args.live
    for j in range(max(args.visitors, args.deletes, args.updates)):
        if j < args.visitors:
            enrol(n, 24 * 3600)
            n += 1
        if j < args.deletes:
            store.delete("default", enrol(n, -1))
            n += 1
            step()
        if j < args.updates:
            store.update("default", residents[j % len(residents)], vector=vec())
            step()
    clock.tick(2 * 24 * 3600)  # every visitor has expired
    for _ in range(10):
        step()
    # An hour later one resident is re-enrolled: retention is applied at writes.
    clock.tick(3600)
    store.update("default", residents[0], vector=vec())
    live = store.count()
    changes = len(store.changes_since(0, limit=10**9))
    store.close()  # closing checkpoints the WAL into the file
    with sqlite3.connect(path) as conn:
        remaining = int(conn.execute("SELECT count(*) FROM changes").fetchone()[0])
    db = path.stat().st_size
    wal_path = path.with_name(path.name + "-wal")
    wal = wal_path.stat().st_size if wal_path.exists() else 0
    return {
        "store": inspect.getsourcefile(EntityStore) or "?",
        "live_entities": live,
        "change_rows_open": changes,
        "change_rows_closed": remaining,
        "db_bytes": db,
        "wal_bytes": wal,
        "bytes_per_live_entity": (db + wal) // max(live, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Database bytes per live entity after a simulated workload.",
        epilog="Compare releases: PYTHONPATH=<checkout> python tools/gallery_footprint.py",
    )
    p.add_argument("--live", type=int, default=82, help="residents kept enrolled (default 82)")
    p.add_argument("--visitors", type=int, default=3000, help="enrolments that expire")
    p.add_argument("--deletes", type=int, default=500, help="enrolments erased on request")
    p.add_argument("--updates", type=int, default=500, help="residents re-enrolled")
    p.add_argument("--dim", type=int, default=128, help="vector dimension (EDGE_FACE_V1: 128)")
    p.add_argument("--keep", action="store_true", help="keep the database; print its path")
    args = p.parse_args(argv)
    if args.live < 1:
        p.error("--live must be >= 1")
    tmp = Path(tempfile.mkdtemp(prefix="footprint-"))
    try:
        result = run(args, tmp / "data" / "edge.sqlite3")
        for k, v in result.items():
            print(f"{k}: {v}")
        if args.keep:
            print(f"database: {tmp / 'data' / 'edge.sqlite3'}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
