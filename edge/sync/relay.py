"""A site hub that is itself a box of a central hub: the relay between the two hub stores.

A hub configured with `sync.upstream` (and `sync.token`) relays, with the same /sync/v1
protocol a box speaks:

- up: its own feed (what its boxes and its gallery pushed), in feed order, pushed to the
  central hub as one origin whose sequence numbers are the site feed's. The central hub's
  acknowledgement is the cursor, so a restarted relay resumes where the central hub
  stands (and a central hub with a new epoch, which acknowledges nothing, gets everything);
- down: the central hub's feed merged into the site store as the origin
  `upstream:<central epoch>`, whose acked sequence (saved in the same transaction as the
  merge) is the cursor; a new central epoch starts a new origin, so it is pulled whole.

No echo loop: a record coming back the other way merges to the state already stored,
which moves no feed sequence (hub store contract 1), so it travels at most once more
and stops. Origins stay tracked per record (the clock stamps name the writing replica).
Only the site's model fingerprint is relayed (deletes reach every model), as for a box.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from edge.config import SyncConfig
from edge.sync.codec import PushBatch
from edge.sync.hubstore import HubStore
from edge.sync.link import FeedNotifier, HubLink, LocalLink
from edge.timefmt import iso_utc

log = logging.getLogger("edge.sync.relay")

#: the origin name of a site hub's relayed feed at the central hub
RELAY_ORIGIN = "relay"


class HubRelay:
    def __init__(
        self,
        site: HubStore,
        notifier: FeedNotifier,
        upstream: HubLink,
        instances: Sequence[str],
        fingerprint: str,
        settings: SyncConfig,
    ) -> None:
        self.site = site
        self.local = LocalLink(site, notifier=notifier)
        self.upstream = upstream
        self.instances = list(instances)
        self.fingerprint = fingerprint
        self.settings = settings
        self._up: int | None = None  # site feed sequence the central hub holds
        self._up_epoch = ""  # the central hub's epoch when `_up` was learnt
        self._down_epoch = ""  # the central hub's epoch
        self._down_next = 0  # central feed cursor (past records of other models too)
        self.pushed = self.pulled = 0
        self.last_success: float | None = None
        self.last_error = ""

    async def run(self) -> None:
        """Relay both ways until cancelled; hub trouble is logged and retried with back-off."""
        await asyncio.gather(self._loop("up", self.up_once), self._loop("down", self.down_once))

    async def _loop(self, name: str, once: Any) -> None:
        delay = self.settings.retry_min_s
        while True:
            try:
                await once()
                self.last_success, self.last_error = time.time(), ""
                delay = self.settings.retry_min_s
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the central hub is away or refused: retry, report
                self.last_error = f"{name}: {e}"
                log.warning("sync relay %s failed (retrying in %.1fs): %s", name, delay, e)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, self.settings.retry_max_s)

    async def up_once(self) -> None:
        """Push the next page of the site feed to the central hub (waits for news)."""
        if self._up is None:  # where the central hub stands: an empty push answers it
            first = await self.upstream.push(PushBatch(RELAY_ORIGIN, []))
            self._up, self._up_epoch = first.acked, first.epoch
        after = self._up
        page = await self.local.feed(
            self.instances, self.fingerprint, after, self.settings.push_batch,
            self.settings.long_poll_s,
        )  # fmt: skip
        if page.head < after:  # the site store was restored from an older copy
            self._up = 0
            return
        if page.records:
            ack = await self.upstream.push(PushBatch(RELAY_ORIGIN, list(page.records)))
            self.pushed += len(page.records)
            if ack.epoch != self._up_epoch:  # a central hub with new data: push it all
                self._up, self._up_epoch = 0, ack.epoch
                return
        self._up = page.next

    async def down_once(self) -> None:
        """Merge the next page of the central feed into the site store (long-polls)."""
        if not self._down_epoch:  # learn the central epoch (one record at most)
            first = await self.upstream.feed(self.instances, self.fingerprint, 0, 1, 0)
            self._down_epoch, self._down_next = first.epoch, 0
        origin = f"upstream:{self._down_epoch}"
        after = max(self._down_next, await asyncio.to_thread(self.site.acked, origin))
        page = await self.upstream.feed(
            self.instances, self.fingerprint, after, self.settings.pull_batch,
            self.settings.long_poll_s,
        )  # fmt: skip
        if page.epoch != self._down_epoch or page.head < after:  # restored or new central
            self._down_epoch = ""
            return
        if page.records:
            await self.local.push(PushBatch(origin, list(page.records)))
            self.pulled += len(page.records)
        self._down_next = page.next

    def report(self) -> dict[str, Any]:
        return {
            "upstreamEpoch": self._down_epoch or None,
            "upCursor": self._up,
            "downCursor": self._down_next,
            "pushed": self.pushed,
            "pulled": self.pulled,
            "lastSuccess": None
            if self.last_success is None
            else iso_utc(datetime.fromtimestamp(self.last_success, tz=timezone.utc)),
            "lastError": self.last_error or None,
        }

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.upstream.close()
