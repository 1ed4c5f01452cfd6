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

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import re
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from edge.api.access_log import ACCESS_LOGGER, EdgeAccessLogger
from edge.api.app import create_app
from edge.api.state import LIVENESS, PIPELINE, READY, STORE
from edge.config import Settings
from edge.errors import EdgeError
from edge.runtime.manifest import Manifest
from edge.sdnotify import notify, watchdog_interval
from edge.usererror import UserError

log = logging.getLogger("edge.server")


# JSON answers for errors raised by aiohttp's HTTP parser (before any middleware) ----------
class _JsonErrorHandler(RequestHandler):
    """Renders parser failures (absurd request line or headers) as the contract's JSON."""

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
        resp = web.json_response(err.body(), status=err.http_status)
        resp.headers["x-request-id"] = rid
        resp.force_close()
        return resp


_GOT_MORE = re.compile(r"Got more than (\d+) bytes")


def parser_error(
    status: int, exc: BaseException | None, message: str | None, max_line_size: int
) -> EdgeError:
    """Map an aiohttp protocol-level failure onto the contract (414/431/400/500).

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
    if status >= 500:
        return EdgeError(500, "internal error")
    # [decision] a request that is not valid HTTP at all: 400 with the generic type code.
    return EdgeError(111, f"malformed HTTP request: {text[:200]}")


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class EdgeRunner(web.AppRunner):
    """AppRunner whose connections answer even parser errors with the JSON error body."""

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return _JsonErrorServer(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )


#: aiohttp's own shutdown wait, after `drain` already waited for requests in flight.
RUNNER_SHUTDOWN_TIMEOUT = 2.0


def make_runner(app: web.Application, settings: Settings) -> EdgeRunner:
    return EdgeRunner(
        app,
        shutdown_timeout=RUNNER_SHUTDOWN_TIMEOUT,
        handle_signals=False,
        access_log_class=EdgeAccessLogger,
        access_log=ACCESS_LOGGER,
    )


# Start-up checks -------------------------------------------------------------------------------
#: backlog of the listening socket (the asyncio default)
BACKLOG = 100


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
                sock.listen(BACKLOG)
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
        elif path.stat().st_size != spec.bytes:
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
def _services_ctx(settings: Settings, config_path: Path | None) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if not (settings.mqtt.enabled or settings.cameras):
            yield
            return
        from edge.camera.service import edge_services

        async with edge_services(
            settings, app[PIPELINE], app[STORE], app[LIVENESS], config_path=config_path
        ):
            yield

    return ctx


def ready_line(settings: Settings, addresses: list[Any]) -> str:
    """The last start-up line: where the service answers, its docs, where the key is."""
    host, port = addresses[0][:2] if addresses else (settings.server.host, settings.server.port)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    shown = f"[{host}]" if ":" in str(host) else str(host)
    url = f"http://{shown}:{port}"
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


# The command ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (default: server.host)")
    parser.add_argument("--port", type=int, help="listen port (default: server.port; 0 = any)")


async def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    config_path: Path | None = None,
    sockets: list[socket.socket] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; `sockets` are listeners bound by `bind_listeners`."""
    if sockets is None:
        sockets = bind_listeners(host, port)
    app = create_app(settings)
    app.cleanup_ctx.append(_services_ctx(settings, config_path))
    runner = make_runner(app, settings)
    await runner.setup()
    for sock in sockets:
        await web.SockSite(runner, sock).start()
    for addr in runner.addresses:
        log.info("listening on http://%s:%s", *addr[:2])

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


def run(settings: Settings, args: argparse.Namespace) -> int:
    host = getattr(args, "host", None) or settings.server.host
    port = getattr(args, "port", None)
    port = settings.server.port if port is None else port
    config = getattr(args, "config", None) or os.environ.get("EDGE_CONFIG")
    config_path = Path(config).expanduser().resolve() if config else None
    sockets = bind_listeners(host, port)  # first: a taken port fails before anything loads
    try:
        check_models(settings, config_path)
        return asyncio.run(serve(settings, host, port, config_path=config_path, sockets=sockets))
    finally:
        for sock in sockets:
            sock.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m edge.api.server` (same as `edge-face serve`)."""
    import sys

    from edge.cli import main as cli_main

    return cli_main(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
