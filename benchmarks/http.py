"""`edge-face bench http`: search over real HTTP on loopback vs the same work in-process.

The server is the real `edge-face serve` in a child process (its own interpreter, as in
production), with a temporary data dir and a gallery enrolled through the API. Clients send
POST /entities/faces/search with real 640x480 one-face JPEGs at several concurrencies and
record latency per request; 429s (admission said "busy") are counted apart from errors.
The baseline, measured in the same run, is the handler's work called directly in this
process: decode + largest face + embedding + store search, no HTTP, no JSON, no event loop.
The ratio of the two is the cost of the service layer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks import CHECKOUT
from benchmarks.stats import p, peak_rss_mb, table, vm_hwm_mb
from edge.config import Settings, testdata_dir
from tests.support.net import free_port

SEARCH = "/api/v1/entities/faces/search"
FACES = "/api/v1/entities/faces"
#: targets from the task; printed as met/missed, never asserted
TARGET_P50_C1_MS = 20.0
TARGET_RPS_C16 = 60.0
TARGET_P99_C16_MS = 1000.0
ROUNDS = 3  # c > 1: HTTP and direct blocks taken in turn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, default=None, help="labelled test folder (default: $EDGE_TESTDATA)"
    )
    parser.add_argument("--images", type=int, default=12, help="distinct probe photos")
    parser.add_argument("--gallery", type=int, default=200, help="entities enrolled first")
    parser.add_argument(
        "--concurrency", default="1,4,16", help="comma-separated client concurrencies"
    )
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="extra random unit vectors stored before the server starts (e.g. 100000: the "
        "memory and search cost of a large gallery with every model loaded)",
    )
    parser.add_argument("--requests", type=int, default=150, help="timed requests per level")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per level")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")


# The server under test -----------------------------------------------------------------------
def server_config(settings: Settings, data_dir: Path, key: str) -> dict[str, Any]:
    """The caller's settings (models, backends, threads) with a private data dir and key."""
    cfg = settings.model_dump(mode="json")
    cfg["data_dir"] = str(data_dir)
    cfg["models"]["dir"] = str(settings.model_dir)
    cfg["store"]["path"] = None
    cfg["server"].update(
        host="127.0.0.1", api_keys=[{"key": key, "instance": "bench"}], api_key_file=None
    )
    cfg["mqtt"] = {"enabled": False}
    cfg["cameras"] = []
    cfg["sync"] = {"enabled": False}
    return cfg


def prefill_synthetic(server: Settings, n: int, seed: int = 7) -> None:
    """Store `n` random unit vectors in the server's (not yet opened) store, as instance
    'bench', so searches scan a gallery of that size. Real faces are enrolled on top."""
    from edge.engine import Engine
    from edge.store import NewEntity

    engine = Engine.open(server)  # the store the server will open (no model is loaded)
    store = engine.store
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    try:
        for start in range(0, n, 5000):
            m = min(5000, n - start)
            vecs = rng.standard_normal((m, 128)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            store.create_many(
                [
                    NewEntity("bench", "EDGE_FACE_V1", "EDGE_FACE_V1", v, key=f"s{start + i}")
                    for i, v in enumerate(vecs)
                ]
            )
    finally:
        engine.close()
    print(f"stored {n} synthetic vectors in {time.perf_counter() - t0:.1f} s")


class ServerProcess:
    def __init__(self, cfg: dict[str, Any], workdir: Path) -> None:
        self.port = free_port()
        path = workdir / "edge.yaml"
        path.write_text(yaml.safe_dump(cfg))
        self.log = workdir / "serve.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "serve", "--config", str(path),
                 "--port", str(self.port)],
                cwd=CHECKOUT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip

    def stop(self) -> float:
        """Peak RSS in MiB, then SIGTERM (graceful drain) and wait."""
        peak = vm_hwm_mb(self.proc.pid) if self.proc.poll() is None else float("nan")
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        return peak


# Load generation -----------------------------------------------------------------------------
@dataclass
class Level:
    mode: str
    concurrency: int
    ms: list[float] = field(default_factory=list)
    errors: int = 0
    throttled: int = 0
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.ms) + self.errors + self.throttled

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")

    def row(self) -> list[object]:
        a = np.asarray(self.ms)
        return [
            self.mode,
            self.concurrency,
            self.requests,
            self.rps,
            p(a, 50),
            p(a, 95),
            p(a, 99),
            self.errors,
            self.throttled,
        ]

    def as_dict(self) -> dict[str, Any]:
        keys = ["mode", "concurrency", "requests", "rps", "p50_ms", "p95_ms", "p99_ms"]
        return dict(zip([*keys, "errors", "http_429"], self.row(), strict=True))


