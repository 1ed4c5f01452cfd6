"""`edge-face bench http`: search over real HTTP on loopback vs the same work in-process.

The server is the real `edge-face serve` in a child process (its own interpreter, as in
production), with a temporary data dir and a gallery enrolled through the API. Clients send
POST /entities/faces/search with real 640x480 one-face JPEGs at several concurrencies and
record latency per request; 429s (admission said "busy") are counted apart from errors.
The baseline, measured in the same run, is the handler's work called directly in this
process: decode + largest face + embedding + store search, no HTTP, no JSON, no event loop.
The ratio of the two is the cost of the service layer.

Two photo sizes by default: the 640x480 crops and the same photos at ~1 MP (1152x864,
~130 KiB bodies, what kiosk and phone cameras send), upscaled and re-encoded in memory.
With `--baseline CHECKOUT` the run is a side-by-side instead: this checkout's server and the
other checkout's server (each its own interpreter and defaults), the same bodies and gallery,
blocks taken in turn (c=1: request by request), so both see the same background load.
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
#: the crops as made (640x480) and the same photos at ~1 MP, the size phone cameras send
SIZES = ("640x480", "1152x864")
#: re-encoding quality of the upscaled photos: ~130 KiB at 1 MP, as phone uploads are
LARGE_QUALITY = 92


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
    parser.add_argument(
        "--sizes",
        default=",".join(SIZES),
        help="comma-separated photo sizes WxH; 640x480 are the crops themselves, larger ones "
        "the same crops upscaled and re-encoded in memory (default: %(default)s)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="CHECKOUT",
        help="another source checkout (e.g. the previous commit, `git worktree add`); its "
        "server runs next to this one's on the same bodies, blocks in turn, and the report "
        "gives the new/old ratios",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="with --baseline: blocks per server and level, taken in turn (median req/s)",
    )


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
    def __init__(self, cfg: dict[str, Any], workdir: Path, checkout: Path = CHECKOUT) -> None:
        self.port = free_port()
        path = workdir / "edge.yaml"
        path.write_text(yaml.safe_dump(cfg))
        self.log = workdir / "serve.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "serve", "--config", str(path),
                 "--port", str(self.port)],
                cwd=checkout, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **_import_from(checkout)},
            )  # fmt: skip

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server has used so far: the cost per request,
        which background load on a shared box distorts far less than wall time."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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


def _import_from(checkout: Path) -> dict[str, str]:
    """Environment that makes a child interpreter import `edge` from `checkout` first (a
    baseline checkout served with this venv's packages); nothing for this checkout."""
    if checkout.resolve() == CHECKOUT:
        return {}
    rest = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join([str(checkout.resolve()), *([rest] if rest else [])])}


# Photos --------------------------------------------------------------------------------------
def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"bench http: size {text!r} is not WxH (e.g. 1152x864)") from None
    return w, h


def size_label(w: int, h: int) -> str:
    return f"{w}x{h}" if w * h < 500_000 else f"{w}x{h} ({w * h / 1e6:.1f} MP)"


def photo_cases(jpegs: list[bytes], sizes: list[tuple[int, int]]) -> dict[str, list[bytes]]:
    """label -> JPEG bodies: the 640x480 crops as they are, other sizes resized from them
    and re-encoded in memory (real photos, real JPEG structure; nothing is written)."""
    import cv2

    cases: dict[str, list[bytes]] = {}
    for w, h in sizes:
        if (w, h) == (640, 480):
            cases[size_label(w, h)] = jpegs
            continue
        out = []
        for j in jpegs:
            img = cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise RuntimeError("a bench photo does not decode as JPEG")
            interp = cv2.INTER_CUBIC if w > img.shape[1] else cv2.INTER_AREA
            big = cv2.resize(img, (w, h), interpolation=interp)
            ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, LARGE_QUALITY])
            if ok:
                out.append(buf.tobytes())
        cases[size_label(w, h)] = out
    return cases


