"""Fault-injection run of fleet sync: a hub and boxes as separate processes, SIGKILLs and
partitions under a mixed create/patch/delete load, then a checker.

    python tools/fleet_sim.py --seed 1 --boxes 4 --ops 20000 --kills 100 --hub-kills 20 \
        --partitions 30 [--hub-database postgresql://user:pw@127.0.0.1:5432/hubdb]

Each node is a real process running the product's sync code: a box is an `EntityStore`
(SQLite file) with the `SyncWorker` pushing and pulling over HTTP; the hub is the `Hub`
routes on a `SqliteHubStore`, or with `--hub-database` on a `PostgresHubStore` (give an
empty database; the URL reaches the hub process through the environment, never its
command line). The vision models are left out (writes carry random unit vectors), which
is what makes tens of thousands of writes affordable on two cores; the
`edge-face serve` path is covered by tests/sync/test_fleet.py. Every box link goes through
a TCP proxy that partitions cut (connections reset, new ones refused).

The driver records every write a box acknowledged, with the clock stamp it got, and
afterwards (all links healed, all nodes up, every outbox empty and every cursor at the
hub's head) checks: nothing acknowledged is lost, nothing deleted comes back, no
duplicates, every replica holds exactly the same records (digest), and each entity's
key is the last-writer-wins winner of the patches made to it. Exit status 0 = all held.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INSTANCE = "sim"
FINGERPRINT = "sim-pack"
DIM = 32
#: the hub node's PostgreSQL URL (`--hub-database`), kept off the command line (passwords)
HUB_DATABASE_ENV = "FLEET_SIM_HUB_DATABASE"


# Nodes (run in their own processes) -------------------------------------------------------
def _node_hub(data: Path, port: int, tokens: list[str]) -> None:
    from aiohttp import web

    from edge.config import SyncConfig
    from edge.sync.hub import Hub, token_hash
    from edge.sync.hub_sqlite import SqliteHubStore
    from edge.sync.hubstore import HubStore

    url = os.environ.get(HUB_DATABASE_ENV)
    store: HubStore
    if url:
        from edge.sync.hub_postgres import PostgresHubStore

        store = PostgresHubStore(url)
    else:
        store = SqliteHubStore(data / "hub.sqlite3")
    cfg = SyncConfig(
        enabled=True, role="hub",
        boxes=[{"id": f"box{i}", "token_sha256": [token_hash(t)], "instances": [INSTANCE]}
               for i, t in enumerate(tokens)],
    )  # fmt: skip
    hub = Hub(store, cfg)

    async def dump(request: web.Request) -> web.Response:
        page = await asyncio.to_thread(store.feed, [INSTANCE], FINGERPRINT, 0, 10**9)
        return web.json_response({"records": [_digest_row(r) for _, r in page.records],
                                  "head": page.head})  # fmt: skip

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/sync/v1/push", hub.push)
    app.router.add_get("/sync/v1/feed", hub.feed)
    app.router.add_get("/w/dump", dump)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def _node_box(data: Path, port: int, upstream: str, token: str) -> None:
    import numpy as np
    from aiohttp import web

    from edge.config import SyncConfig
    from edge.store import EntityStore
    from edge.sync.link import HttpLink
    from edge.sync.replica import record_of
    from edge.sync.worker import SyncWorker

    store = EntityStore(data / "box.sqlite3", pack_fingerprint=FINGERPRINT)
    cfg = SyncConfig(
        long_poll_s=float(os.environ.get("FLEET_SIM_LONG_POLL_S", "2")),
        retry_min_s=0.1, retry_max_s=1.0, push_batch=200,
    )  # fmt: skip

    def stamps(uuid: str) -> dict[str, Any]:
        got = store.sync_load([uuid]).get(uuid)
        if got is None:
            return {}
        rec = record_of(got)
        return {"deleted": rec.deleted.encode() if rec.deleted else None,
                "meta": rec.meta.stamp.encode() if rec.meta else None}  # fmt: skip

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        vec = np.random.default_rng(body["seed"]).standard_normal(DIM).astype(np.float32)
        e = await asyncio.to_thread(
            store.create, instance=INSTANCE, model="M", model_name="M", collection="",
            key=body["key"], metadata=[], ttl=-1, vector=vec,
        )  # fmt: skip
        return web.json_response({"uuid": e.uuid, **(await asyncio.to_thread(stamps, e.uuid))})

    async def patch(request: web.Request) -> web.Response:
        body = await request.json()
        e = await asyncio.to_thread(store.update, INSTANCE, body["uuid"], key=body["key"])
        if e is None:
            return web.json_response({"found": False})
        return web.json_response({"found": True, **(await asyncio.to_thread(stamps, e.uuid))})

    async def delete(request: web.Request) -> web.Response:
        body = await request.json()
        ok = await asyncio.to_thread(store.delete, INSTANCE, body["uuid"])
        out = await asyncio.to_thread(stamps, body["uuid"]) if ok else {}
        return web.json_response({"found": ok, **out})

    async def dump(request: web.Request) -> web.Response:
        def rows() -> list[Any]:
            out, after = [], ""
            while items := store.sync_export(after, 5000):
                after = items[-1].uuid
                out += [_digest_row(record_of(it)) for it in items]
            return out

        return web.json_response({"records": await asyncio.to_thread(rows)})

    async def status(request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(worker.report))

    link = HttpLink(upstream, token)
    worker = SyncWorker(store, cfg, link, [INSTANCE], name=data.name)

    async def start(app: web.Application) -> Any:
        task = asyncio.create_task(worker.run())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await link.close()

    app = web.Application()
    app.cleanup_ctx.append(start)
    for path, fn in (("/w/create", create), ("/w/patch", patch), ("/w/delete", delete)):
        app.router.add_post(path, fn)
    app.router.add_get("/w/dump", dump)
    app.router.add_get("/w/status", status)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def _digest_row(rec: Any) -> list[Any]:
    """One record as the checker compares it: exact stamps and values, vector hashed."""
    from edge.sync.codec import encode_record, pack

    key = rec.meta.value.key if rec.meta is not None else None
    meta = rec.meta.stamp.encode() if rec.meta is not None else None
    digest = hashlib.sha256(pack(encode_record(rec))).hexdigest()[:16]
    return [rec.uuid, rec.deleted is not None, key, meta, digest]


# Driver ----------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(port: int, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


@dataclass
class Proc:
    args: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "node", *self.args, "--port", str(self.port)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                _call(self.port, "GET", "/w/dump" if "hub" in self.args else "/w/status")
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"node died at start: {self.log}") from None
                time.sleep(0.1)
        raise RuntimeError(f"node not up: {self.log}")

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.up:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.kills += 1

    def stop(self) -> None:
        if self.up:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Ledger:
    """What the driver saw acknowledged (and what it attempted without an answer)."""

    created: dict[str, str] = field(default_factory=dict)  # uuid -> key at creation
    patches: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # (stamp, key)
    attempted_keys: dict[str, set[str]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    delete_attempted: set[str] = field(default_factory=set)
    acked: int = 0


def run(args: argparse.Namespace) -> int:
    from tests.support.proxy import Proxy

    rng = random.Random(args.seed)
    work = Path(args.dir or f"/tmp/fleet-sim-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    tokens = [f"sim-token-{i}-{rng.getrandbits(64):x}" for i in range(args.boxes)]
    hub = Proc(["hub", "--data", str(work / "hub"), "--tokens", ",".join(tokens)], _free_port(),
               work / "hub.log")  # fmt: skip
    (work / "hub").mkdir(exist_ok=True, mode=0o700)
    proxies = [Proxy(hub.port) for _ in range(args.boxes)]
    boxes = []
    for i in range(args.boxes):
        d = work / f"box{i}"
        d.mkdir(exist_ok=True, mode=0o700)
        boxes.append(Proc(["box", "--data", str(d), "--upstream", proxies[i].url,
                           "--token", tokens[i]], _free_port(), work / f"box{i}.log"))  # fmt: skip
    ledger = Ledger()
    started = time.monotonic()
    try:
        hub.start()
        for b in boxes:
            b.start()
        # Faults spread over the run: (op index, what).
        faults: list[tuple[int, str]] = []
        for _ in range(args.kills - args.hub_kills):
            faults.append((rng.randrange(args.ops), "kill-box"))
        for _ in range(args.hub_kills):
            faults.append((rng.randrange(args.ops), "kill-hub"))
        for _ in range(args.partitions):
            faults.append((rng.randrange(args.ops), "partition"))
        faults.sort()
        cut: dict[int, int] = {}  # box -> op index to heal at
        down: dict[int, int] = {}  # box -> op index to restart at
        hub_down_until = -1
        fi = 0
        for op in range(args.ops):
            while fi < len(faults) and faults[fi][0] <= op:
                what = faults[fi][1]
                fi += 1
                if what == "kill-hub" and hub.up:
                    hub.kill()
                    hub_down_until = op + rng.randint(5, 40)
                elif what == "kill-box":
                    i = rng.randrange(args.boxes)
                    if boxes[i].up:
                        boxes[i].kill()
                        down[i] = op + rng.randint(1, 30)
                elif what == "partition":
                    i = rng.randrange(args.boxes)
                    proxies[i].block()
                    cut[i] = op + rng.randint(10, 200)
            if not hub.up and op >= hub_down_until:
                hub.start()
            for i in [i for i, t in down.items() if op >= t]:
                boxes[i].start()
                del down[i]
            for i in [i for i, t in cut.items() if op >= t]:
                proxies[i].heal()
                del cut[i]
            live = [i for i, b in enumerate(boxes) if b.up]
            if not live:
                continue
            _one_write(rng, boxes[rng.choice(live)], ledger)
        # Heal everything and let the fleet settle.
        for p in proxies:
            p.heal()
        if not hub.up:
            hub.start()
        for b in boxes:
            if not b.up:
                b.start()
        settle = _settle(hub, boxes, args.settle_s)
        failures = _check(hub, boxes, ledger)
        kills = sum(b.kills for b in boxes) + hub.kills
        engine = "PostgreSQL" if os.environ.get(HUB_DATABASE_ENV) else "SQLite"
        print(
            f"seed {args.seed}: {engine} hub, {args.boxes} boxes, {ledger.acked} acknowledged "
            f"writes "
            f"({len(ledger.created)} creates, {sum(len(v) for v in ledger.patches.values())} "
            f"patches, {len(ledger.deleted)} deletes), {kills} SIGKILLs ({hub.kills} of the "
            f"hub), {args.partitions} partitions, settled in {settle:.1f} s, "
            f"{time.monotonic() - started:.0f} s in all"
        )
        for name, n in failures.items():
            print(f"  {name}: {n}")
        return 0 if not any(failures.values()) else 1
    finally:
        for p in [hub, *boxes]:
            p.stop()
        for px in proxies:
            px.close()


def _one_write(rng: random.Random, box: Proc, ledger: Ledger) -> None:
    known = list(ledger.created)
    r = rng.random()
    try:
        if r < 0.5 or not known:
            key = f"k{rng.getrandbits(48):x}"
            out = _call(box.port, "POST", "/w/create", {"seed": rng.getrandbits(31), "key": key})
            ledger.created[out["uuid"]] = key
            ledger.acked += 1
        elif r < 0.85:
            uuid, key = rng.choice(known), f"p{rng.getrandbits(48):x}"
            ledger.attempted_keys.setdefault(uuid, set()).add(key)
            out = _call(box.port, "POST", "/w/patch", {"uuid": uuid, "key": key})
            if out["found"]:
                ledger.patches.setdefault(uuid, []).append((out["meta"], key))
                ledger.acked += 1
        else:
            uuid = rng.choice(known)
            ledger.delete_attempted.add(uuid)
            out = _call(box.port, "POST", "/w/delete", {"uuid": uuid})
            if out["found"]:
                ledger.deleted.add(uuid)
                ledger.acked += 1
    except OSError:
        pass  # the box died under the request: not acknowledged


def _settle(hub: Proc, boxes: list[Proc], limit_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        try:
            head = _call(hub.port, "GET", "/w/dump", timeout=30)["head"]
            states = [_call(b.port, "GET", "/w/status") for b in boxes]
        except OSError:
            time.sleep(0.5)
            continue
        if all(s["pending"] == 0 and s["cursor"] == head for s in states):
            return time.monotonic() - start
        time.sleep(0.5)
    raise SystemExit(f"the fleet did not settle within {limit_s:.0f} s")


def _check(hub: Proc, boxes: list[Proc], ledger: Ledger) -> dict[str, int]:
    replicas = {"hub": _call(hub.port, "GET", "/w/dump", timeout=60)["records"]}
    for i, b in enumerate(boxes):
        replicas[f"box{i}"] = _call(b.port, "GET", "/w/dump", timeout=60)["records"]
    fail = {"lost": 0, "resurrected": 0, "duplicated": 0, "digest mismatches": 0,
            "not the LWW winner": 0}  # fmt: skip
    reference = sorted(map(tuple, replicas["hub"]))
    for name, rows in replicas.items():
        uuids = [r[0] for r in rows]
        fail["duplicated"] += len(uuids) - len(set(uuids))
        if sorted(map(tuple, rows)) != reference:
            fail["digest mismatches"] += 1
            print(f"  replica {name} differs from the hub")
    by_uuid = {r[0]: r for r in replicas["hub"]}
    for uuid, key in ledger.created.items():
        row = by_uuid.get(uuid)
        if row is None or (row[1] and uuid not in ledger.delete_attempted):
            fail["lost"] += 1
            continue
        if row[1]:
            continue
        # The final key: the acknowledged patch with the newest stamp, or a newer patch
        # whose answer was lost (it was attempted), or the creation key if none won.
        acked = sorted(ledger.patches.get(uuid, []))
        if acked and row[3] == acked[-1][0]:
            ok = row[2] == acked[-1][1]
        elif acked and row[3] < acked[-1][0]:
            ok = False
        else:
            ok = row[2] in ledger.attempted_keys.get(uuid, set()) | {key}
        fail["not the LWW winner"] += not ok
    for uuid in ledger.deleted:
        row = by_uuid.get(uuid)
        fail["resurrected"] += row is None or not row[1]
    return fail


def seed_hub(path: Path, entities: int, dim: int, seed: int = 1) -> None:
    """A hub database holding `entities` records (feed sequences 1..entities)."""
    import numpy as np

    from edge.store.hlc import Hlc
    from edge.sync.hub_sqlite import SqliteHubStore
    from edge.sync.record import Meta, Record, Vector, Versioned

    rng = np.random.default_rng(seed)
    hub_store = SqliteHubStore(path)
    try:
        base = 1_700_000_000_000
        for start in range(hub_store.head(), entities, 5000):
            n = min(5000, entities - start)
            vecs = rng.standard_normal((n, dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            batch = []
            for j in range(n):
                s = Hlc(base + start + j, 0, "seeder")
                uuid = f"{start + j:08x}-0000-7000-8000-{rng.integers(2**48):012x}"
                batch.append((start + j + 1, Record(
                    uuid, INSTANCE, meta=Versioned(s, Meta("", f"person-{start + j}", "[]", 1)),
                    expiry=Versioned(s, 32503680000),
                    vectors=((FINGERPRINT, Versioned(s, Vector.from_float32("M", "M", vecs[j]))),),
                )))  # fmt: skip
            hub_store.push("seeder", batch)
    finally:
        hub_store.close()


def bootstrap(args: argparse.Namespace) -> int:
    """An empty box loads a hub of `--entities` records of `--dim`-d: time until its
    cursor reaches the hub's head (every record applied and indexed), bytes downloaded,
    and the box process's RSS increase."""
    from tests.support.proxy import Proxy

    work = Path(args.dir or f"/tmp/fleet-boot-{os.getpid()}")
    (work / "hub").mkdir(parents=True, exist_ok=True, mode=0o700)
    (work / "box").mkdir(parents=True, exist_ok=True, mode=0o700)
    seed_start = time.monotonic()
    seed_hub(work / "hub" / "hub.sqlite3", args.entities, args.dim, args.seed)
    print(
        f"hub seeded with {args.entities} x {args.dim}-d in {time.monotonic() - seed_start:.0f} s"
    )
    token = "bootstrap-token-0123456789abcdef"
    hub = Proc(["hub", "--data", str(work / "hub"), "--tokens", token], _free_port(),
               work / "hub.log")  # fmt: skip
    hub.start()
    proxy = Proxy(hub.port)
    proxy.block()  # the box starts empty and idle; the clock starts when the link opens
    box = Proc(["box", "--data", str(work / "box"), "--upstream", proxy.url, "--token", token],
               _free_port(), work / "box.log")  # fmt: skip
    try:
        box.start()
        assert box.proc is not None
        rss0 = _rss_kib(box.proc.pid)
        head = _call(hub.port, "GET", "/w/dump", timeout=600)["head"]
        started = time.monotonic()
        proxy.heal()
        while _call(box.port, "GET", "/w/status", timeout=60)["cursor"] < head:
            time.sleep(0.2)
        took = time.monotonic() - started
        rss1 = _rss_kib(box.proc.pid)
        print(
            f"bootstrap of {args.entities} entities of {args.dim}-d: searchable after "
            f"{took:.1f} s, {proxy.bytes_down / 1e6:.1f} MB on the wire, box RSS "
            f"+{(rss1 - rss0) / 1024:.0f} MiB ({rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MiB)"
        )
        return 0
    finally:
        box.stop()
        hub.stop()
        proxy.close()


