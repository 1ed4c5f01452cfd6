"""The box's sync worker: push the outbox, pull the hub's feed, apply, repeat.

One asyncio task per replica. It takes a store, the sync settings and a `HubLink`, and
nothing of the web app, so it can run as a component of any composition root. The box
keeps working while the hub is unreachable (every write lands in the local store and its
outbox first); the worker retries with doubling delays and catches up when the link
returns. Local writes wake it at once (a store listener), so an enrolment reaches the hub
without waiting for the long-poll to end.

Bookkeeping lives in the store's `sync_state`: `push_seq` (outbox rows delivered),
`cursor` (the hub feed sequence applied, saved in the same transaction as the records),
`epoch` (the hub's data id) and `scope` (the instances and model the cursor is for).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from edge.config import SyncConfig
from edge.metrics import REGISTRY
from edge.store.entities import Change, EntityStore
from edge.sync.codec import FeedPage, PushBatch
from edge.sync.digest import bucket_of, differing, digest
from edge.sync.link import HubLink, HubRefused, HubUnavailable
from edge.sync.record import Record
from edge.sync.replica import Applied, apply_pulled, record_of
from edge.timefmt import iso_utc

log = logging.getLogger("edge.sync")

PENDING = REGISTRY.gauge("edge_sync_pending_changes", "outbox changes not yet acknowledged")
OLDEST = REGISTRY.gauge(
    "edge_sync_oldest_pending_seconds", "age of the oldest unacknowledged outbox change"
)
LAST_OK = REGISTRY.gauge(
    "edge_sync_last_success_timestamp_seconds", "unix time of the last successful sync cycle"
)
LAG = REGISTRY.gauge("edge_sync_pull_lag", "hub feed sequences not yet applied here")
SKEW = REGISTRY.gauge(
    "edge_sync_clock_skew_seconds", "newest received stamp minus this clock (positive: ahead)"
)
APPLIED = REGISTRY.counter(
    "edge_sync_applied_total", "records sent to the hub (push) or changed here (pull)"
)
BOOTSTRAP = REGISTRY.gauge(
    "edge_sync_bootstrap_seconds", "how long the last load of the feed from the start took"
)
CONFLICTS = REGISTRY.counter(
    "edge_sync_conflicts_total", "pulled records merged with concurrent local changes"
)
REPAIRS = REGISTRY.counter(
    "edge_sync_repaired_buckets_total", "digest buckets that differed from the hub's"
)
REJECTED = REGISTRY.counter("edge_sync_rejected_total", "batches the hub refused, by reason")
ERRORS = REGISTRY.counter("edge_sync_errors_total", "failed sync cycles, by kind")


@dataclass
class SyncStatus:
    pending: int = 0
    oldest_pending_s: float = 0.0
    cursor: int = 0
    hub_head: int = 0
    epoch: str = ""
    last_success: float | None = None  # unix time
    last_error: str = ""
    last_error_at: float | None = None
    pushed: int = 0
    applied: int = 0
    rejected: int = 0
    conflicts: int = 0
    repaired: int = 0
    clock_skew_ms: int = 0


def sync_instances(
    settings_instances: Sequence[str] | None, key_instances: Sequence[str]
) -> list[str]:
    """The instances a replica syncs: configured, else those its api-keys serve."""
    chosen = list(settings_instances or key_instances or ["default"])
    return sorted(set(chosen))


class SyncWorker:
    """Replicates `store` (instances `instances`) through `link`."""

    def __init__(
        self,
        store: EntityStore,
        settings: SyncConfig,
        link: HubLink,
        instances: Sequence[str],
        *,
        name: str = "box",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.link = link
        self.instances = sorted(set(instances))
        self.name = name
        self._clock = clock
        self.status = SyncStatus()
        self._started = clock()
        # The first digest comparison runs one interval after start, not at every boot.
        self._last_repair = self._started
        self._boot_t0: float | None = None
        self._wake = asyncio.Event()
        self._bell = asyncio.Event()  # the hub's doorbell: also ends a retry back-off
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scope = f"{','.join(self.instances)}|{store.pack_fingerprint}"
        self._lock = asyncio.Lock()  # one cycle at a time (the loop, or `sync now`)
        store.add_listener(self._on_change)

    # Wake-ups ----------------------------------------------------------------------------
    def _on_change(self, change: Change) -> None:
        """Store listener (on the writing thread): a local write, push it now."""
        if change.remote:  # applied from the hub: nothing to push
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def ring(self, epoch: str, head: int) -> None:
        """The hub's MQTT doorbell (any thread): its feed is at `head`; when that is news
        (or the hub has a new epoch), pull now, even from a retry back-off."""
        s = self.status
        if head <= s.cursor and (not s.epoch or epoch == s.epoch):
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)
            loop.call_soon_threadsafe(self._bell.set)

    async def _back_off(self, seconds: float) -> None:
        """Sleep before a retry; the doorbell ends it early (the hub is back and moved)."""
        self._bell.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._bell.wait(), seconds)

    # One cycle -------------------------------------------------------------------------------
    def _state(self) -> dict[str, str]:
        return self.store.sync_state()

    async def push_pending(self) -> int:
        """Send every outbox change to the hub, in batches; prune what it acknowledged."""
        sent = 0
        while True:
            state = await asyncio.to_thread(self._state)
            after = int(state.get("push_seq", "0"))
            changes = await asyncio.to_thread(
                self.store.changes_since, after, self.settings.push_batch
            )
            if not changes:
                return sent
            wanted = [c for c in changes if c.op != "expire" and c.instance in self.instances]
            loaded = await asyncio.to_thread(self.store.sync_load, [c.entity_uuid for c in wanted])
            batch = [
                (c.seq, record_of(loaded[c.entity_uuid]))
                for c in wanted
                if c.entity_uuid in loaded  # expired and purged since: nothing to send
            ]
            last = changes[-1].seq
            if batch:
                ack = await self.link.push(PushBatch(self.store.hlc.origin, batch))
                self.status.epoch = ack.epoch
            # Delivered (or local-only: expiries, other instances): the outbox may forget.
            await asyncio.to_thread(self.store.set_sync_state, {"push_seq": str(last)})
            await asyncio.to_thread(self.store.prune_changes, last)
            sent += len(batch)
            self.status.pushed += len(batch)
            APPLIED.inc(len(batch), direction="push")

    async def _full_push(self) -> int:
        """Send everything held (rows and tombstones) with seq 0: first contact with a hub,
        or a hub whose data is new (restored from an old backup)."""
        after, sent = "", 0
        while True:
            items = await asyncio.to_thread(self.store.sync_export, after, self.settings.push_batch)
            if not items:
                return sent
            after = items[-1].uuid
            batch = [(0, record_of(it)) for it in items if it.instance in self.instances]
            if batch:
                await self.link.push(PushBatch(self.store.hlc.origin, batch))
                sent += len(batch)

    async def _fetch(self, wait_s: float) -> FeedPage:
        state = await asyncio.to_thread(self._state)
        fresh = state.get("scope") != self._scope
        cursor = 0 if fresh else int(state.get("cursor", "0"))
        if cursor == 0 and self._boot_t0 is None:
            self._boot_t0 = self._clock()  # loading the whole feed: a bootstrap
        page = await self.link.feed(
            self.instances, self.store.pack_fingerprint, cursor, self.settings.pull_batch, wait_s
        )
        # A hub behind this box's cursor was restored from an older copy: what it lost
        # must come back from the boxes, as for a new hub.
        behind = page.head < cursor
        if fresh or behind or state.get("epoch") != page.epoch:
            if state.get("epoch"):
                log.warning(
                    "sync: the hub's data changed (epoch %s -> %s, head %d, cursor %d): "
                    "sending what this box holds again and re-reading the feed",
                    state.get("epoch"),
                    page.epoch,
                    page.head,
                    cursor,
                )
            await self._full_push()
            await asyncio.to_thread(
                self.store.set_sync_state,
                {"epoch": page.epoch, "scope": self._scope, "cursor": "0"},
            )
            if cursor != 0:
                page = await self.link.feed(
                    self.instances, self.store.pack_fingerprint, 0, self.settings.pull_batch, 0
                )
        return page

    async def _apply(self, page: FeedPage) -> int:
        records: list[Record] = [r for _, r in page.records]
        if records:
            newest = max(s.ms for r in records for s in r.stamps())
            skew = newest - int(self._clock() * 1000)
            self.status.clock_skew_ms = skew
            SKEW.set(skew / 1000, peer=self.name)
        outcome = Applied()
        changed = await asyncio.to_thread(
            functools.partial(
                apply_pulled, self.store, records, {"cursor": str(page.next)}, outcome=outcome
            )
        )
        if outcome.conflicts:
            self.status.conflicts += outcome.conflicts
            CONFLICTS.inc(outcome.conflicts)
        self.status.cursor, self.status.hub_head = page.next, page.head
        if self._boot_t0 is not None and page.next >= page.head:
            BOOTSTRAP.set(self._clock() - self._boot_t0)
            self._boot_t0 = None
        self.status.epoch = page.epoch
        self.status.applied += changed
        APPLIED.inc(changed, direction="pull")
        LAG.set(max(0, page.head - page.next))
        return changed

    async def pull(self, wait_s: float = 0.0) -> int:
        """Apply feed pages until caught up (the first may long-poll); returns changes."""
        changed = 0
        page = await self._fetch(wait_s)
        while True:
            changed += await self._apply(page)
            if page.next >= page.head:
                return changed
            page = await self._fetch(0)

    async def repair(self) -> int:
        """Compare bucket digests with the hub and exchange the records of every bucket
        that differs (both ways: the merge sorts out who is behind). Returns how many
        buckets differed. Run after a full push and pull, so only real drift shows."""
        fp = self.store.pack_fingerprint
        mine = await asyncio.to_thread(self._local_digest)
        theirs = await self.link.digest(self.instances, fp)
        buckets = differing(mine, theirs)
        for b in buckets:
            records = await self.link.bucket(self.instances, fp, b)
            await asyncio.to_thread(apply_pulled, self.store, records, {})
            local = await asyncio.to_thread(self._local_bucket, b)
            if local:
                await self.link.push(PushBatch(self.store.hlc.origin, [(0, r) for r in local]))
        if buckets:
            log.warning("sync: repaired drift in %d of 256 digest buckets", len(buckets))
            REPAIRS.inc(len(buckets))
        self.status.repaired += len(buckets)
        self._last_repair = self._clock()
        return len(buckets)

    def _local_records(self) -> Iterator[Record]:
        after = ""
        while items := self.store.sync_export(after, 5000):
            after = items[-1].uuid
            yield from (record_of(it) for it in items if it.instance in self.instances)

    def _local_digest(self) -> dict[str, str]:
        return digest(self._local_records(), self.store.pack_fingerprint, self._clock())

    def _local_bucket(self, bucket: str) -> list[Record]:
        return [r for r in self._local_records() if bucket_of(r.uuid) == bucket]

    async def sync_now(self, *, repair: bool = True) -> None:
        """One full cycle (push everything, pull until caught up, and by default a digest
        comparison); raises on failure."""
        async with self._lock:
            await self.push_pending()
            await self.pull(0)
            if repair:
                await self.repair()
            self._succeeded()

    def _succeeded(self) -> None:
        self.status.last_success = self._clock()
        LAST_OK.set(self.status.last_success, peer=self.name)
        self.status.last_error = ""

    def _failed(self, e: Exception) -> None:
        self.status.last_error = str(e)
        self.status.last_error_at = self._clock()
        kind = "refused" if isinstance(e, HubRefused) else "unavailable"
        if isinstance(e, HubRefused):
            self.status.rejected += 1
            REJECTED.inc(reason=e.name)
        ERRORS.inc(kind=kind)

    async def refresh_metrics(self) -> None:
        state = await asyncio.to_thread(self._state)
        n, oldest = await asyncio.to_thread(
            self.store.change_backlog, int(state.get("push_seq", "0"))
        )
        self.status.pending = n
        self.status.oldest_pending_s = 0.0 if oldest is None else self._clock() - oldest.timestamp()
        PENDING.set(n)
        OLDEST.set(self.status.oldest_pending_s)

    # The loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Sync until cancelled; never raises for hub trouble (logs, retries, backs off)."""
        self._loop = asyncio.get_running_loop()
        delay = self.settings.retry_min_s
        first_failure = True
        while True:
            try:
                async with self._lock:
                    self._wake.clear()
                    if await self.push_pending():
                        self._succeeded()
                    await self.refresh_metrics()
                    every = self.settings.repair_interval_s
                    if every and self._clock() - self._last_repair >= every:
                        await self.repair()
                        self._succeeded()
                # The long-poll is the pull: it answers at once when the feed has news,
                # so an idle box makes one request per long_poll_s.
                await self._long_poll()
                delay, first_failure = self.settings.retry_min_s, True
            except asyncio.CancelledError:
                raise
            except (HubUnavailable, HubRefused) as e:
                self._failed(e)
                level = logging.WARNING if first_failure else logging.DEBUG
                log.log(level, "sync with the hub failed (retrying in %.1fs): %s", delay, e)
                first_failure = False
                with contextlib.suppress(Exception):
                    await self.refresh_metrics()
                await self._back_off(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, self.settings.retry_max_s)
            except Exception as e:  # a bug: keep the box serving, report it
                self._failed(e)
                log.exception("sync cycle failed")
                await asyncio.sleep(self.settings.retry_max_s)

    async def _long_poll(self) -> None:
        """Wait at the hub for new records, or until a local write needs pushing."""
        if self._wake.is_set():
            return
        fetch = asyncio.ensure_future(self._fetch(self.settings.long_poll_s))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait({fetch, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if not fetch.done():
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, HubUnavailable, HubRefused):
                    await fetch
        if fetch in done:
            page = fetch.result()
            async with self._lock:
                await self._apply(page)
                if page.next < page.head:
                    await self.pull(0)
                self._succeeded()

    # Reporting -----------------------------------------------------------------------------
    @property
    def stale(self) -> bool:
        limit = self.settings.stale_after_s
        if limit <= 0:
            return False
        since = self.status.last_success or self._started
        return self._clock() - since > limit

    def report(self) -> dict[str, Any]:
        """The status document (reads the outbox: call it off the event loop)."""
        s = self.status
        push_seq = int(self.store.sync_state().get("push_seq", "0"))
        n, oldest = self.store.change_backlog(push_seq)
        s.pending = n
        s.oldest_pending_s = 0.0 if oldest is None else max(0.0, self._clock() - oldest.timestamp())
        return {
            "role": "box",
            "name": self.name,
            "origin": self.store.hlc.origin,
            "instances": self.instances,
            "fingerprint": self.store.pack_fingerprint,
            "epoch": s.epoch,
            "cursor": s.cursor,
            "hubHead": s.hub_head,
            "pullLag": max(0, s.hub_head - s.cursor),
            "pending": s.pending,
            "oldestPendingSeconds": round(s.oldest_pending_s, 3),
            "lastSuccess": None if s.last_success is None else _iso(s.last_success),
            "lastError": s.last_error or None,
            "lastErrorAt": None if s.last_error_at is None else _iso(s.last_error_at),
            "pushed": s.pushed,
            "applied": s.applied,
            "rejected": s.rejected,
            "conflicts": s.conflicts,
            "repairedBuckets": s.repaired,
            "clockSkewMs": s.clock_skew_ms,
            "galleryStale": self.stale,
            "requests": getattr(self.link, "requests", None),
        }


def _iso(t: float) -> str:
    from datetime import datetime, timezone

    return iso_utc(datetime.fromtimestamp(t, tz=timezone.utc))