def search_bodies(b64s: list[str]) -> list[bytes]:
    return [
        json.dumps({"model": "EDGE_FACE_V1", "image": {"data": b}, "maxEntities": 10}).encode()
        for b in b64s
    ]


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
        self.pipeline.cosines_to_scores([c for _, c in hits])
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
    sizes = [parse_size(t) for t in str(args.sizes).split(",") if t.strip()]
    data = testdata_dir(args.data, "bench http")
    jpegs = make_inputs(settings, data, args.images)
    if not jpegs:
        print("no usable one-face photos found under", data)
        return 1
    cases = photo_cases(jpegs, sizes)
    if args.baseline is not None:
        return compare(settings, args, jpegs, cases, levels)
    key = "bench-" + secrets.token_hex(16)
    print(
        f"bench http: {len(jpegs)} distinct one-face photos as "
        + ", ".join(
            f"{label} JPEGs (mean {np.mean([len(j) for j in js]) / 1024:.0f} KiB)"
            for label, js in cases.items()
        )
        + f", gallery {args.gallery}, {args.requests} timed requests per level, server "
        f"inference_threads={settings.server.inference_threads} "
        f"queue_limit={settings.server.queue_limit}, CPUs visible: {os.cpu_count()}"
    )
    results: list[tuple[str, Level]] = []
    singles: list[tuple[str, Level]] = []
    pooled_rows: list[tuple[str, int, Level]] = []
    pooled_of: dict[str, Level] = {}
    threads = settings.server.inference_threads
    with tempfile.TemporaryDirectory(prefix="edge-bench-http-") as tmp:
        work = Path(tmp)
        direct = Direct(settings, jpegs, args.gallery, work)
        cfg = server_config(settings, work / "data", key)
        if args.synthetic:
            prefill_synthetic(Settings(**cfg), args.synthetic)
        srv = ServerProcess(cfg, work)
        peak = float("nan")
        gallery_b64s = list(direct.b64s)
        try:
            t0 = time.perf_counter()
            _wait_ready(srv)
            print(f"server ready in {time.perf_counter() - t0:.1f} s")
            _enrol(srv, key, gallery_b64s, args.gallery)
            url = f"http://127.0.0.1:{srv.port}{SEARCH}"
            for label, case_jpegs in cases.items():
                # The direct twin works on the same photos as the HTTP requests.
                direct.b64s = [base64.b64encode(j).decode("ascii") for j in case_jpegs]
                bodies = search_bodies(direct.b64s)
                single: Level | None = None
                for c in levels:
                    if c == 1:
                        # One HTTP request, then the same work in-process, in turn: both see
                        # the same background load (the box is shared), so the ratio is fair.
                        lv, single = _paired(srv.port, key, bodies, direct, args.requests)
                    else:
                        # Blocks of HTTP load and of the direct thread pool, in turn
                        # (fairness under background load, as for c=1).
                        parts, direct_parts = [], []
                        block = max(args.requests // ROUNDS, c)
                        for _ in range(ROUNDS):
                            parts.append(
                                asyncio.run(_load(url, key, bodies, c, block, args.warmup))
                            )
                            direct_parts.append(direct.pooled(block, threads))
                        lv = merge(parts)
                        pooled_rows.append((label, c, merge(direct_parts)))
                    results.append((label, lv))
                    print(f"  {label} c={c}: done ({lv.seconds:.1f} s)")
                if single is None:
                    single = direct.sequential(args.requests)
                singles.append((label, single))
                top = [lv for lb, c, lv in pooled_rows if lb == label and c == max(levels)]
                pooled_of[label] = top[0] if top else direct.pooled(args.requests, threads)
        finally:
            peak = srv.stop()
            direct.close()
    headers = [
        "photos", "mode", "conc.", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
        "429",
    ]  # fmt: skip
    rows: list[list[object]] = []
    for label in cases:
        rows += [[label, *lv.row()] for lb, lv in [*results, *singles] if lb == label]
        rows += [
            [label, f"{lv.mode} (next to c={c})", *lv.row()[1:]]
            for lb, c, lv in pooled_rows
            if lb == label
        ]
    print()
    print(table(headers, rows))
    print()
    print(
        f"server peak RSS (VmHWM): {peak:.0f} MiB; this process peak RSS: {peak_rss_mb():.0f} MiB"
    )
    out_levels: list[dict[str, Any]] = []
    for label in cases:
        by_c = {lv.concurrency: lv for lb, lv in results if lb == label}
        single = dict(singles)[label]
        pooled = pooled_of[label]
        out_levels += [{"photos": label, **lv.as_dict()} for lv in by_c.values()]
        _summary(label, by_c, single, pooled, threads)
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "levels": out_levels,
                    "direct": [
                        {"photos": label, **lv.as_dict()}
                        for label in cases
                        for lv in (dict(singles)[label], pooled_of[label])
                    ],
                    "server_peak_rss_mib": peak,
                    "cpus": os.cpu_count(),
                },
                indent=1,
            )
        )
    return 0


def _enrol(srv: ServerProcess, key: str, b64s: list[str], gallery: int) -> None:
    """`gallery` entities through the API, cycling through the photos."""
    for i in range(gallery):
        body = {"model": "EDGE_FACE_V1", "image": {"data": b64s[i % len(b64s)]}, "key": f"p-{i}"}
        status, out = _http_call(srv.port, key, "POST", FACES, body)
        if status != 201:
            raise RuntimeError(f"enrolment failed: {status} {out}")


