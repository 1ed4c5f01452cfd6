"""The two hub engines under the same load, side by side: SQLite (the embedded default) and
PostgreSQL (several hub processes in front of one database).

    python tools/hub_bench.py --records 20000 --batch 500 --page 1000 --dim 512 --writers 2

Each engine runs in its own child process, on the product's `HubStore` code with no HTTP
in front (the hub routes add the same cost to both): `--writers` threads, each with its own
store object (its own connection(s), as separate hub processes hold), push batches of new
512-d records of distinct boxes; then one reader pages the whole feed. Printed per engine:
ingest (records/s pushed) and feed (records/s pulled), p50/p95 of a batch or page, and the
peak RSS of the child process (and, for the private PostgreSQL cluster, of the server
processes). Without `--postgres URL` a private, durable (fsync on) cluster is started like
the tests do (Debian's `postgresql` package) in a temp dir and removed afterwards; SQLite
runs with its production settings (WAL, synchronous=FULL) in a temp dir. The URL is handed
to the child in the environment, never on a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_URL_ENV = "HUB_BENCH_URL"


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def _child(engine: str, target: str, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from edge.store.hlc import Hlc
    from edge.sync.hubstore import HubStore
    from edge.sync.record import Meta, Record, Vector, Versioned

    def open_store() -> HubStore:
        if engine == "sqlite":
            from edge.sync.hub_sqlite import SqliteHubStore

            return SqliteHubStore(Path(target))
        from edge.sync.hub_postgres import PostgresHubStore

        return PostgresHubStore(target)

    rng = np.random.default_rng(1)
    base = 1_700_000_000_000
    per_writer = args.records // args.writers
    batches: list[list[list[tuple[int, Record]]]] = []
    for w in range(args.writers):  # built before the clock starts
        vecs = rng.standard_normal((per_writer, args.dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        recs: list[tuple[int, Record]] = []
        for j in range(per_writer):
            s = Hlc(base + j, 0, f"box{w}")
            recs.append((j + 1, Record(
                f"{w:02x}{j:06x}-0000-7000-8000-{rng.integers(2**48):012x}", "bench",
                meta=Versioned(s, Meta("", f"person-{w}-{j}", "[]", 1)),
                expiry=Versioned(s, 32503680000),
                vectors=(("bench-fp", Versioned(s, Vector.from_float32("M", "M", vecs[j]))),),
            )))  # fmt: skip
        batches.append([recs[i : i + args.batch] for i in range(0, per_writer, args.batch)])
    stores = [open_store() for _ in range(args.writers)]
    push_s: list[float] = []
    lock = threading.Lock()

    def write(w: int) -> None:
        for batch in batches[w]:
            t = time.perf_counter()
            stores[w].push(f"box{w}", batch)
            with lock:
                push_s.append(time.perf_counter() - t)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(args.writers)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ingest_s = time.perf_counter() - start
    reader = stores[0]
    pulled, cursor, feed_s = 0, 0, []
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        page = reader.feed(["bench"], "bench-fp", cursor, args.page)
        feed_s.append(time.perf_counter() - t)
        pulled += len(page.records)
        if page.next == cursor:
            break
        cursor = page.next
    pull_s = time.perf_counter() - start
    assert pulled == per_writer * args.writers, (pulled, per_writer * args.writers)
    for st in stores:
        st.close()
    return {
        "records": pulled,
        "ingest_rps": pulled / ingest_s,
        "push_p50_ms": 1000 * _pct(push_s, 0.5),
        "push_p95_ms": 1000 * _pct(push_s, 0.95),
        "feed_rps": pulled / pull_s,
        "page_p50_ms": 1000 * _pct(feed_s, 0.5),
        "page_p95_ms": 1000 * _pct(feed_s, 0.95),
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _server_rss_mb(data_dir: Path) -> float:
    import psutil

    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        main = psutil.Process(pid)
        procs = [main, *main.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / 2**20
    except (OSError, ValueError, psutil.Error):
        return 0.0


def _run(
    engine: str, target: str, args: argparse.Namespace, pg_data: Path | None
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", engine,
           "--records", str(args.records), "--batch", str(args.batch), "--page", str(args.page),
           "--dim", str(args.dim), "--writers", str(args.writers)]  # fmt: skip
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while pg_data is not None and not done.wait(0.2):
            peak[0] = max(peak[0], _server_rss_mb(pg_data))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    res = subprocess.run(cmd, env={**os.environ, _URL_ENV: target}, capture_output=True,
                         text=True, check=False)  # fmt: skip
    done.set()
    sampler.join()
    if res.returncode != 0:
        raise SystemExit(f"{engine} run failed:\n{res.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    out["server_rss_peak_mb"] = peak[0] if pg_data is not None else None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--records", type=int, default=20_000, help="records pushed (all writers)")
    p.add_argument("--batch", type=int, default=500, help="records per push (sync.push_batch)")
    p.add_argument("--page", type=int, default=1000, help="records per feed page (pull_batch)")
    p.add_argument("--dim", type=int, default=512, help="embedding size")
    p.add_argument("--writers", type=int, default=1, help="concurrent pushers (hub processes)")
    p.add_argument("--postgres", metavar="URL", help="use this database (default: a private "
                   "cluster); its tables are created, so give it an empty database")  # fmt: skip
    p.add_argument("--child", choices=["sqlite", "postgresql"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, os.environ[_URL_ENV], args)))
        return 0
    cluster = None
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        results["sqlite"] = _run("sqlite", str(Path(tmp) / "hub.sqlite3"), args, None)
        url = args.postgres
        if url is None:
            from tests.support.postgres import PgCluster

            cluster = PgCluster(durable=True)
        try:
            if cluster is not None:
                url = cluster.new_database()
            results["postgresql"] = _run(
                "postgresql", url, args, cluster.data if cluster is not None else None
            )
        finally:
            if cluster is not None:
                cluster.stop()
    print(f"hub engines: {args.records} records of {args.dim}-d, push batches of {args.batch}, "
          f"{args.writers} writer(s), feed pages of {args.page}")  # fmt: skip
    rows = [
        ("ingest, records/s pushed", "ingest_rps", "{:.0f}"),
        ("push batch p50, ms", "push_p50_ms", "{:.1f}"),
        ("push batch p95, ms", "push_p95_ms", "{:.1f}"),
        ("feed, records/s pulled", "feed_rps", "{:.0f}"),
        ("feed page p50, ms", "page_p50_ms", "{:.1f}"),
        ("feed page p95, ms", "page_p95_ms", "{:.1f}"),
        ("peak RSS of the hub process, MB", "rss_peak_mb", "{:.0f}"),
        ("peak RSS of the PostgreSQL server, MB", "server_rss_peak_mb", "{:.0f}"),
    ]
    print(f"{'':40} {'SQLite':>10} {'PostgreSQL':>11}")
    for label, key, fmt in rows:
        cells = [fmt.format(results[e][key]) if results[e][key] is not None else "-"
                 for e in ("sqlite", "postgresql")]  # fmt: skip
        print(f"{label:40} {cells[0]:>10} {cells[1]:>11}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
