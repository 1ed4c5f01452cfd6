"""Fleet sync over a real mosquitto: a hub without models and a box, both real `edge-face
serve` processes with MQTT on. The box's retained status carries its sync state; the hub
publishes a retained head doorbell when its feed moves, which wakes a box out of a long
retry back-off to pull at once; changes applied by sync reach `events/entity` on the hub
and on the box as local ones do."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.sync.hub import token_hash
from tests.support.broker import Broker, Subscriber
from tests.support.faces import FACES
from tests.support.images import pic
from tests.support.servers import KEY_A
from tests.sync.test_fleet import INSTANCE, Node, eventually

pytestmark = pytest.mark.slow

TOKEN = "doorbell-token-0123456789abcdef"
DOORBELL = "edge-face/hub/sync/head"
#: the box's retry back-off after a failure is 60-120 s: only the doorbell ends it sooner
BACK_OFF_S = 120


def write_cfg(path: Path, model_dir: Path, device: str, port: int, sync: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "device_id": device,
        "data_dir": str(path.parent / "data"),
        "models": {"dir": str(model_dir)},
        "server": {"host": "127.0.0.1", "api_keys": [{"key": KEY_A, "instance": INSTANCE}]},
        "mqtt": {"enabled": True, "port": port, "reconnect_min_s": 0.2, "reconnect_max_s": 1,
                 "status_interval_s": 1},
        "sync": {"enabled": True, "doorbell_topic": DOORBELL, **sync},
    }))  # fmt: skip
    return path


def seen(sub: Subscriber, topic: str, pred: Callable[[Any], bool], timeout: float = 60) -> Any:
    """The first message on `topic` (so far or within `timeout`) whose body passes `pred`."""
    found: list[Any] = []

    def look() -> bool:
        found[:] = [b for t, b, _, _ in list(sub.history) if t == topic and pred(b)]
        return bool(found)

    eventually(look, timeout, why=f"a matching message on {topic}")
    return found[0]


@pytest.fixture
def fleet(tmp_path: Path, model_dir: Path, broker: Broker) -> Iterator[tuple[Node, Node]]:
    hub = Node("hub", Path(), tmp_path / "hub.log")
    hub.cfg = write_cfg(tmp_path / "hub" / "edge.yaml", model_dir, "hub", broker.port, {
        "role": "hub",
        "boxes": [{"id": "box-a", "token_sha256": [token_hash(TOKEN)], "instances": [INSTANCE]}],
    })  # fmt: skip
    box = Node("box-a", Path(), tmp_path / "box.log")
    box.cfg = write_cfg(tmp_path / "box" / "edge.yaml", model_dir, "box-a", broker.port, {
        "upstream": f"http://127.0.0.1:{hub.port}", "token": TOKEN, "long_poll_s": 5,
        "retry_min_s": BACK_OFF_S, "retry_max_s": BACK_OFF_S,
    })  # fmt: skip
    try:
        hub.start()
        box.start()
        yield hub, box
    finally:
        box.stop()
        hub.stop()


def test_sync_state_doorbell_and_remote_entity_events_over_mqtt(
    fleet: tuple[Node, Node], broker: Broker, testdata: Path
) -> None:
    hub, box = fleet
    sub = Subscriber(broker.port, ["edge-face/#"]).connect()
    try:
        # The box's retained status carries its sync state.
        status = seen(sub, "edge-face/box-a/status",
                      lambda b: (b.get("sync") or {}).get("lastSuccess") is not None)  # fmt: skip
        assert status["sync"]["role"] == "box" and status["sync"]["state"] == "ok", status
        assert {"pending", "pullLag", "lastError", "galleryStale"} <= set(status["sync"])

        uuid = box.enrol(pic(testdata / "faces_by_identity" / "barack_obama", "1"), "obama")
        # The hub's gallery applies it from the feed: an entity event there, like a local one.
        made = seen(sub, "edge-face/hub/events/entity", lambda b: b["entity"]["uuid"] == uuid)
        assert made["action"] == "created" and made["entity"]["key"] == "obama", made
        assert made["entity"]["instance"] == INSTANCE and "vector" not in made["entity"]
        # ...and its feed head moved: the retained doorbell says so.
        bell = seen(sub, DOORBELL, lambda b: b["head"] >= 1)
        assert bell["schema"] == "edge-face.sync-head/1" and bell["epoch"], bell
        late = Subscriber(broker.port, [DOORBELL]).connect()  # a box that connects later
        try:
            _, kept, _, was_retained = late.wait_for(lambda t, _b: t == DOORBELL, timeout=10)
            assert was_retained and kept["head"] >= bell["head"]
        finally:
            late.close()
        eventually(lambda: box.sync_status()["box"]["pending"] == 0, why="the box's push acked")

        # The hub goes away: the box's next call fails and it backs off for 60-120 s.
        hub.stop()
        eventually(lambda: box.sync_status()["box"]["lastError"] is not None, timeout=60,
                   why="the box notices the hub is gone")  # fmt: skip
        failed_at = time.monotonic()
        hub.start()
        # A delete at the hub (no models needed) moves its head; the doorbell wakes the box.
        assert hub.call("DELETE", f"{FACES}/{uuid}")[0] == 204
        took = eventually(
            lambda: not box.has(uuid),
            timeout=45,
            why="the doorbell ends the back-off and the box pulls the delete",
        )
        assert time.monotonic() - failed_at < BACK_OFF_S / 2, "the back-off was not cut short"
        print(f"\ndelete at the hub -> gone at the backed-off box via the doorbell: {took:.2f} s")
        # The delete the box applied from the hub reaches MQTT as a local delete would.
        gone = seen(sub, "edge-face/box-a/events/entity",
                    lambda b: b["entity"]["uuid"] == uuid and b["action"] == "deleted")  # fmt: skip
        assert gone["deviceId"] == "box-a" and gone["entity"]["instance"] == INSTANCE
    finally:
        sub.close()
