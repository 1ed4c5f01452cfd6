"""A fleet of real `edge-face serve` processes on loopback: one hub, two boxes, each with its
own data dir, every box link through a TCP proxy the test can cut, reset or make swallow
the hub's answers. A real photo enrolled at box A is found by a search at box B; a delete
at A erases it at B, and a box that was offline cannot bring it back; both sides of a
partition keep working and converge when it heals; a hub SIGKILLed after committing a
push it never acknowledged takes the resend without duplicating anything."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.sync.hub import token_hash
from tests.support.faces import FACES
from tests.support.images import img, pic
from tests.support.net import free_port, json_call
from tests.support.paths import REPO_ROOT
from tests.support.proxy import Proxy
from tests.support.servers import KEY_A, serve_process

pytestmark = pytest.mark.slow

INSTANCE = "fleet"
TOKENS = {"box-a": "fleet-token-a-0123456789abcdef", "box-b": "fleet-token-b-0123456789abcdef"}


@dataclass
class Node:
    name: str
    cfg: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        self.proc = serve_process(self.cfg, self.port, self.log, append=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if self.call("GET", "/readyz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready:\n" + self.log.read_text()[-3000:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 60
    ) -> tuple[int, Any]:
        return json_call(self.port, method, path, body, key=KEY_A, timeout=timeout)

    def enrol(self, photo: Path, key: str) -> str:
        status, out = self.call(
            "POST", FACES,
            {"model": "EDGE_FACE_V1", "image": img(photo), "collection": "fleet", "key": key},
        )  # fmt: skip
        assert status == 201, out
        return str(out["uuid"])

    def found(self, photo: Path) -> list[str]:
        status, out = self.call(
            "POST", FACES + "/search",
            {"model": "EDGE_FACE_V1", "image": img(photo), "collection": "fleet",
             "threshold": 0.5},
        )  # fmt: skip
        assert status == 200, out
        return [e["uuid"] for e in out["entitiesFound"]]

    def has(self, uuid: str) -> bool:
        status, _ = self.call("GET", f"{FACES}/{uuid}")
        assert status in (200, 404)
        return status == 200

    def sync_status(self) -> dict[str, Any]:
        status, out = self.call("GET", "/sync/v1/status")
        assert status == 200, out
        return dict(out)


@dataclass
class Fleet:
    hub: Node
    a: Node
    b: Node
    links: dict[str, Proxy]

    def nodes(self) -> tuple[Node, Node, Node]:
        return self.hub, self.a, self.b


def write_cfg(path: Path, model_dir: Path, sync: dict[str, Any], device: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "device_id": device,
        "data_dir": str(path.parent / "data"),
        "models": {"dir": str(model_dir)},
        "server": {"host": "127.0.0.1", "api_keys": [{"key": KEY_A, "instance": INSTANCE}]},
        "sync": {"enabled": True, **sync},
    }))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    hub_cfg = write_cfg(root / "hub" / "edge.yaml", model_dir, {
        "role": "hub",
        "boxes": [{"id": n, "token_sha256": [token_hash(t)], "instances": [INSTANCE]}
                  for n, t in TOKENS.items()],
    }, "hub")  # fmt: skip
    hub = Node("hub", hub_cfg, root / "hub.log")
    links = {n: Proxy(hub.port) for n in TOKENS}
    boxes = [
        Node(n, write_cfg(root / n / "edge.yaml", model_dir, {
            "upstream": links[n].url, "token": TOKENS[n], "long_poll_s": 5,
            "retry_min_s": 0.2, "retry_max_s": 1.0,
        }, n), root / f"{n}.log")
        for n in TOKENS
    ]  # fmt: skip
    f = Fleet(hub, boxes[0], boxes[1], links)
    try:
        for node in f.nodes():
            node.start()
        yield f
    finally:
        for node in f.nodes():
            node.stop()
        for p in links.values():
            p.close()


def eventually(what: Callable[[], bool], timeout: float = 60, why: str = "") -> float:
    """Seconds until `what()` held; fails after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if what():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {why}")