async def _load(
    url: str, key: str, bodies: list[bytes], concurrency: int, requests: int, warmup: int
) -> Level:
    import aiohttp

    level = Level("http", concurrency)
    headers = {"api-key": key, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        counter = iter(range(10**9))

        async def one(timed: bool) -> None:
            body = bodies[next(counter) % len(bodies)]
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status = -1
            ms = (time.perf_counter() - t0) * 1000
            if not timed:
                return
            if status == 200:
                level.ms.append(ms)
            elif status == 429:
                level.throttled += 1
            else:
                level.errors += 1

        async def worker(n: int, timed: bool) -> None:
            for _ in range(n):
                await one(timed)

        def split(total: int) -> list[int]:
            return [total // concurrency + (i < total % concurrency) for i in range(concurrency)]

        await asyncio.gather(*(worker(n, False) for n in split(max(warmup, concurrency))))
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(n, True) for n in split(requests)))
        level.seconds = time.perf_counter() - t0
    return level


def _http_call(port: int, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"api-key": key} if key else {})
        r = conn.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def _wait_ready(srv: ServerProcess, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            raise RuntimeError("server exited:\n" + srv.log.read_text()[-3000:])
        try:
            if _http_call(srv.port, "", "GET", "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready in time:\n" + srv.log.read_text()[-3000:])


# In-process baseline ---------------------------------------------------------------------------
class Direct:
    """The handler's work without the service: decode + analyze_largest + store search."""

    def __init__(self, settings: Settings, jpegs: list[bytes], gallery: int, workdir: Path):
        from edge.engine import Engine
        from edge.store import NewEntity

        self.settings = settings
        direct = settings.model_copy(deep=True)
        direct.store.path = workdir / "direct.sqlite3"
        self.engine = Engine.open(direct)  # the server's models, built by the same rule
        self.engine.warm_up()
        self.pipeline, self.store = self.engine.pipeline, self.engine.store
        self.b64s = [base64.b64encode(j).decode("ascii") for j in jpegs]
        vecs = [self._analyze(b).embedding for b in self.b64s]
        self.store.create_many(
            [
                NewEntity("bench", "EDGE_FACE_V1", "EDGE_FACE_V1", vecs[i % len(vecs)])
                for i in range(gallery)
            ]
        )
        for i in range(10):
            self.handle(i)

    def _analyze(self, b64: str) -> Any:
        from edge.imaging.decode import decode_image

        dec = decode_image(b64, max_pixels=self.settings.server.max_pixels)
        return self.pipeline.analyze_largest(dec)

    def handle(self, i: int) -> float:
        t0 = time.perf_counter()
        fa = self._analyze(self.b64s[i % len(self.b64s)])
        hits = self.store.search("bench", "EDGE_FACE_V1", fa.embedding, limit=10)
        [self.pipeline.cosine_to_score(c) for _, c in hits]
        return (time.perf_counter() - t0) * 1000

    def sequential(self, requests: int, start: int = 0) -> Level:
        lv = Level("direct", 1)
        t0 = time.perf_counter()
        lv.ms = [self.handle(start + i) for i in range(requests)]
        lv.seconds = time.perf_counter() - t0
        return lv

    def pooled(self, requests: int, threads: int) -> Level:
        lv = Level(f"direct x{threads} threads", threads)
        with ThreadPoolExecutor(threads) as ex:
            t0 = time.perf_counter()
            lv.ms = list(ex.map(self.handle, range(requests)))
            lv.seconds = time.perf_counter() - t0
        return lv

    def close(self) -> None:
        self.engine.close()


def merge(parts: list[Level]) -> Level:
    out = Level(parts[0].mode, parts[0].concurrency)
    for lv in parts:
        out.ms += lv.ms
        out.errors += lv.errors
        out.throttled += lv.throttled
        out.seconds += lv.seconds
    return out


def _paired(
    port: int, key: str, bodies: list[bytes], direct: Direct, requests: int
) -> tuple[Level, Level]:
    """c=1 over one keep-alive connection, each request followed by its direct twin."""
    import http.client

    http_lv, direct_lv = Level("http", 1), Level("direct", 1)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"api-key": key, "Content-Type": "application/json"}
    try:
        for i in range(-5, requests):  # 5 untimed
            t0 = time.perf_counter()
            try:
                conn.request("POST", SEARCH, body=bodies[i % len(bodies)], headers=headers)
                r = conn.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                status = -1
            t1 = time.perf_counter()
            d_ms = direct.handle(i)
            t2 = time.perf_counter()
            if i < 0:
                continue
            http_lv.seconds += t1 - t0
            direct_lv.seconds += t2 - t1
            direct_lv.ms.append(d_ms)
            if status == 200:
                http_lv.ms.append((t1 - t0) * 1000)
            elif status == 429:
                http_lv.throttled += 1
            else:
                http_lv.errors += 1
    finally:
        conn.close()
    return http_lv, direct_lv


