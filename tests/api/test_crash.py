"""SIGKILL of a real `edge-face serve` while clients enrol: no acknowledged write is lost.

A 201 is only sent after the store committed (WAL, synchronous=FULL), so every uuid a client
saw acknowledged must survive the kill, be listed and be found by search after a restart on
the same data dir; rows the server wrote but never acknowledged may exist, but whole (every
listed entity is searchable, i.e. has its vector).
"""

from __future__ import annotations

import http.client
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.faces import FACES
from tests.support.images import b64
from tests.support.net import free_port, json_call
from tests.support.servers import KEY_A, serve_process, write_serve_config

WRITERS = 4
KILL_AFTER_ACKS = 24


def call(port: int, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
    return json_call(port, method, path, body, key=KEY_A, timeout=timeout)


class Served:
    def __init__(self, cfg: Path, port: int, log: Path) -> None:
        self.port = port
        self.proc = serve_process(cfg, port, log, append=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()[-3000:]
            try:
                if call(self.port, "GET", "/readyz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("server not ready:\n" + log.read_text()[-3000:])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


@pytest.fixture
def config(tmp_path: Path, model_dir: Path) -> Iterator[tuple[Path, Path]]:
    cfg = write_serve_config(tmp_path, model_dir, "crash", queue_limit=64)
    yield cfg, tmp_path / "serve.log"


def test_sigkill_mid_enrolment_loses_no_acknowledged_entity(
    config: tuple[Path, Path], testdata: Path
) -> None:
    cfg, log = config
    fbi = testdata / "faces_by_identity"
    photos = [
        b64(p)
        for p in (
            fbi / "barack_obama" / "1.jpg",
            fbi / "angelina_jolie" / "1.jpg",
            testdata / "awkward" / "obama_240p.jpg",
            fbi / "elon_musk" / "1.jpg",
        )
    ]
    port = free_port()
    server = Served(cfg, port, log)
    acked: list[str] = []
    attempts = [0]
    lock = threading.Lock()
    killed = threading.Event()

    def writer(n: int) -> None:
        i = 0
        while not killed.is_set():
            body = {
                "model": "EDGE_FACE_V1",
                "image": {"data": photos[(n + i) % len(photos)]},
                "collection": "crash",
                "key": f"w{n}-{i}",
                "metadata": [{"name": "writer", "type": "integer", "value": n}],
            }
            i += 1
            with lock:
                attempts[0] += 1
            try:
                status, out = call(port, "POST", FACES, body)
            except (OSError, http.client.HTTPException):
                continue  # the server died under us: this one was never acknowledged
            if status == 201:
                with lock:
                    acked.append(out["uuid"])

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(WRITERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 240
    while len(acked) < KILL_AFTER_ACKS and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # SIGKILL with writes in flight
    killed.set()
    for t in threads:
        t.join(60)
    assert len(acked) >= KILL_AFTER_ACKS, "writers were too slow"
    print(f"\nacknowledged {len(acked)} of {attempts[0]} attempts before SIGKILL")

    server = Served(cfg, port, log)  # same data dir
    try:
        listed: list[dict] = []
        after = ""
        while True:
            q = f"{FACES}?collection=crash&limit=1000" + (f"&after={after}" if after else "")
            status, page = call(port, "GET", q)
            assert status == 200
            listed += page["entities"]
            after = page["nextAfter"]
            if not after:
                break
        uuids = {e["uuid"] for e in listed}
        assert set(acked) <= uuids, set(acked) - uuids
        assert len(uuids) <= attempts[0]
        for e in listed:  # whole rows: every field as written
            assert e["collection"] == "crash" and e["key"].startswith("w")
            assert e["metadata"][0]["name"] == "writer"
        # every row (acknowledged or not) carries its vector: search finds all of them
        found: set[str] = set()
        for data in photos:
            body = {
                "model": "EDGE_FACE_V1",
                "image": {"data": data},
                "collection": "crash",
                "maxEntities": 1000,
            }
            status, out = call(port, "POST", f"{FACES}/search", body)
            assert status == 200, out
            found |= {h["uuid"] for h in out["entitiesFound"]}
        assert found == uuids
        # and the server keeps taking writes after recovery
        status, _ = call(
            port, "POST", FACES, {"model": "EDGE_FACE_V1", "image": {"data": photos[0]}}
        )
        assert status == 201
    finally:
        server.kill()
    db = sqlite3.connect(str(cfg.parent / "data" / "edge.sqlite3"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
