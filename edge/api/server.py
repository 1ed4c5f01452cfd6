"""`edge-face serve`: the composition root of the long-running service.

Builds the app (and, when configured, the camera/MQTT services), listens, and on SIGTERM
or SIGINT drains: the listening socket closes at once, requests in flight get up to
`server.drain_seconds` to finish, then components close and the process exits 0.

Start-up checks what an operator can get wrong before anything slow runs: the port is
bound first (a taken port is one line naming --port, not a traceback after the models
loaded) and a missing model file stops the start with the exact fetch command, instead of
a process that runs but never turns ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import re
import signal
import socket
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

try:
    from aiohttp.http_exceptions import BadHttpMethod
except ImportError:  # aiohttp < 3.10 reports an unknown method as a bad status line
    from aiohttp.http_exceptions import BadStatusLine as BadHttpMethod  # type: ignore[assignment]
from aiohttp.web_protocol import RequestHandler

from edge.api.access_log import ACCESS_LOGGER, EdgeAccessLogger
from edge.api.app import CleanupCtx, create_app
from edge.api.middleware import error_response, http_exception_error
from edge.api.schemas import excerpt
from edge.api.state import DEVICES, ENGINE, READY
from edge.camera.service import edge_services
from edge.config import Settings
from edge.errors import EdgeError
from edge.metrics import REGISTRY
from edge.runtime.manifest import Manifest
from edge.sdnotify import notify, watchdog_interval
from edge.sync.hub import verify_client_certs
from edge.sync.service import SYNC, SyncService
from edge.usererror import UserError

log = logging.getLogger("edge.server")

DROPPED = REGISTRY.counter(
    "edge_http_connections_dropped_total",
    "connections the server closed before a request: header_timeout, evicted (at the"
    " connection cap) or refused (cap reached, every connection busy)",
)


# The connection layer: JSON for protocol errors, read timeouts, a connection cap ----------
class _EdgeHandler(RequestHandler):
    """One client connection. On top of aiohttp's handler it

    - renders parser failures (absurd request line or headers, unknown method, bad
      version) as the contract's JSON;
    - enforces `server.header_timeout_s`: aiohttp waits for a complete request line and
      headers for as long as its keep-alive timer (an hour by default), so a client sending
      half a line, or one byte now and then, would hold the connection. The timer starts
      when the connection opens, or with the first byte of a next request on a kept-alive
      one, and is not restarted by further bytes;
    - takes part in the connection cap (see `_EdgeServer.admit`).
    """

    def __init__(self, manager: _EdgeServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._edge = manager
        self._header_timer: asyncio.TimerHandle | None = None
        self._partial = False  # bytes of a request whose headers are not complete yet
        self.last_request_at = 0.0  # loop time: connection opened / last request parsed

    # header timeout ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.last_request_at = self._loop.time()
        self._arm()
        self._edge.admit(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._edge.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:  # a request line + headers are complete
            self._disarm()
            self._partial = False
            self.last_request_at = self._loop.time()
        elif data and not self._request_in_progress and not self._messages:
            self._partial = True
            self._arm()

    async def _handle_request(self, request: Any, start_time: Any, handler: Any) -> Any:
        try:
            return await super()._handle_request(request, start_time, handler)
        finally:
            self._disarm()  # bytes that arrived during the request were its body
            self._partial = False

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self._loop.call_later(
                self._edge.limits.header_timeout_s, self._header_timeout
            )

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def waiting_for_headers(self) -> bool:
        """Idle between requests or inside a request's head: safe to answer and close."""
        waiter = self._waiter
        return (
            waiter is not None
            and not waiter.done()
            and not self._messages
            and not self._request_in_progress
        )

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self.waiting_for_headers():
            return  # a request is being handled; its body has its own timeout
        limit = self._edge.limits.header_timeout_s
        DROPPED.inc(reason="header_timeout")
        self.drop(
            EdgeError(
                408,
                f"request headers did not arrive within {limit:g} s; send the"
                " request line and headers at once",
            )
        )

    def drop(self, err: EdgeError | None) -> None:
        """Close now; with `err`, first write it as a complete response (408 / 503).

        An idle connection is closed silently: a kept-alive client that sees an
        unsolicited 408 may take it for the answer to its next request.
        """
        transport = self.transport
        if transport is not None and err is not None and (self._partial or err.code == 503):
            transport.write(raw_error_response(err))
        self.force_close()  # flushes what was written, then closes

    # parser errors ------------------------------------------------------------------------
    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        rid = uuid.uuid4().hex
        err = parser_error(status, exc, message, self.max_line_size)
        if err.code == 500:
            self.log_exception("internal error [request_id=%s]", rid, exc_info=exc)
            err.message = f"internal error; request id {rid}"
        resp = error_response(err, rid)
        resp.force_close()
        return resp


