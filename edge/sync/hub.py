"""The hub's `/sync/v1` HTTP routes: push, feed (long-poll) and who is allowed what.

Every call carries a box's bearer token; the hub keeps only sha256 hashes of tokens
(`sync.boxes[].token_sha256`, several per box while a token is rotated) and maps each
box to the instances it may read and write. A batch that touches another instance, or
whose clock stamps are too far ahead of the hub's clock, is refused whole (nothing of it
is applied) with a JSON body `{code, name, message}` that says what to fix. Frames are
msgpack (`edge.sync.codec`); nothing on this wire is ever an image.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from edge.config import SyncBoxConfig, SyncConfig
from edge.metrics import REGISTRY
from edge.store.hlc import ClockSkewError, HybridClock
from edge.sync.codec import (
    CONTENT_TYPE,
    PushAck,
    PushBatch,
    WireError,
    decode_push,
    encode_ack,
    encode_digest,
    encode_feed,
    encode_records,
)
from edge.sync.digest import BUCKET_DIGITS, comparable, digest
from edge.sync.hubstore import HubStore
from edge.sync.link import FeedNotifier, scan_all
from edge.sync.record import Record
from edge.usererror import UserError

log = logging.getLogger("edge.sync.hub")

HUB_REJECTED = REGISTRY.counter(
    "edge_sync_hub_rejected_total", "sync calls the hub refused, by reason"
)
HUB_APPLIED = REGISTRY.counter("edge_sync_hub_applied_total", "records that changed the hub")
HUB_CONFLICTS = REGISTRY.counter(
    "edge_sync_hub_conflicts_total", "pushes merged with concurrent changes from other replicas"
)
HUB_HEAD = REGISTRY.gauge("edge_sync_hub_head", "the hub's newest feed sequence")
HUB_SKEW = REGISTRY.gauge(
    "edge_sync_hub_clock_skew_seconds", "newest stamp a box pushed minus the hub's clock"
)

MAX_LIMIT = 10_000
MAX_WAIT_S = 300.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Refused(Exception):
    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message

    def response(self) -> web.Response:
        HUB_REJECTED.inc(reason=self.name)
        return web.json_response(
            {"code": self.status, "name": self.name, "message": self.message}, status=self.status
        )


@dataclass
class BoxSeen:
    last_push: float | None = None
    last_pull: float | None = None
    cursor: int = 0
    fingerprint: str = ""


@dataclass
class Hub:
    """The hub's state shared by its routes: storage, boxes, clock, long-poll wake-ups."""

    store: HubStore
    settings: SyncConfig
    notifier: FeedNotifier = field(default_factory=FeedNotifier)
    seen: dict[str, BoxSeen] = field(default_factory=dict)
    #: the model pack of the hub's own gallery ("" when it has none); boxes on another
    #: pack are reported (log, status), and fed only vectors enrolled on their pack
    fingerprint: str = ""

    def __post_init__(self) -> None:
        self.clock = HybridClock("hub", max_ahead_ms=int(self.settings.max_clock_ahead_s * 1000))

    # Checks ----------------------------------------------------------------------------------
    def authenticate(self, request: web.Request) -> SyncBoxConfig:
        if self.settings.require_client_cert:
            transport = request.transport
            cert = transport.get_extra_info("peercert") if transport is not None else None
            if not cert:
                raise Refused(
                    401, "unauthorized",
                    "this hub requires a client certificate signed by its sync.client_ca_file;"
                    " set sync.cert_file and sync.key_file on the box",
                )  # fmt: skip
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(
                401, "unauthorized",
                "missing bearer token: send 'Authorization: Bearer <token>' (sync.token)",
            )  # fmt: skip
        presented = token_hash(token.strip())
        found = None
        for box in self.settings.boxes:
            for h in box.token_sha256:
                if hmac.compare_digest(h, presented):
                    found = box
        if found is None:
            raise Refused(
                401, "unauthorized",
                "unknown sync token; add its sha256 to sync.boxes[].token_sha256 at the hub",
            )  # fmt: skip
        return found

    @staticmethod
    def allow(box: SyncBoxConfig, instances: Sequence[str]) -> None:
        denied = sorted(set(instances) - set(box.instances))
        if denied:
            raise Refused(
                403, "forbidden",
                f"box {box.id!r} may not sync instance(s) {', '.join(denied)}; it may sync "
                f"{', '.join(box.instances)} (sync.boxes at the hub)",
            )  # fmt: skip

    def check_batch(self, box: SyncBoxConfig, batch: PushBatch) -> None:
        """Instances allowed and clocks sane, for every record, before anything is applied."""
        self.allow(box, sorted({r.instance for _, r in batch.changes}))
        newest = max((s.ms for _, r in batch.changes for s in r.stamps()), default=None)
        if newest is None:
            return
        try:
            for _, r in batch.changes:
                for s in r.stamps():
                    self.clock.check(s)
        except ClockSkewError as e:
            raise Refused(409, "clock_skew", f"batch refused: {e}") from None
        finally:
            HUB_SKEW.set(self.clock.last_skew_ms / 1000, box=box.id)

    def other_model(self, fingerprint: str) -> bool:
        """A box on another model pack than the hub's own gallery (both known)."""
        return bool(self.fingerprint and fingerprint and fingerprint != self.fingerprint)

    # Handlers --------------------------------------------------------------------------------
    async def push(self, request: web.Request) -> web.Response:
        try:
            box = self.authenticate(request)
            try:
                batch = decode_push(await request.read())
            except WireError as e:
                raise Refused(400, "invalid_frame", f"push body: {e}") from None
            self.check_batch(box, batch)
        except Refused as r:
            return r.response()
        # Origins are namespaced by the authenticated box, so no box can move another's
        # acknowledged sequence (and make the hub skip that box's later changes).
        origin = f"{box.id}/{batch.origin}"
        res = await asyncio.to_thread(self.store.push, origin, batch.changes)
        self.seen.setdefault(box.id, BoxSeen()).last_push = time.time()
        if res.conflicts:
            HUB_CONFLICTS.inc(res.conflicts)
        if res.applied:
            HUB_APPLIED.inc(res.applied)
            self.notifier.changed()
        HUB_HEAD.set(await asyncio.to_thread(self.store.head))
        ack = PushAck(res.acked, res.applied, 0, self.store.epoch)
        return web.Response(body=encode_ack(ack), content_type=CONTENT_TYPE)

    async def feed(self, request: web.Request) -> web.Response:
        try:
            box = self.authenticate(request)
            q = request.query
            instances = [i for i in q.get("instances", "").split(",") if i]
            fingerprint = q.get("fingerprint", "")
            if not instances or not fingerprint:
                raise Refused(
                    400, "invalid_query", "feed needs instances=a,b and fingerprint=<model pack>"
                )
            self.allow(box, instances)
            after = _number(q, "after", 0, 0, 2**62)
            limit = _number(q, "limit", 1000, 1, MAX_LIMIT)
            wait = float(_number(q, "wait", 0, 0, int(MAX_WAIT_S)))
        except Refused as r:
            return r.response()
        seen = self.seen.setdefault(box.id, BoxSeen())
        if seen.fingerprint != fingerprint and self.other_model(fingerprint):
            log.warning(
                "box %s runs model pack %s, not the hub's %s: it gets only vectors enrolled "
                "on its own pack (and every delete); re-enrol or upgrade to share faces",
                box.id, fingerprint, self.fingerprint,
            )  # fmt: skip
        seen.last_pull, seen.cursor, seen.fingerprint = time.time(), after, fingerprint
        page = await asyncio.to_thread(self.store.feed, instances, fingerprint, after, limit)
        if not page.records and page.next <= after and wait > 0:
            await self.notifier.wait(wait)
            page = await asyncio.to_thread(self.store.feed, instances, fingerprint, after, limit)
        return web.Response(body=encode_feed(page), content_type=CONTENT_TYPE)

    def _scope(self, request: web.Request) -> tuple[SyncBoxConfig, list[str], str]:
        box = self.authenticate(request)
        instances = [i for i in request.query.get("instances", "").split(",") if i]
        fingerprint = request.query.get("fingerprint", "")
        if not instances or not fingerprint:
            raise Refused(400, "invalid_query", "give instances=a,b and fingerprint=<model pack>")
        self.allow(box, instances)
        return box, instances, fingerprint

    async def digest(self, request: web.Request) -> web.Response:
        """Per-bucket digests of what a box of `fingerprint` should hold (drift check)."""
        try:
            _, instances, fingerprint = self._scope(request)
        except Refused as r:
            return r.response()

        def compute() -> dict[str, str]:
            now = time.time()
            return digest(scan_all(self.store, instances), fingerprint, now)

        return web.Response(
            body=encode_digest(await asyncio.to_thread(compute)), content_type=CONTENT_TYPE
        )

    async def bucket(self, request: web.Request) -> web.Response:
        """The records of one digest bucket, as a box of `fingerprint` should hold them."""
        try:
            _, instances, fingerprint = self._scope(request)
            bucket = request.query.get("bucket", "")
            if len(bucket) != BUCKET_DIGITS or any(c not in "0123456789abcdef" for c in bucket):
                raise Refused(400, "invalid_query", f"bucket must be {BUCKET_DIGITS} hex digits")
        except Refused as r:
            return r.response()

        def collect() -> list[Record]:
            now = time.time()
            views = (
                comparable(r, fingerprint, now) for r in scan_all(self.store, instances, bucket)
            )
            return [v for v in views if v is not None]

        records = await asyncio.to_thread(collect)
        return web.Response(body=encode_records(records), content_type=CONTENT_TYPE)

    def report(self) -> dict[str, Any]:
        counts = self.store.counts()
        now = time.time()

        def ago(t: float | None) -> float | None:
            return None if t is None else round(now - t, 3)

        return {
            "role": "hub",
            "epoch": self.store.epoch,
            "head": counts.head,
            "records": counts.records,
            "tombstones": counts.tombstones,
            "origins": counts.origins,
            "fingerprint": self.fingerprint or None,
            "boxes": [
                {
                    "id": b.id,
                    "instances": b.instances,
                    "lastPushSecondsAgo": ago(self.seen.get(b.id, BoxSeen()).last_push),
                    "lastPullSecondsAgo": ago(self.seen.get(b.id, BoxSeen()).last_pull),
                    "cursor": self.seen.get(b.id, BoxSeen()).cursor,
                    "lag": max(0, counts.head - self.seen.get(b.id, BoxSeen()).cursor),
                    "fingerprint": self.seen.get(b.id, BoxSeen()).fingerprint or None,
                    "otherModel": self.other_model(self.seen.get(b.id, BoxSeen()).fingerprint),
                }
                for b in self.settings.boxes
            ],
        }


def _number(q: Any, name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None:
        return default
    try:
        value = int(float(raw)) if name == "wait" else int(raw)
    except ValueError:
        raise Refused(400, "invalid_query", f"{name} must be a whole number") from None
    if not lo <= value <= hi:
        raise Refused(400, "invalid_query", f"{name} must be between {lo} and {hi}")
    return value


def verify_client_certs(ctx: ssl.SSLContext, settings: SyncConfig) -> None:
    """Make the server's TLS ask boxes for a client certificate signed by
    `sync.client_ca_file` (optional at the TLS layer, so REST clients are unaffected;
    `require_client_cert` then refuses sync calls without one)."""
    if settings.role != "hub" or settings.client_ca_file is None:
        return
    try:
        ctx.load_verify_locations(cafile=str(settings.client_ca_file.expanduser()))
    except (OSError, ssl.SSLError) as e:
        raise UserError(
            f"sync.client_ca_file: cannot load {settings.client_ca_file} ({e}); give the PEM "
            "CA certificate that signed the boxes' client certificates"
        ) from None
    ctx.verify_mode = ssl.CERT_OPTIONAL
