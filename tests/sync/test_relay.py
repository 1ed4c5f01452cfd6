"""The site hub's relay between two real hub stores over real HTTP on loopback: up and
down, idempotent, no echo, and a central hub with new data (new epoch) gets it all."""

from __future__ import annotations

from pathlib import Path

from edge.config import SyncConfig
from edge.sync.codec import PushBatch
from edge.sync.hub import Hub
from edge.sync.hub_sqlite import SqliteHubStore
from edge.sync.link import FeedNotifier, HttpLink
from edge.sync.relay import HubRelay
from tests.sync.test_hub_http import TOKEN_A, TOKEN_B, hub_url, rec

__all__ = ["hub_url"]  # the central hub (a pytest fixture of test_hub_http)

CFG = SyncConfig(long_poll_s=0, retry_min_s=0.1, retry_max_s=0.5)


async def test_relay_up_down_no_echo_and_a_new_central_epoch(
    hub_url: tuple[str, Hub], tmp_path: Path
) -> None:
    url, central = hub_url
    site = SqliteHubStore(tmp_path / "site.sqlite3")
    up = HttpLink(url, TOKEN_A)  # the site hub is box-a at the central hub
    relay = HubRelay(site, FeedNotifier(), up, ["inst-a"], "fp", CFG)
    other = HttpLink(url, TOKEN_B)
    try:
        site.push("site-box", [(1, rec("u-up"))])  # a box of the site enrolled
        await relay.up_once()
        assert central.store.get("u-up") == site.get("u-up")
        await other.push(PushBatch("b", [(1, rec("u-down"))]))  # enrolled elsewhere
        await relay.down_once()
        await relay.down_once()
        assert site.get("u-down") == central.store.get("u-down")
        # The record that came down goes up once more, merges unchanged and stops there.
        heads = central.store.head(), site.head()
        for _ in range(3):
            await relay.up_once()
            await relay.down_once()
        assert (central.store.head(), site.head()) == heads
        # A resent page changes nothing either (idempotent by origin + site sequence).
        relay._up = 0
        await relay.up_once()
        assert central.store.head() == heads[0]
        # The central hub loses its data (a new database: new epoch): the relay pushes all.
        fresh = SqliteHubStore(tmp_path / "central2.sqlite3")
        old, central.store = central.store, fresh
        old.close()
        site.push("site-box", [(2, rec("u-late"))])
        await relay.up_once()  # sees the new epoch in the ack: starts over
        await relay.up_once()
        assert {u for u in ("u-up", "u-down", "u-late") if fresh.get(u) is not None} == {
            "u-up", "u-down", "u-late"
        }  # fmt: skip
        assert relay.report()["pushed"] >= 4 and relay.report()["lastError"] is None
    finally:
        await relay.close()
        await other.close()
        site.close()
