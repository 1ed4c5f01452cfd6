"""A hub configured with `sync.hub_serves_api: true` loads the models and answers the face
API like a box (real `edge-face serve` processes): an enrolment made at the hub (a head
office enrolling staff) is found by a search at a box, and a delete there erases it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.sync.hub import token_hash
from tests.support.faces import FACES
from tests.support.images import pic
from tests.sync.test_fleet import INSTANCE, Node, eventually, write_cfg

pytestmark = pytest.mark.slow

TOKEN = "api-hub-box-token-0123456789abcdef"


@pytest.fixture
def pair(tmp_path: Path, model_dir: Path) -> Iterator[tuple[Node, Node]]:
    hub = Node("hub", write_cfg(tmp_path / "hub" / "edge.yaml", model_dir, {
        "role": "hub", "hub_serves_api": True,
        "boxes": [{"id": "box-a", "token_sha256": [token_hash(TOKEN)], "instances": [INSTANCE]}],
    }, "hub"), tmp_path / "hub.log")  # fmt: skip
    box = Node("box-a", write_cfg(tmp_path / "box" / "edge.yaml", model_dir, {
        "upstream": f"http://127.0.0.1:{hub.port}", "token": TOKEN, "long_poll_s": 5,
        "retry_min_s": 0.2, "retry_max_s": 1.0,
    }, "box-a"), tmp_path / "box.log")  # fmt: skip
    try:
        hub.start()
        box.start()
        yield hub, box
    finally:
        box.stop()
        hub.stop()


def test_an_enrolment_at_a_hub_that_serves_the_api_reaches_the_box(
    pair: tuple[Node, Node], testdata: Path
) -> None:
    hub, box = pair
    assert "models warmed up" in hub.log.read_text()
    fbi = testdata / "faces_by_identity"
    uuid = hub.enrol(pic(fbi / "elon_musk", "1"), "musk-head-office")
    eventually(lambda: uuid in box.found(pic(fbi / "elon_musk", "2")), why="box finds it")
    assert uuid in hub.found(pic(fbi / "elon_musk", "2"))
    assert hub.call("DELETE", f"{FACES}/{uuid}")[0] == 204
    eventually(lambda: not box.has(uuid), why="the hub's delete erases it at the box")
