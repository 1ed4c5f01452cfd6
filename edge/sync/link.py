"""How a replica talks to its hub: over HTTP (a box), or in-process (the hub's own store).

Both speak the same two calls, so the worker cannot tell them apart: a hub that also
answers the REST API syncs its own gallery through a `LocalLink` exactly as a box does
through an `HttpLink`, which is how an enrolment at head office reaches every box.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import aiohttp

from edge.sync.codec import (
    CONTENT_TYPE,
    FeedPage,
    PushAck,
    PushBatch,
    WireError,
    decode_ack,
    decode_digest,
    decode_feed,
    decode_records,
    encode_push,
)
from edge.sync.digest import comparable, digest
from edge.sync.hubstore import HubStore
from edge.sync.record import Record


class HubUnavailable(ConnectionError):
    """The hub could not be reached or answered garbage: retry later."""


class HubRefused(RuntimeError):
    """The hub answered with an error (auth, permission, clock): retrying alone won't fix it."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(f"hub refused ({status} {name}): {message}")
        self.status, self.name = status, name


class HubLink(Protocol):
    async def push(self, batch: PushBatch) -> PushAck: ...

    async def feed(
        self, instances: Sequence[str], fingerprint: str, after: int, limit: int, wait_s: float
    ) -> FeedPage: ...

    async def digest(self, instances: Sequence[str], fingerprint: str) -> dict[str, str]: ...

    async def bucket(
        self, instances: Sequence[str], fingerprint: str, bucket: str
    ) -> list[Record]: ...

    async def close(self) -> None: ...


class FeedNotifier:
    """Wakes long-polling readers when the hub's feed moved (one event per generation)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        #: called on the loop after each move (the hub's MQTT doorbell)
        self.listeners: list[Callable[[], None]] = []

    def changed(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()
        for fn in list(self.listeners):
            fn()

    async def wait(self, timeout_s: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)


class LocalLink:
    """A HubStore in this process (the hub's own gallery); `changed` wakes long-polls."""

    def __init__(
        self,
        hub: HubStore,
        *,
        origin_ok: Callable[[PushBatch], None] | None = None,
        notifier: FeedNotifier | None = None,
    ) -> None:
        self.hub = hub
        self._check = origin_ok
        self.notifier = notifier or FeedNotifier()

    async def push(self, batch: PushBatch) -> PushAck:
        if self._check is not None:
            self._check(batch)
        res = await asyncio.to_thread(self.hub.push, batch.origin, batch.changes)
        if res.applied:
            self.notifier.changed()
        return PushAck(res.acked, res.applied, 0, self.hub.epoch)

    async def feed(
        self, instances: Sequence[str], fingerprint: str, after: int, limit: int, wait_s: float
    ) -> FeedPage:
        page = await asyncio.to_thread(self.hub.feed, instances, fingerprint, after, limit)
        if page.records or wait_s <= 0 or page.next > after:
            return page
        await self.notifier.wait(wait_s)
        return await asyncio.to_thread(self.hub.feed, instances, fingerprint, after, limit)

    async def digest(self, instances: Sequence[str], fingerprint: str) -> dict[str, str]:
        def compute() -> dict[str, str]:
            return digest(scan_all(self.hub, instances), fingerprint, time.time())

        return await asyncio.to_thread(compute)

    async def bucket(self, instances: Sequence[str], fingerprint: str, bucket: str) -> list[Record]:
        def collect() -> list[Record]:
            now = time.time()
            views = (comparable(r, fingerprint, now) for r in scan_all(self.hub, instances, bucket))
            return [v for v in views if v is not None]

        return await asyncio.to_thread(collect)

    async def close(self) -> None:
        return None


def scan_all(
    store: HubStore, instances: Sequence[str], bucket: str | None = None
) -> Iterator[Record]:
    """Every record of `instances` (optionally one digest bucket), page by page."""
    after = ""
    while page := store.scan(instances, after, 5000, bucket):
        yield from page
        after = page[-1].uuid


def client_tls(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None and key_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


class HttpLink:
    """The hub's `/sync/v1` over HTTP(S) with this box's bearer token."""

    def __init__(
        self, base_url: str, token: str, *, tls: ssl.SSLContext | None = None,
        timeout_s: float = 30,
    ) -> None:  # fmt: skip
        self.base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": CONTENT_TYPE}
        self._tls = tls
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0  # calls made (status: what an idle box costs the hub)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            conn = aiohttp.TCPConnector(ssl=self._tls if self._tls is not None else True)
            self._session = aiohttp.ClientSession(connector=conn, headers=self._headers)
        return self._session

    async def _call(
        self, method: str, path: str, *, body: bytes | None = None,
        params: dict[str, str] | None = None, wait_s: float = 0,
    ) -> bytes:  # fmt: skip
        timeout = aiohttp.ClientTimeout(total=self._timeout_s + wait_s)
        self.requests += 1
        try:
            # No Content-Type on the msgpack body: the server's JSON API middleware refuses
            # any other declared type; the sync routes know their frame format.
            async with self._client().request(
                method, self.base + path, data=body, params=params, timeout=timeout,
                skip_auto_headers=("Content-Type",),
            ) as resp:  # fmt: skip
                raw = await resp.read()
                if resp.status == 200:
                    return raw
                try:
                    err = json.loads(raw)
                    name, message = str(err["name"]), str(err["message"])
                except (ValueError, KeyError, TypeError):
                    name, message = "error", raw[:200].decode("utf-8", "replace")
                if resp.status >= 500:
                    raise HubUnavailable(f"hub answered {resp.status}: {message}")
                raise HubRefused(resp.status, name, message)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            raise HubUnavailable(f"hub {self.base} unreachable: {e or type(e).__name__}") from e

    async def push(self, batch: PushBatch) -> PushAck:
        raw = await self._call("POST", "/sync/v1/push", body=encode_push(batch))
        try:
            return decode_ack(raw)
        except WireError as e:
            raise HubUnavailable(f"bad push answer from the hub: {e}") from None

    async def feed(
        self, instances: Sequence[str], fingerprint: str, after: int, limit: int, wait_s: float
    ) -> FeedPage:
        params = {
            "instances": ",".join(instances),
            "fingerprint": fingerprint,
            "after": str(after),
            "limit": str(limit),
            "wait": f"{wait_s:g}",
        }
        raw = await self._call("GET", "/sync/v1/feed", params=params, wait_s=wait_s)
        try:
            return decode_feed(raw)
        except WireError as e:
            raise HubUnavailable(f"bad feed answer from the hub: {e}") from None

    async def digest(self, instances: Sequence[str], fingerprint: str) -> dict[str, str]:
        params = {"instances": ",".join(instances), "fingerprint": fingerprint}
        raw = await self._call("GET", "/sync/v1/digest", params=params, wait_s=120)
        try:
            return decode_digest(raw)
        except WireError as e:
            raise HubUnavailable(f"bad digest answer from the hub: {e}") from None

    async def bucket(self, instances: Sequence[str], fingerprint: str, bucket: str) -> list[Record]:
        params = {"instances": ",".join(instances), "fingerprint": fingerprint, "bucket": bucket}
        raw = await self._call("GET", "/sync/v1/bucket", params=params, wait_s=60)
        try:
            return decode_records(raw)
        except WireError as e:
            raise HubUnavailable(f"bad bucket answer from the hub: {e}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