def test_a_face_enrolled_at_box_a_is_found_at_box_b(fleet: Fleet, testdata: Path) -> None:
    fbi = testdata / "faces_by_identity"
    uuid = fleet.a.enrol(pic(fbi / "barack_obama", "1"), "obama")
    took = [eventually(lambda: uuid in fleet.b.found(pic(fbi / "barack_obama", "2")),
                       why="box B finds box A's enrolment")]  # fmt: skip
    # More samples for the latency figure (printed, not asserted: no timed tests).
    for person in ("ben_affleck", "elon_musk", "angelina_jolie", "alex_lacamoire") * 3:
        extra = fleet.a.enrol(pic(fbi / person, "1"), f"latency-{person}")
        start = time.monotonic()
        eventually(lambda u=extra: fleet.b.has(u), why="B receives it")  # type: ignore[misc]
        took.append(time.monotonic() - start)
        assert fleet.a.call("DELETE", f"{FACES}/{extra}")[0] == 204
    took.sort()
    p95 = took[min(len(took) - 1, int(0.95 * len(took)))]
    print(
        f"\nenrol at box A -> at box B: {len(took)} samples, p50 {took[len(took) // 2]:.2f} s,"
        f" p95 {p95:.2f} s, max {took[-1]:.2f} s"
    )
    assert fleet.hub.has(uuid)  # the hub's own gallery holds it too
    eventually(lambda: fleet.a.sync_status()["box"]["pending"] == 0, why="A's outbox drains")
    assert fleet.a.sync_status()["box"]["lastError"] is None
    assert fleet.b.sync_status()["box"]["galleryStale"] is False
    assert fleet.b.call("GET", "/readyz")[1] == {"ready": True, "gallery_stale": False}


def test_a_delete_reaches_every_box_and_a_stale_box_cannot_resurrect(
    fleet: Fleet, testdata: Path
) -> None:
    fbi = testdata / "faces_by_identity"
    uuid = fleet.a.enrol(pic(fbi / "angelina_jolie", "1"), "jolie")
    eventually(lambda: fleet.b.has(uuid), why="B receives the enrolment")
    fleet.links["box-b"].block()  # B goes offline and keeps its copy
    try:
        assert fleet.a.call("DELETE", f"{FACES}/{uuid}")[0] == 204
        eventually(lambda: not fleet.hub.has(uuid), why="the hub erases it")
        # Offline, B still serves (and edits) its stale copy.
        status, out = fleet.b.call("PATCH", f"{FACES}/{uuid}", {"key": "edited-offline"})
        assert status == 200, out
    finally:
        fleet.links["box-b"].heal()
    eventually(lambda: not fleet.b.has(uuid), why="B learns of the delete")
    assert uuid not in fleet.b.found(pic(fbi / "angelina_jolie", "2"))
    time.sleep(1)  # let B's push of its later edit reach the hub: it must change nothing
    for node in fleet.nodes():
        assert not node.has(uuid), node.name


def test_both_sides_of_a_partition_keep_working_and_converge(fleet: Fleet, testdata: Path) -> None:
    fbi = testdata / "faces_by_identity"
    for link in fleet.links.values():
        link.block()
    try:
        at_a = fleet.a.enrol(pic(fbi / "elon_musk", "1"), "musk")
        at_b = fleet.b.enrol(pic(fbi / "ben_affleck", "1"), "affleck")
        time.sleep(1)
        assert not fleet.b.has(at_a) and not fleet.a.has(at_b)  # really partitioned
        assert at_a in fleet.a.found(pic(fbi / "elon_musk", "2"))  # recognises offline
    finally:
        for link in fleet.links.values():
            link.heal()
    took = eventually(
        lambda: all(n.has(u) for n in fleet.nodes() for u in (at_a, at_b)),
        why="every node holds both sides' enrolments",
    )
    print(f"\nconvergence after the partition healed: {took:.2f} s")
    assert at_b in fleet.a.found(pic(fbi / "ben_affleck", "2"))


def test_a_hub_killed_after_commit_before_ack_takes_the_resend_idempotently(
    fleet: Fleet, testdata: Path
) -> None:
    fbi = testdata / "faces_by_identity"
    before = fleet.hub.sync_status()["hub"]
    fleet.links["box-a"].drop_answers()  # requests reach the hub, answers never come back
    try:
        uuid = fleet.a.enrol(pic(fbi / "alex_lacamoire", "2"), "alex")
        eventually(lambda: fleet.hub.sync_status()["hub"]["head"] > before["head"],
                   why="the hub commits the push")  # fmt: skip
        committed = fleet.hub.sync_status()["hub"]
        assert fleet.a.sync_status()["box"]["pending"] >= 1  # A never got the ack
        fleet.hub.kill()
        fleet.hub.start()  # same data dir and port
    finally:
        fleet.links["box-a"].heal()
    eventually(lambda: fleet.a.sync_status()["box"]["pending"] == 0, why="A's resend is acked")
    eventually(lambda: fleet.b.has(uuid), why="B receives it after the hub restart")
    after = fleet.hub.sync_status()["hub"]
    assert after["epoch"] == committed["epoch"]  # same data: no full re-push
    assert after["records"] == committed["records"]  # the resend duplicated nothing
    assert after["head"] == committed["head"]  # and moved no feed sequence