def _summary(
    label: str, by_c: dict[int, Level], single: Level, pooled: Level, threads: int
) -> None:
    """Overhead ratios and the targets (printed as met/missed, never asserted)."""
    print(f"{label}:")
    c1 = by_c.get(1)
    if c1:
        overhead = p(np.asarray(c1.ms), 50) / p(np.asarray(single.ms), 50)
        extra = p(np.asarray(c1.ms), 50) - p(np.asarray(single.ms), 50)
        print(f"  HTTP overhead ratio, p50 at c=1 / direct p50: {overhead:.2f}x ({extra:+.1f} ms)")
    top = by_c.get(max(by_c)) if by_c else None
    if top is not None:
        ratio = top.rps / pooled.rps
        print(
            f"  throughput at c={top.concurrency} / direct with {threads} threads "
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
        print(f"  target {what}: {got} -> {'met' if ok else 'MISSED'}")


# Side by side with another checkout ----------------------------------------------------------
def minimal_config(settings: Settings, data_dir: Path, key: str) -> dict[str, Any]:
    """Only keys every commit of the service knows: both servers run their own defaults
    (threads, backends, detection), the same model files, a private data dir and key."""
    return {
        "data_dir": str(data_dir),
        "models": {"dir": str(settings.model_dir)},
        "server": {
            "host": "127.0.0.1",
            "api_keys": [{"key": key, "instance": "bench"}],
            "api_key_file": None,
        },
        "mqtt": {"enabled": False},
        "cameras": [],
    }


def _paired_servers(
    ports: dict[str, int], key: str, bodies: list[bytes], requests: int
) -> dict[str, Level]:
    """c=1: one request to each server in turn (order swapped every request), each over
    its own keep-alive connection, so both see the same moment of background load."""
    import http.client

    names = list(ports)
    levels = {n: Level("http", 1) for n in names}
    conns = {n: http.client.HTTPConnection("127.0.0.1", ports[n], timeout=120) for n in names}
    headers = {"api-key": key, "Content-Type": "application/json"}
    try:
        for i in range(-5, requests):  # 5 untimed
            for n in names if i % 2 == 0 else names[::-1]:
                t0 = time.perf_counter()
                try:
                    conns[n].request("POST", SEARCH, body=bodies[i % len(bodies)], headers=headers)
                    r = conns[n].getresponse()
                    r.read()
                    status = r.status
                except (OSError, http.client.HTTPException):
                    conns[n].close()
                    conns[n] = http.client.HTTPConnection("127.0.0.1", ports[n], timeout=120)
                    status = -1
                dt = time.perf_counter() - t0
                if i < 0:
                    continue
                lv = levels[n]
                lv.seconds += dt
                if status == 200:
                    lv.ms.append(dt * 1000)
                elif status == 429:
                    lv.throttled += 1
                else:
                    lv.errors += 1
    finally:
        for conn in conns.values():
            conn.close()
    return levels


@dataclass
class Side:
    """One server's figures for one (photos, concurrency) cell of the side-by-side."""

    level: Level
    block_rps: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        """Median of the blocks' throughputs: one noisy block cannot move it."""
        return float(np.median(self.block_rps)) if self.block_rps else self.level.row()[3]  # type: ignore[return-value]

    def cpu_ms_per_request(self) -> float:
        n = len(self.level.ms) + self.level.errors + self.level.throttled
        return self.cpu_s * 1000 / n if n else float("nan")


def compare(
    settings: Settings,
    args: argparse.Namespace,
    jpegs: list[bytes],
    cases: dict[str, list[bytes]],
    levels: list[int],
) -> int:
    """This checkout's server against `args.baseline`'s, blocks in turn; ratios new/old."""
    baseline = args.baseline.resolve()
    if not (baseline / "edge" / "cli.py").is_file():
        print(f"bench http: {baseline} is not an edge-face checkout (no edge/cli.py)")
        return 2
    key = "bench-" + secrets.token_hex(16)
    rounds = max(1, args.rounds)
    print(
        f"bench http side by side: new={CHECKOUT} old={baseline}; {len(jpegs)} photos as "
        + ", ".join(
            f"{label} (mean {np.mean([len(j) for j in js]) / 1024:.0f} KiB)"
            for label, js in cases.items()
        )
        + f"; gallery {args.gallery}; {args.requests} timed requests per server and level "
        f"in {rounds} blocks in turn; CPUs visible: {os.cpu_count()}"
    )
    b64s = [base64.b64encode(j).decode("ascii") for j in jpegs]
    sides: dict[tuple[str, int, str], Side] = {}
    peaks: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="edge-bench-http-") as tmp:
        work = Path(tmp)
        servers: dict[str, ServerProcess] = {}
        try:
            for name, checkout in (("new", CHECKOUT), ("old", baseline)):
                (work / name).mkdir()
                cfg = minimal_config(settings, work / name / "data", key)
                servers[name] = ServerProcess(cfg, work / name, checkout)
            for name, srv in servers.items():
                _wait_ready(srv)
                _enrol(srv, key, b64s, args.gallery)
                print(f"  {name}: ready, {args.gallery} enrolled")
            names = list(servers)
            for label, case_jpegs in cases.items():
                bodies = search_bodies([base64.b64encode(j).decode("ascii") for j in case_jpegs])
                for c in levels:
                    cell = {n: Side(Level("http", c)) for n in names}
                    if c == 1:
                        cpu0 = {n: servers[n].cpu_s() for n in names}
                        ports = {n: servers[n].port for n in names}
                        for n, lv in _paired_servers(ports, key, bodies, args.requests).items():
                            cell[n].level = lv
                            cell[n].cpu_s = servers[n].cpu_s() - cpu0[n]
                    else:
                        block = max(args.requests // rounds, c)
                        for r in range(rounds):
                            for n in names if r % 2 == 0 else names[::-1]:
                                url = f"http://127.0.0.1:{servers[n].port}{SEARCH}"
                                before = servers[n].cpu_s()
                                lv = asyncio.run(_load(url, key, bodies, c, block, args.warmup))
                                cell[n].cpu_s += servers[n].cpu_s() - before
                                cell[n].block_rps.append(float(lv.row()[3]))  # type: ignore[arg-type]
                                cell[n].level = merge([cell[n].level, lv]) if r else lv
                    for n in names:
                        sides[(label, c, n)] = cell[n]
                    print(f"  {label} c={c}: done")
        finally:
            for name, srv in servers.items():
                peaks[name] = srv.stop()
    headers = [
        "photos", "conc.", "commit", "req/s", "p50 ms", "p95 ms", "p99 ms", "CPU ms/req",
        "errors", "429",
    ]  # fmt: skip
    rows = []
    for (label, c, n), side in sides.items():
        a = np.asarray(side.level.ms)
        rows.append(
            [
                label, c, n, side.rps, p(a, 50), p(a, 95), p(a, 99),
                side.cpu_ms_per_request(), side.level.errors, side.level.throttled,
            ]
        )  # fmt: skip
    print()
    print(table(headers, rows))
    print()
    print(
        "server peak RSS (VmHWM): "
        + ", ".join(f"{n} {peaks.get(n, float('nan')):.0f} MiB" for n in ("new", "old"))
    )
    ratios: list[dict[str, Any]] = []
    for label in cases:
        for c in levels:
            new, old = sides[(label, c, "new")], sides[(label, c, "old")]
            p50_new, p50_old = p(np.asarray(new.level.ms), 50), p(np.asarray(old.level.ms), 50)
            ratios.append(
                {
                    "photos": label,
                    "concurrency": c,
                    "rps_new_over_old": new.rps / old.rps,
                    "p50_new_over_old": p50_new / p50_old,
                    "cpu_per_request_new_over_old": new.cpu_ms_per_request()
                    / old.cpu_ms_per_request(),
                }
            )
            ratio = ratios[-1]
            line = (
                f"{label} c={c}: throughput new/old {ratio['rps_new_over_old']:.2f}x, "
                f"p50 new/old {ratio['p50_new_over_old']:.2f}x, "
                f"server CPU per request new/old {ratio['cpu_per_request_new_over_old']:.2f}x"
            )
            if c == 1:
                line += f" -> p50 no worse: {'met' if p50_new <= p50_old else 'MISSED'}"
            elif c == max(levels):
                ok = ratio["rps_new_over_old"] >= 1.5
                line += f" -> throughput >= 1.5x: {'met' if ok else 'MISSED'}"
            print(line)
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "cells": [
                        {
                            "photos": label,
                            "commit": n,
                            "median_block_rps": side.rps,
                            "server_cpu_ms_per_request": side.cpu_ms_per_request(),
                            **side.level.as_dict(),
                        }
                        for (label, c, n), side in sides.items()
                    ],
                    "ratios": ratios,
                    "server_peak_rss_mib": peaks,
                    "baseline": str(baseline),
                    "cpus": os.cpu_count(),
                },
                indent=1,
            )
        )
    return 0