def raw_error_response(err: EdgeError) -> bytes:
    """A complete HTTP/1.1 error response for the connection layer (no request object)."""
    rid = uuid.uuid4().hex
    body = json.dumps(err.body()).encode()
    reason = HTTPStatus(err.http_status).phrase
    head = (
        f"HTTP/1.1 {err.http_status} {reason}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nx-request-id: {rid}\r\n\r\n"
    )
    return head.encode("ascii") + body


_GOT_MORE = re.compile(r"Got more than (\d+) bytes")
_BAD_METHOD = re.compile(r"b'([^ ']+) ")  # llhttp quotes the start of the request line
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")  # RFC 9110 token (method syntax)


def parser_error(
    status: int, exc: BaseException | None, message: str | None, max_line_size: int
) -> EdgeError:
    """Map an aiohttp protocol-level failure onto the contract (400/405/414/431/505/500).

    aiohttp reports an over-long line with the limit it hit: the request-line limit means
    the URI was too long, the field limit means a header was.
    """
    text = str(message or exc or "")
    if isinstance(exc, LineTooLong):
        m = _GOT_MORE.search(text)
        if m and int(m.group(1)) == max_line_size:
            return EdgeError(414, f"request line longer than {max_line_size} bytes")
        return EdgeError(431, "a request header line is too long")
    if "too many headers" in text.lower():
        return EdgeError(431, "too many request headers")
    method = _BAD_METHOD.search(text) if isinstance(exc, BadHttpMethod) else None
    if method and _TOKEN.fullmatch(method.group(1)):  # a method, just not one HTTP knows
        return EdgeError(
            405,
            f"HTTP method {excerpt(method.group(1), 16)} is not supported;"
            " this API answers GET, POST, PATCH and DELETE",
        )
    if "http version" in text.lower():
        return EdgeError(505, "unsupported HTTP version; send HTTP/1.1")
    if status >= 500:
        return EdgeError(500, "internal error")
    # [decision] a request that is not valid HTTP at all: 400 with the generic type code.
    return EdgeError(111, f"malformed HTTP request: {excerpt(text, 120)}")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    max_connections: int


class _EdgeServer(web.Server):
    """aiohttp's connection manager plus the connection cap.

    Policy at the cap [decision]: the new connection is accepted, and the connection that
    has waited longest for its next request's headers (a slow-loris client trickling a
    header, or an idle kept-alive one) is dropped to make room; only when every
    connection is busy with a request does the new one get a 503 and close. Why not
    refuse (or queue in the listen backlog) the excess: hundreds of clients holding
    half-sent headers would then shut out the kiosk until their header timeout, which is
    exactly the attack; dropping the idlest head costs an honest client at most a
    reconnect (HTTP clients retry a kept-alive connection closed while idle), and work in
    flight is never cut.
    """

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.open: dict[_EdgeHandler, None] = {}  # insertion order = connection age

    def __call__(self) -> RequestHandler:
        return _EdgeHandler(self, loop=self._loop, **self._kwargs)

    def admit(self, handler: _EdgeHandler) -> None:
        self.open[handler] = None
        if len(self.open) <= self.limits.max_connections:
            return
        idle = [h for h in self.open if h is not handler and h.waiting_for_headers()]
        if idle:
            victim = min(idle, key=lambda h: h.last_request_at)
            DROPPED.inc(reason="evicted")
            victim.drop(
                EdgeError(
                    408, "request headers too slow while the server is at its connection limit"
                )
            )
            self.forget(victim)
            return
        self.forget(handler)
        DROPPED.inc(reason="refused")
        handler.drop(
            EdgeError(
                503,
                f"the server has {self.limits.max_connections} connections busy; retry in a moment",
            )
        )

    def forget(self, handler: _EdgeHandler) -> None:
        self.open.pop(handler, None)


