"""`edge-face serve`: the composition root of the long-running service.

Builds the app (and, when configured, the camera/MQTT services), listens, and on SIGTERM
or SIGINT drains: the listening socket closes at once, requests in flight get up to
`server.drain_seconds` to finish, then components close and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from edge.api.app import create_app
from edge.api.state import LIVENESS, PIPELINE, READY, STORE
from edge.config import Settings
from edge.errors import EdgeError
from edge.sdnotify import notify, watchdog_interval

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
    return EdgeRunner(app, shutdown_timeout=RUNNER_SHUTDOWN_TIMEOUT, handle_signals=False)


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


# systemd: READY=1 when /readyz turns true, WATCHDOG=1 while the event loop turns ----------
async def _systemd_notifier(app: web.Application) -> None:
    interval = watchdog_interval()
    step = min(0.25, interval) if interval else 0.25
    ready_sent = False
    next_ping = 0.0
    loop = asyncio.get_running_loop()
    while True:
        # The datagram send can block when the receiver's queue is full: never on the loop.
        if not ready_sent and app[READY].ready:
            ready_sent = True
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
    settings: Settings, host: str, port: int, *, config_path: Path | None = None
) -> int:
    app = create_app(settings)
    app.cleanup_ctx.append(_services_ctx(settings, config_path))
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    for addr in runner.addresses:
        log.info("listening on http://%s:%s", *addr[:2])

    notifier = asyncio.create_task(_systemd_notifier(app))
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
    config = getattr(args, "config", None)
    return asyncio.run(
        serve(
            settings,
            host,
            settings.server.port if port is None else port,
            config_path=Path(config) if config else None,
        )
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m edge.api.server` (same as `edge-face serve`)."""
    from edge.config import load_settings

    parser = argparse.ArgumentParser(prog="edge-face serve")
    parser.add_argument("-c", "--config")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run(load_settings(args.config), args)


if __name__ == "__main__":
    raise SystemExit(main())