# The command -----------------------------------------------------------------------------------
def run(settings: Settings, args: argparse.Namespace) -> int:
    from benchmarks.pipeline import make_inputs

    levels = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    data = testdata_dir(args.data, "bench http")
    jpegs = make_inputs(settings, data, args.images)
    if not jpegs:
        print("no usable one-face photos found under", data)
        return 1
    key = "bench-" + secrets.token_hex(16)
    print(
        f"bench http: {len(jpegs)} distinct 640x480 one-face JPEGs "
        f"(mean {np.mean([len(j) for j in jpegs]) / 1024:.0f} KiB), gallery {args.gallery}, "
        f"{args.requests} timed requests per level, server inference_threads="
        f"{settings.server.inference_threads} queue_limit={settings.server.queue_limit}, "
        f"CPUs visible: {os.cpu_count()}"
    )
    results: list[Level] = []
    threads = settings.server.inference_threads
    with tempfile.TemporaryDirectory(prefix="edge-bench-http-") as tmp:
        work = Path(tmp)
        direct = Direct(settings, jpegs, args.gallery, work)
        cfg = server_config(settings, work / "data", key)
        if args.synthetic:
            prefill_synthetic(Settings(**cfg), args.synthetic)
        srv = ServerProcess(cfg, work)
        peak = float("nan")
        try:
            t0 = time.perf_counter()
            _wait_ready(srv)
            print(f"server ready in {time.perf_counter() - t0:.1f} s")
            for i in range(args.gallery):
                body = {
                    "model": "EDGE_FACE_V1",
                    "image": {"data": direct.b64s[i % len(jpegs)]},
                    "key": f"person-{i}",
                }
                status, out = _http_call(srv.port, key, "POST", FACES, body)
                if status != 201:
                    raise RuntimeError(f"enrolment failed: {status} {out}")
            bodies = [
                json.dumps(
                    {"model": "EDGE_FACE_V1", "image": {"data": b}, "maxEntities": 10}
                ).encode()
                for b in direct.b64s
            ]
            url = f"http://127.0.0.1:{srv.port}{SEARCH}"
            single: Level | None = None
            pooled_by_c: dict[int, Level] = {}
            for c in levels:
                if c == 1:
                    # One HTTP request, then the same work in-process, in turn: both see the
                    # same background load (the box is shared), so the ratio is fair.
                    lv, single = _paired(srv.port, key, bodies, direct, args.requests)
                else:
                    # Blocks of HTTP load and of the direct thread pool, in turn (fairness
                    # under background load, as for c=1).
                    parts, direct_parts = [], []
                    block = max(args.requests // ROUNDS, c)
                    for _ in range(ROUNDS):
                        parts.append(asyncio.run(_load(url, key, bodies, c, block, args.warmup)))
                        direct_parts.append(direct.pooled(block, threads))
                    lv = merge(parts)
                    pooled_by_c[c] = merge(direct_parts)
                results.append(lv)
                print(f"  c={c}: done ({lv.seconds:.1f} s)")
            if single is None:
                single = direct.sequential(args.requests)
            top_c = max(levels)
            pooled = pooled_by_c.get(top_c) or direct.pooled(args.requests, threads)
        finally:
            peak = srv.stop()
            direct.close()
    headers = ["mode", "conc.", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "429"]
    rows = [lv.row() for lv in [*results, single]]
    rows += [[f"{lv.mode} (next to c={c})", *lv.row()[1:]] for c, lv in pooled_by_c.items()]
    print()
    print(table(headers, rows))
    print()
    by_c = {lv.concurrency: lv for lv in results}
    c1 = by_c.get(1)
    overhead = p(np.asarray(c1.ms), 50) / p(np.asarray(single.ms), 50) if c1 else float("nan")
    print(
        f"server peak RSS (VmHWM): {peak:.0f} MiB; this process peak RSS: {peak_rss_mb():.0f} MiB"
    )
    print(f"HTTP overhead ratio, p50 at c=1 / direct p50: {overhead:.2f}x")
    if c1:
        extra = p(np.asarray(c1.ms), 50) - p(np.asarray(single.ms), 50)
        print(f"HTTP overhead at c=1, p50: {extra:+.1f} ms per request")
    top = by_c.get(max(by_c)) if by_c else None
    if top is not None:
        ratio = top.rps / pooled.rps
        print(
            f"throughput at c={top.concurrency} / direct with {threads} threads "
            f"(blocks in turn): {ratio:.2f}x"
        )
    checks = []
    if c1:
        v = p(np.asarray(c1.ms), 50)
        checks.append(("c=1 p50 <= 20 ms", f"{v:.1f} ms", v <= TARGET_P50_C1_MS))
    c16 = by_c.get(16)
    if c16:
        rps = c16.rps
        p99 = p(np.asarray(c16.ms), 99)
        checks.append(("c=16 >= 60 req/s", f"{rps:.1f} req/s", rps >= TARGET_RPS_C16))
        checks.append(("c=16 zero errors", f"{c16.errors} errors", c16.errors == 0))
        checks.append(("c=16 p99 <= 1 s", f"{p99:.0f} ms", p99 <= TARGET_P99_C16_MS))
    for what, got, ok in checks:
        print(f"target {what}: {got} -> {'met' if ok else 'MISSED'}")
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "levels": [lv.as_dict() for lv in results],
                    "direct": [single.as_dict(), pooled.as_dict()],
                    "server_peak_rss_mib": peak,
                    "overhead_ratio_p50_c1": overhead,
                    "cpus": os.cpu_count(),
                },
                indent=1,
            )
        )
    return 0