def _json_http_errors(handle: Any) -> Any:
    """aiohttp raises some HTTP errors before any middleware runs (an unknown `Expect`
    gives 417 while the route is resolved): render those as the contract body too."""

    async def wrapped(request: web.BaseRequest) -> web.StreamResponse:
        try:
            return cast(web.StreamResponse, await handle(request))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            resp = http_exception_error(request, exc)
            resp.headers["x-request-id"] = uuid.uuid4().hex
            return resp

    return wrapped


class EdgeRunner(web.AppRunner):
    """AppRunner whose connections answer even protocol errors with the JSON error body,
    time out slow request heads and respect the connection cap."""

    def __init__(self, app: web.Application, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return _EdgeServer(
            _json_http_errors(base.request_handler),
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            limits=self.limits,
            **base._kwargs,
        )


#: aiohttp's own shutdown wait, after `drain` already waited for requests in flight.
RUNNER_SHUTDOWN_TIMEOUT = 2.0


#: the listen backlog: asyncio accepts up to this many queued connections in one go,
#: before any of them (or a connection dropped for them) is seen by the cap
ACCEPT_BACKLOG = 64
#: file descriptors kept out of the cap: the process's own (models, SQLite, logs, MQTT,
#: cameras; about 15 when idle) plus one accept burst
FD_RESERVE = 64 + ACCEPT_BACKLOG


def connection_cap(configured: int) -> int:
    """`server.max_connections`, lowered to fit the process's open-file limit.

    Past that limit accept() fails with EMFILE and the server answers nobody, the kiosk
    included, so the cap must trip first.
    """
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # not POSIX: trust the setting
        return configured
    if soft == resource.RLIM_INFINITY or soft - FD_RESERVE >= configured:
        return configured
    cap = max(2, soft - FD_RESERVE)
    log.warning(
        "server.max_connections %d lowered to %d: the open-file limit is %d (raise it with"
        " LimitNOFILE= in the systemd unit, or ulimit -n)",
        configured,
        cap,
        soft,
    )
    return cap


def make_runner(app: web.Application, settings: Settings) -> EdgeRunner:
    limits = ConnectionLimits(
        header_timeout_s=settings.server.header_timeout_s,
        max_connections=connection_cap(settings.server.max_connections),
    )
    return EdgeRunner(
        app,
        limits=limits,
        shutdown_timeout=RUNNER_SHUTDOWN_TIMEOUT,
        handle_signals=False,
        access_log_class=EdgeAccessLogger,
        access_log=ACCESS_LOGGER,
    )


# Start-up checks -------------------------------------------------------------------------------
def _bind_problem(err: OSError, host: str, port: int) -> str:
    """What an operator reads when the listening socket cannot be bound."""
    where = f"port {port} on {host}"
    if err.errno == errno.EADDRINUSE:
        return (
            f"{where} is already in use: stop the other process or choose another with "
            "--port N (server.port in the config)"
        )
    if err.errno == errno.EACCES:
        return (
            f"no permission to listen on {where} (ports below 1024 need root or "
            "CAP_NET_BIND_SERVICE): choose another with --port N (server.port in the config)"
        )
    if err.errno == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine: choose one with --host ADDR "
            "(server.host in the config), e.g. 127.0.0.1 or 0.0.0.0"
        )
    return f"cannot listen on {where}: {err.strerror or err}; check --host/--port (server.*)"