def converge(args: argparse.Namespace) -> int:
    """Every box partitioned, `--pending` creates made at each, then all links heal: the
    time until each box has pushed everything and applied everything the others made."""
    from tests.support.proxy import Proxy

    work = Path(args.dir or f"/tmp/fleet-conv-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    tokens = [f"conv-token-{i}-0123456789abcdef" for i in range(args.boxes)]
    (work / "hub").mkdir(exist_ok=True, mode=0o700)
    hub = Proc(["hub", "--data", str(work / "hub"), "--tokens", ",".join(tokens)],
               _free_port(), work / "hub.log")  # fmt: skip
    proxies: list[Proxy] = []
    boxes: list[Proc] = []
    try:
        hub.start()
        for i in range(args.boxes):
            proxies.append(Proxy(hub.port))
            d = work / f"box{i}"
            d.mkdir(exist_ok=True, mode=0o700)
            argv = ["box", "--data", str(d), "--upstream", proxies[i].url, "--token", tokens[i]]
            boxes.append(Proc(argv, _free_port(), work / f"box{i}.log"))
            boxes[-1].start()
        for p in proxies:
            p.block()
        for i, b in enumerate(boxes):
            for j in range(args.pending):
                _call(b.port, "POST", "/w/create", {"seed": i * 10**6 + j, "key": f"b{i}-{j}"})
        pending = [_call(b.port, "GET", "/w/status")["pending"] for b in boxes]
        total = args.pending * args.boxes
        started = time.monotonic()
        for p in proxies:
            p.heal()
        done: dict[int, float] = {}
        while len(done) < len(boxes) and time.monotonic() - started < 600:
            for i, b in enumerate(boxes):
                if i in done:
                    continue
                s = _call(b.port, "GET", "/w/status", timeout=60)
                if s["pending"] == 0 and s["cursor"] >= total:
                    done[i] = time.monotonic() - started
            time.sleep(0.05)
        times = sorted(done.values())
        print(
            f"{args.boxes} boxes with {min(pending)}-{max(pending)} pending changes each "
            "after a partition: "
            f"converged (all {total} entities everywhere) p50 {times[len(times) // 2]:.1f} s, "
            f"max {times[-1]:.1f} s"
        )
        return 0 if len(done) == len(boxes) else 1
    finally:
        for p in [hub, *boxes]:
            p.stop()
        for px in proxies:
            px.close()


def idle(args: argparse.Namespace) -> int:
    """A synced box with nothing to do: CPU it burns and requests it makes per minute."""
    work = Path(args.dir or f"/tmp/fleet-idle-{os.getpid()}")
    for sub in ("hub", "box"):
        (work / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    token = "idle-token-0123456789abcdef"
    hub = Proc(["hub", "--data", str(work / "hub"), "--tokens", token], _free_port(),
               work / "hub.log")  # fmt: skip
    box = Proc(["box", "--data", str(work / "box"), "--upstream", f"http://127.0.0.1:{hub.port}",
                "--token", token], _free_port(), work / "box.log")  # fmt: skip
    os.environ["FLEET_SIM_LONG_POLL_S"] = "30"  # the product default, not the fault run's 2 s
    try:
        hub.start()
        box.start()
        assert box.proc is not None
        time.sleep(5)  # first contact done
        cpu0, req0 = _cpu_s(box.proc.pid), _call(box.port, "GET", "/w/status")["requests"]
        time.sleep(args.seconds)
        cpu1, req1 = _cpu_s(box.proc.pid), _call(box.port, "GET", "/w/status")["requests"]
        minutes = args.seconds / 60
        print(
            f"idle box over {args.seconds:.0f} s: {100 * (cpu1 - cpu0) / args.seconds:.2f} % of "
            f"a core, {(req1 - req0) / minutes:.1f} requests/min to the hub"
        )
        return 0
    finally:
        box.stop()
        hub.stop()


def fanout(args: argparse.Namespace) -> int:
    """`--boxes` long-polling readers parked at one hub; one push: how long until each
    reader has the change. The readers share one token (the point is the fan-out)."""
    import aiohttp
    import numpy as np

    from edge.store.hlc import Hlc, wall_ms
    from edge.sync.codec import PushBatch, decode_feed
    from edge.sync.link import HttpLink
    from edge.sync.record import Meta, Record, Vector, Versioned

    work = Path(args.dir or f"/tmp/fleet-fanout-{os.getpid()}")
    (work / "hub").mkdir(parents=True, exist_ok=True, mode=0o700)
    token = "fanout-token-0123456789abcdef"
    hub = Proc(["hub", "--data", str(work / "hub"), "--tokens", token], _free_port(),
               work / "hub.log")  # fmt: skip
    url = f"http://127.0.0.1:{hub.port}"

    async def main() -> list[float]:
        got: list[float] = []
        conn = aiohttp.TCPConnector(limit=0)
        headers = {"Authorization": f"Bearer {token}"}
        params = {"instances": INSTANCE, "fingerprint": FINGERPRINT, "after": "0", "wait": "60"}
        async with aiohttp.ClientSession(connector=conn, headers=headers) as s:

            async def reader() -> None:
                while True:
                    async with s.get(url + "/sync/v1/feed", params=params,
                                     timeout=aiohttp.ClientTimeout(total=120)) as r:  # fmt: skip
                        page = decode_feed(await r.read())
                    if page.records:
                        got.append(time.monotonic())
                        return

            tasks = [asyncio.create_task(reader()) for _ in range(args.boxes)]
            await asyncio.sleep(args.settle_s)  # every reader parked at the hub
            stamp = Hlc(wall_ms(), 0, "fanout")
            vec = Vector.from_float32("M", "M", np.ones(DIM, np.float32) / DIM**0.5)
            rec = Record(
                "00000000-0000-7000-8000-000000000001", INSTANCE,
                meta=Versioned(stamp, Meta("", "k", "[]", 1)),
                expiry=Versioned(stamp, 32503680000),
                vectors=((FINGERPRINT, Versioned(stamp, vec)),),
            )  # fmt: skip
            link = HttpLink(url, token)
            t0 = time.monotonic()
            await link.push(PushBatch("fanout", [(1, rec)]))
            await link.close()
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
        return sorted(t - t0 for t in got)

    try:
        hub.start()
        lat = asyncio.run(main())
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
        print(
            f"fan-out to {len(lat)} long-polling readers: p50 {p(0.5):.2f} s, "
            f"p99 {p(0.99):.2f} s, max {lat[-1]:.2f} s"
        )
        return 0 if len(lat) == args.boxes else 1
    finally:
        hub.stop()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd")
    node = sub.add_parser("node", help="(internal) run one node")
    node.add_argument("role", choices=["hub", "box"])
    node.add_argument("--data", type=Path, required=True)
    node.add_argument("--port", type=int, required=True)
    node.add_argument("--tokens", default="")
    node.add_argument("--upstream", default="")
    node.add_argument("--token", default="")
    boot = sub.add_parser("bootstrap", help="measure an empty box loading a large hub")
    boot.add_argument("--entities", type=int, default=100_000)
    boot.add_argument("--dim", type=int, default=512)
    boot.add_argument("--seed", type=int, default=1)
    boot.add_argument("--dir", help="work folder (a seeded hub there is reused)")
    fan = sub.add_parser("fanout", help="measure one change reaching many long-polls")
    fan.add_argument("--boxes", type=int, default=1000)
    fan.add_argument("--settle-s", type=float, default=10)
    fan.add_argument("--dir")
    idl = sub.add_parser("idle", help="measure what an idle box costs")
    idl.add_argument("--seconds", type=float, default=120)
    idl.add_argument("--dir")
    conv = sub.add_parser("converge", help="measure convergence after a partition heals")
    conv.add_argument("--boxes", type=int, default=4)
    conv.add_argument("--pending", type=int, default=1000, help="writes at each box")
    conv.add_argument("--dir")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--boxes", type=int, default=4)
    p.add_argument("--ops", type=int, default=2000, help="writes attempted")
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs in all (hub included)")
    p.add_argument("--hub-kills", type=int, default=5)
    p.add_argument("--partitions", type=int, default=10)
    p.add_argument("--settle-s", type=float, default=300)
    p.add_argument("--dir", help="work folder (default: a new one under /tmp)")
    p.add_argument(
        "--hub-database",
        metavar="URL",
        help="keep the hub in PostgreSQL (postgresql://user:pw@host:port/db, an empty "
        "database) instead of SQLite; needs pip install 'edge-face[hub-postgres]'",
    )
    args = p.parse_args(argv)
    if args.hub_database:
        if not args.hub_database.startswith(("postgresql://", "postgres://")):
            p.error("--hub-database takes a postgresql://user:pw@host:port/dbname URL")
        os.environ[HUB_DATABASE_ENV] = args.hub_database  # the node processes inherit it
    if args.cmd == "node":
        args.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        if args.role == "hub":
            _node_hub(args.data, args.port, [t for t in args.tokens.split(",") if t])
        else:
            _node_box(args.data, args.port, args.upstream, args.token)
        return 0
    if args.cmd == "bootstrap":
        return bootstrap(args)
    if args.cmd == "converge":
        return converge(args)
    if args.cmd == "idle":
        return idle(args)
    if args.cmd == "fanout":
        return fanout(args)
    if args.hub_kills > args.kills:
        p.error("--hub-kills is part of --kills")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