def test_sync_status_and_sync_now_commands_talk_to_the_running_box(fleet: Fleet) -> None:
    base = [sys.executable, "-m", "edge.cli", "sync"]
    common = ["--url", f"http://127.0.0.1:{fleet.a.port}", "--api-key", KEY_A]
    status = subprocess.run([*base, "status", *common], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert "pending changes:  0" in status.stdout and "last error:       -" in status.stdout
    now = subprocess.run([*base, "now", *common, "--json"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=120, check=False)  # fmt: skip
    assert now.returncode == 0, now.stderr
    doc = json.loads(now.stdout)
    assert doc["error"] is None and doc["box"]["lastSuccess"] and doc["box"]["pullLag"] == 0
    hub = subprocess.run([*base, "status", "--url", f"http://127.0.0.1:{fleet.hub.port}",
                          "--api-key", KEY_A], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert hub.returncode == 0 and "hub epoch" in hub.stdout and "box-a: lag 0" in hub.stdout
    wrong = subprocess.run([*base, "status", "--url", f"http://127.0.0.1:{fleet.a.port}",
                            "--api-key", "nope"], cwd=REPO_ROOT, capture_output=True,
                           text=True, timeout=120, check=False)  # fmt: skip
    assert wrong.returncode != 0 and "api-key refused" in wrong.stderr


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_the_hub_runs_without_models_and_refuses_the_face_api_saying_how(
    fleet: Fleet, testdata: Path
) -> None:
    """`role: hub` without `hub_serves_api` loads no model: ready, syncing, far lighter
    than a box; the face/liveness routes answer the contract's 503 naming the setting."""
    hub = fleet.hub
    assert hub.call("GET", "/readyz") == (200, {"ready": True, "gallery_stale": False})
    assert hub.call("GET", "/healthz")[0] == 200
    log = hub.log.read_text()
    assert "models warmed up" not in log and "runs on" not in log, log[-2000:]
    assert "models warmed up" in fleet.a.log.read_text()  # the same line a box does log
    photo = pic(testdata / "faces_by_identity" / "barack_obama", "1")
    live = sorted((testdata / "liveness" / "live").iterdir())[0]
    frame = {"index": 0, "type": "RGB", **img(live)}
    refused = [
        hub.call("POST", FACES, {"model": "EDGE_FACE_V1", "image": img(photo), "key": "x"}),
        hub.call("POST", FACES + "/search", {"model": "EDGE_FACE_V1", "image": img(photo)}),
        hub.call("POST", "/api/v1/liveness", {"model": "EDGE_LIVENESS_V1", "images": [frame]}),
        hub.call("GET", "/api/v1/models"),
    ]  # fmt: skip
    for status, body in refused:
        assert status == 503, body
        assert set(body) == {"code", "name", "message"}, body
        assert "sync.hub_serves_api: true" in body["message"], body
    # Sync still runs through it: what box A enrols reaches box B and the hub's gallery.
    uuid = fleet.a.enrol(photo, "obama-hub-without-models")
    eventually(lambda: fleet.b.has(uuid) and hub.has(uuid), why="synced through the hub")
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30)
    conn.request("GET", "/metrics", headers={"api-key": KEY_A})
    metrics = conn.getresponse()
    assert metrics.status == 200 and b"edge_sync_" in metrics.read()
    conn.close()
    assert hub.proc is not None and fleet.a.proc is not None
    hub_mb, box_mb = rss_mb(hub.proc.pid), rss_mb(fleet.a.proc.pid)
    print(f"\nRSS: hub without models {hub_mb:.0f} MB, box with models {box_mb:.0f} MB")
    assert hub_mb < box_mb / 2, (hub_mb, box_mb)
    assert fleet.a.call("DELETE", f"{FACES}/{uuid}")[0] == 204