def bind_listeners(host: str, port: int) -> list[socket.socket]:
    """Bind and listen on `host:port` now, before models or the store are opened.

    Listening at once (not only binding) claims the port: no other process can take it
    between this check and the server's start, and a taken port fails in milliseconds.
    """
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port} is not a port: choose 1-65535 (0 = any free port)")
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise UserError(
            f"cannot listen on host {host!r}: {e.strerror}; choose a local address with "
            "--host ADDR (server.host in the config), e.g. 127.0.0.1 or 0.0.0.0"
        ) from None
    socks: list[socket.socket] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, kind, proto, _, addr in infos:
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(addr)
                sock.listen(ACCEPT_BACKLOG)
            except OSError as e:
                raise UserError(_bind_problem(e, host, port)) from None
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def fetch_command(settings: Settings, config_path: Path | None) -> str:
    """The `models fetch` command line that installs what this configuration needs."""
    cmd = "edge-face models fetch"
    if config_path is not None:
        cmd += f" -c {config_path}"
    elif settings.models.pack != "default":
        cmd += f" --pack {settings.models.pack}"
    return f"{cmd} --dir {settings.model_dir}"


def check_models(settings: Settings, config_path: Path | None) -> None:
    """UserError naming the fetch command when a file of the pack is missing or truncated.

    Checks presence and size only (a stat per file): the sha256 is `models verify`'s job
    and would cost seconds on every start.
    """
    try:
        manifest = Manifest.load(settings.models.manifest)
        files = manifest.pack_files(settings.models.pack)
    except KeyError as e:
        raise UserError(f"{e.args[0]}; fix models.pack in the config") from None
    except OSError as e:
        raise UserError(
            f"cannot read the model manifest {settings.models.manifest}: {e.strerror}; "
            "fix models.manifest in the config"
        ) from None
    model_dir = settings.model_dir
    bad = []
    for spec in files:
        path = model_dir / spec.file
        if not path.is_file():
            bad.append(f"{spec.file} (missing)")
        elif path.stat().st_size not in {size for size, _ in spec.accepted()}:
            bad.append(f"{spec.file} (wrong size)")
    if not bad:
        return
    cmd = fetch_command(settings, config_path)
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    offline = (
        f"it copies from models.mirror {settings.models.mirror}"
        if settings.models.mirror
        else "offline sites add --from DIR, a folder holding the model files"
    )
    raise UserError(
        f"{len(bad)} of {len(files)} model files of pack {settings.models.pack!r} are not "
        f"installed in {model_dir}: {shown}; install them with `{cmd}` ({offline}), then "
        "start again"
    )


async def drain(app: web.Application, runner: web.BaseRunner, seconds: float) -> int:
    """Stop accepting, let requests in flight finish (up to `seconds`); returns how many
    were still running at the deadline.

    Done here rather than by aiohttp's shutdown because aiohttp stops reading from a
    connection once shutdown starts, so a request still uploading its body (a large image
    on a slow link) could never complete.
    """
    state = app[READY]
    state.begin_shutdown()  # new requests on kept-alive connections: 503 + Connection: close
    for site in list(runner.sites):
        await site.stop()  # the listening socket closes: new connections are refused
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while state.in_flight > 0 and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if state.in_flight:
        log.warning("drain time over: %d requests still running are cancelled", state.in_flight)
    return state.in_flight


