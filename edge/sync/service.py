"""Fleet sync as a service of the running process: the hub's routes and/or a sync worker.

`SyncService(settings)` is built before the app starts (its routes must be registered
then); `start(store)` opens the hub database and starts the worker once the entity store
exists, `stop()` ends both. A box (`role: box`) runs a worker against `sync.upstream`. A
hub (`role: hub`) serves `/sync/v1/push` and `/sync/v1/feed` and also syncs its own
gallery in-process, so an enrolment made through the hub's REST API reaches every box; a
hub with `sync.upstream` is a site hub, relaying to a central hub (`edge.sync.relay`).
`GET /sync/v1/status` (api-key protected) reports either side for people and scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from edge.config import Settings
from edge.store.entities import EntityStore
from edge.sync.hub import Hub
from edge.sync.hub_sqlite import SqliteHubStore
from edge.sync.hubstore import HubStore
from edge.sync.link import HttpLink, HubLink, LocalLink, client_tls
from edge.sync.relay import HubRelay
from edge.sync.worker import SyncWorker, sync_instances
from edge.timefmt import utc_now_ms
from edge.usererror import UserError

log = logging.getLogger("edge.sync")

#: the payload schema of the hub's retained MQTT head doorbell
DOORBELL_SCHEMA = "edge-face.sync-head/1"
#: The paths boxes call with a bearer token instead of an api-key.
BEARER_PATHS = frozenset({"/sync/v1/push", "/sync/v1/feed", "/sync/v1/digest", "/sync/v1/bucket"})


class SyncService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub: Hub | None = None
        self.worker: SyncWorker | None = None
        self._task: asyncio.Task[None] | None = None
        self._link: HubLink | None = None
        self._doorbell: asyncio.Task[None] | None = None
        self.relay: HubRelay | None = None  # a site hub's relay to its central hub
        self._relay_task: asyncio.Task[None] | None = None

    @property
    def is_hub(self) -> bool:
        return self.settings.sync.role == "hub"

    def routes(self) -> list[web.RouteDef]:
        out = [
            web.get("/sync/v1/status", self.status_route),
            web.post("/sync/v1/now", self.now_route),
        ]
        if self.is_hub:
            out += [
                web.post("/sync/v1/push", self._push),
                web.get("/sync/v1/feed", self._feed),
                web.get("/sync/v1/digest", self._digest),
                web.get("/sync/v1/bucket", self._bucket),
            ]
        return out

    async def _push(self, request: web.Request) -> web.StreamResponse:
        if self.hub is None:
            return _not_started()
        return await self.hub.push(request)

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        if self.hub is None:
            return _not_started()
        return await self.hub.feed(request)

    async def _digest(self, request: web.Request) -> web.StreamResponse:
        if self.hub is None:
            return _not_started()
        return await self.hub.digest(request)

    async def _bucket(self, request: web.Request) -> web.StreamResponse:
        if self.hub is None:
            return _not_started()
        return await self.hub.bucket(request)

    async def status_route(self, request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(self.report))

    async def now_route(self, request: web.Request) -> web.Response:
        """`edge-face sync now`: one full cycle, answered with the status after it."""
        error = None
        if self.worker is not None:
            try:
                await self.worker.sync_now()
            except Exception as e:  # reported to the operator, who asked for this cycle
                error = str(e)
        out = await asyncio.to_thread(self.report)
        out["error"] = error
        return web.json_response(out, status=200 if error is None else 502)

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.hub is not None:
            out["hub"] = self.hub.report()
        if self.relay is not None:
            out["relay"] = self.relay.report()
        if self.worker is not None:
            out["box"] = self.worker.report()
        return out

    def mqtt_state(self) -> dict[str, Any]:
        """The compact sync part of the retained MQTT status (any thread: reads SQLite)."""
        if self.worker is None:
            return {"role": self.settings.sync.role, "state": "starting"}
        r = self.worker.report()
        out: dict[str, Any] = {
            "role": self.settings.sync.role,
            "state": "error" if r["lastError"] else ("stale" if r["galleryStale"] else "ok"),
            "pending": r["pending"],
            "oldestPendingSeconds": r["oldestPendingSeconds"],
            "pullLag": r["pullLag"],
            "lastSuccess": r["lastSuccess"],
            "lastError": r["lastError"],
            "galleryStale": r["galleryStale"],
        }
        if self.hub is not None:
            out["hubHead"] = self.hub.store.head()
        return out

    def ring(self, payload: bytes) -> None:
        """A box's handler of the hub's MQTT doorbell (paho's thread): pull at once when
        the hub's head moved past this box's cursor. A malformed message is ignored."""
        try:
            doc = json.loads(payload)
            epoch, head = str(doc["epoch"]), int(doc["head"])
        except (ValueError, KeyError, TypeError):
            log.debug("sync doorbell: ignoring a malformed message")
            return
        if self.worker is not None and not self.is_hub:
            self.worker.ring(epoch, head)

    def publish_head(self, publish: Callable[[dict[str, Any]], None]) -> None:
        """Hub: `publish(doc)` now and whenever the feed head moves (coalesced, on the loop);
        the doc (epoch, head) is the retained doorbell boxes watch. Call after `start`."""
        hub = self.hub
        if hub is None:
            return
        moved = asyncio.Event()
        hub.notifier.listeners.append(moved.set)

        async def loop() -> None:
            last = -1
            while True:
                try:
                    head = await asyncio.to_thread(hub.store.head)
                    if head != last:
                        publish({"schema": DOORBELL_SCHEMA, "epoch": hub.store.epoch,
                                 "head": head, "time": utc_now_ms()})  # fmt: skip
                        last = head
                except Exception:  # the database is away: the next move retries
                    log.exception("sync doorbell: reading the hub head failed")
                await moved.wait()
                moved.clear()

        self._doorbell = asyncio.create_task(loop(), name="edge-sync-doorbell")

    @property
    def stale(self) -> bool:
        return self.worker is not None and self.worker.stale

    async def start(self, store: EntityStore) -> None:
        s = self.settings
        keys = [k.instance for k in s.server.api_keys]
        instances = sync_instances(s.sync.instances, keys)
        if self.is_hub:
            hub_store, where = await asyncio.to_thread(open_hub_store, s)
            self.hub = Hub(hub_store, s.sync, fingerprint=store.pack_fingerprint)
            listen = getattr(hub_store, "listen", None)
            if listen is not None:  # PostgreSQL: other hub processes' pushes wake polls here
                listen(_threadsafe(asyncio.get_running_loop(), self.hub.notifier.changed))
            log.info("sync hub: %s (epoch %s), %d boxes", where, hub_store.epoch, len(s.sync.boxes))
            self._link = LocalLink(hub_store, notifier=self.hub.notifier)
            name = "hub"
            if s.sync.upstream is not None:  # a site hub: itself a box of a central hub
                self.relay = HubRelay(
                    hub_store, self.hub.notifier, self._upstream_link(), instances,
                    store.pack_fingerprint, s.sync,
                )  # fmt: skip
                self._relay_task = asyncio.create_task(self.relay.run(), name="edge-sync-relay")
                log.info("sync: site hub relays %s to %s", instances, s.sync.upstream)
        else:
            self._link = self._upstream_link()
            name = s.device_id
            log.info("sync: box %s -> %s, instances %s", name, s.sync.upstream, instances)
        self.worker = SyncWorker(store, s.sync, self._link, instances, name=name)
        self._task = asyncio.create_task(self.worker.run(), name="edge-sync")

    def _upstream_link(self) -> HttpLink:
        """The HTTP link to `sync.upstream` (a box's hub, or a site hub's central hub)."""
        s = self.settings
        assert s.sync.upstream is not None and s.sync.token is not None
        try:
            tls = None
            if s.sync.upstream.startswith("https:"):
                tls = client_tls(s.sync.ca_file, s.sync.cert_file, s.sync.key_file)
        except (OSError, ValueError) as e:
            raise UserError(f"sync TLS files (sync.ca_file/cert_file/key_file): {e}") from None
        return HttpLink(s.sync.upstream, s.sync.token.get_secret_value(), tls=tls)

    def cleanup_ctx(
        self, store: Callable[[], EntityStore]
    ) -> Callable[[web.Application], AsyncIterator[None]]:
        """An aiohttp cleanup context: start once `store()` exists (the app's store
        context runs first), stop at shutdown."""

        async def ctx(app: web.Application) -> AsyncIterator[None]:
            await self.start(store())
            try:
                yield
            finally:
                await self.stop()

        return ctx

    async def stop(self) -> None:
        if self._doorbell is not None:
            self._doorbell.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._doorbell
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
        if self.relay is not None:
            await self.relay.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._link is not None:
            await self._link.close()
        if self.hub is not None:
            await asyncio.to_thread(self.hub.store.close)


def open_hub_store(s: Settings) -> tuple[HubStore, str]:
    """The hub's store and where it lives (for logs: never a password). SQLite at
    `sync.hub_path` unless `sync.hub_database` names a PostgreSQL database."""
    if s.sync.hub_database is None:
        path = (s.sync.hub_path or s.data_dir / "hub.sqlite3").expanduser()
        return SqliteHubStore(path), str(path)
    url = s.sync.hub_database.get_secret_value()
    try:
        from edge.sync.hub_postgres import PostgresHubStore, describe, open_error
    except ImportError:
        raise UserError(
            "sync.hub_database is a PostgreSQL URL but the PostgreSQL driver is not "
            "installed: pip install 'edge-face[hub-postgres]' (or unset sync.hub_database "
            "to keep the hub in SQLite)"
        ) from None
    password = None
    if s.sync.hub_database_password_file is not None:
        try:
            password = s.sync.hub_database_password_file.expanduser().read_text().strip()
        except OSError as e:
            msg = f"sync.hub_database_password_file: {e.strerror}: {e.filename}"
            raise UserError(msg) from None
    try:
        return PostgresHubStore(url, password=password), describe(url)
    except Exception as e:
        raise UserError(open_error(e, url, password)) from None


def _threadsafe(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> Callable[[], None]:
    """`fn` run on `loop`, callable from another thread (a no-op once the loop closed)."""

    def call() -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn)

    return call


def _not_started() -> web.Response:
    return web.json_response(
        {"code": 503, "name": "service_unavailable", "message": "sync hub is starting; retry"},
        status=503,
    )


SYNC = web.AppKey("edge.sync", SyncService)
