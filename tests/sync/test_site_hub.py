"""A site hub that is itself a box of a central hub, as real `edge-face serve` processes:
central hub <- site hub <- box. An enrolment at the box reaches the central hub; a delete
at the central hub erases it at the box; nothing echoes back and forth afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.sync.hub import token_hash
from tests.support.faces import FACES
from tests.support.images import pic
from tests.sync.test_fleet import INSTANCE, Node, eventually, write_cfg

pytestmark = pytest.mark.slow

SITE_TOKEN = "site-hub-token-0123456789abcdef"
BOX_TOKEN = "site-box-token-0123456789abcdef"
FAST = {"long_poll_s": 5, "retry_min_s": 0.2, "retry_max_s": 1.0}


@pytest.fixture
def chain(tmp_path: Path, model_dir: Path) -> Iterator[tuple[Node, Node, Node]]:
    central = Node("central", Path(), tmp_path / "central.log")
    site = Node("site", Path(), tmp_path / "site.log")
    central.cfg = write_cfg(tmp_path / "central" / "edge.yaml", model_dir, {
        "role": "hub",
        "boxes": [{"id": "site-1", "token_sha256": [token_hash(SITE_TOKEN)],
                   "instances": [INSTANCE]}],
    }, "central")  # fmt: skip
    site.cfg = write_cfg(tmp_path / "site" / "edge.yaml", model_dir, {
        "role": "hub", "upstream": f"http://127.0.0.1:{central.port}", "token": SITE_TOKEN,
        "boxes": [{"id": "box-a", "token_sha256": [token_hash(BOX_TOKEN)],
                   "instances": [INSTANCE]}], **FAST,
    }, "site")  # fmt: skip
    box = Node("box-a", write_cfg(tmp_path / "box" / "edge.yaml", model_dir, {
        "upstream": f"http://127.0.0.1:{site.port}", "token": BOX_TOKEN, **FAST,
    }, "box-a"), tmp_path / "box.log")  # fmt: skip
    nodes = (central, site, box)
    try:
        for n in nodes:
            n.start()
        yield nodes
    finally:
        for n in reversed(nodes):
            n.stop()


def test_enrol_at_a_box_reaches_the_central_hub_and_a_central_delete_reaches_the_box(
    chain: tuple[Node, Node, Node], testdata: Path
) -> None:
    central, site, box = chain
    uuid = box.enrol(pic(testdata / "faces_by_identity" / "ben_affleck", "1"), "affleck")
    took = eventually(lambda: central.has(uuid), why="box -> site hub -> central hub")
    print(f"\nenrol at a box -> at the central hub through a site hub: {took:.2f} s")
    assert site.has(uuid)
    relay = site.sync_status()["relay"]
    assert relay["lastError"] is None and relay["pushed"] >= 1, relay

    assert central.call("DELETE", f"{FACES}/{uuid}")[0] == 204
    took = eventually(lambda: not box.has(uuid), why="central delete -> site hub -> box")
    print(f"delete at the central hub -> gone at the box: {took:.2f} s")
    assert not site.has(uuid) and not central.has(uuid)

    # No echo loop: once settled, neither hub's feed moves any more.
    def heads() -> tuple[int, int]:
        return central.sync_status()["hub"]["head"], site.sync_status()["hub"]["head"]

    eventually(lambda: box.sync_status()["box"]["pending"] == 0, why="box outbox drained")
    time.sleep(3)
    before = heads()
    time.sleep(3)
    assert heads() == before, "the hubs keep relaying the same changes to each other"
    # The relay is counted once at the central hub as one origin of the site hub.
    assert central.sync_status()["hub"]["boxes"][0]["id"] == "site-1"