# Optional device services (cameras, MQTT) --------------------------------------------------
def _services_ctx(settings: Settings, config_path: Path | None) -> CleanupCtx:
    """Cameras and the MQTT bridge over the app's engine, kept in `DEVICES` for handlers."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if not (settings.mqtt.enabled or settings.cameras):
            yield
            return
        sync = app.get(SYNC)
        async with edge_services(app[ENGINE], config_path=config_path, sync=sync) as services:
            app[DEVICES].current = services
            try:
                yield
            finally:
                app[DEVICES].current = None

    return ctx


def scheme(settings: Settings) -> str:
    return "https" if settings.server.tls_cert_file is not None else "http"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The HTTPS context of `server.tls_cert_file`/`tls_key_file`, or None for plain HTTP.

    Loaded before the models, so a wrong path or a key that does not match the certificate
    fails the start in one line instead of after a minute of warm-up.
    """
    s = settings.server
    if s.tls_cert_file is None or s.tls_key_file is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(s.tls_cert_file.expanduser(), s.tls_key_file.expanduser())
    except (OSError, ssl.SSLError) as e:
        why = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
        raise UserError(
            f"server.tls_cert_file / server.tls_key_file: cannot load {s.tls_cert_file} with "
            f"{s.tls_key_file} ({why}); give a PEM certificate and its matching private key"
        ) from None
    verify_client_certs(ctx, settings.sync)  # a hub may ask boxes for client certificates
    return ctx


def ready_line(settings: Settings, addresses: list[Any]) -> str:
    """The last start-up line: where the service answers, its docs, where the key is."""
    host, port = addresses[0][:2] if addresses else (settings.server.host, settings.server.port)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    shown = f"[{host}]" if ":" in str(host) else str(host)
    url = f"{scheme(settings)}://{shown}:{port}"
    if settings.server.api_keys:
        key = "api-key: one of server.api_keys in the config"
    else:
        key = f"api-key in {settings.api_key_path}"
    return f"ready: {url} - API docs {url}/docs - {key}"


# systemd: READY=1 when /readyz turns true, WATCHDOG=1 while the event loop turns ----------
async def _systemd_notifier(app: web.Application, on_ready: str = "") -> None:
    interval = watchdog_interval()
    step = min(0.25, interval) if interval else 0.25
    ready_sent = False
    next_ping = 0.0
    loop = asyncio.get_running_loop()
    while True:
        # The datagram send can block when the receiver's queue is full: never on the loop.
        if not ready_sent and app[READY].ready:
            ready_sent = True
            if on_ready:
                log.info("%s", on_ready)
            await asyncio.to_thread(notify, "READY=1")
        if interval and loop.time() >= next_ping:
            await asyncio.to_thread(notify, "WATCHDOG=1")
            next_ping = loop.time() + interval
        await asyncio.sleep(step)


# Serving ---------------------------------------------------------------------------------------
async def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    config_path: Path | None = None,
    sockets: list[socket.socket] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; `sockets` are listeners bound by `bind_listeners`."""
    ssl_context = tls_context(settings)
    if sockets is None:
        sockets = bind_listeners(host, port)
    app = create_app(settings)
    if settings.sync.enabled:  # fleet sync: the hub's routes and/or the box's worker
        app[SYNC] = SyncService(settings)
        app.router.add_routes(app[SYNC].routes())
        app.cleanup_ctx.append(app[SYNC].cleanup_ctx(lambda: app[ENGINE].store))
    app.cleanup_ctx.append(_services_ctx(settings, config_path))
    runner = make_runner(app, settings)
    await runner.setup()
    for sock in sockets:
        await web.SockSite(runner, sock, backlog=ACCEPT_BACKLOG, ssl_context=ssl_context).start()
    for addr in runner.addresses:
        log.info("listening on %s://%s:%s", scheme(settings), *addr[:2])

    on_ready = ready_line(settings, list(runner.addresses))
    notifier = asyncio.create_task(_systemd_notifier(app, on_ready))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        await asyncio.to_thread(notify, "STOPPING=1")
        log.info(
            "stopping: no new connections; draining %d requests for up to %ss",
            app[READY].in_flight,
            settings.server.drain_seconds,
        )
        await drain(app, runner, settings.server.drain_seconds)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
        notifier.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await notifier
    log.info("stopped")
    return 0
