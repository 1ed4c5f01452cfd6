"""The web console at /console: people, try it, live events and health, for one instance.

Choice [decision]: one static page shell plus a small hand-written script (no framework, no
build step), shipped as package data and inlined into each page under a hash-pinned
Content-Security-Policy, exactly like /docs. The server renders nothing per request: the
pages call the public REST API from the browser (so the console cannot drift from what
clients get, and there is no second code path into the store), photos are read, drawn and
base64-encoded in the browser only, and the live page listens to a server-sent event
stream fed by the same `RecognitionEvent` values the camera publishes to MQTT.

Routes here are console routes, not API operations: they are declared in a `RouteTable`
like every other route but recorded in the console's own registry, so the OpenAPI document
stays the API contract. Access is `edge.api.console_session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, Field

from edge.api.console_session import (
    COOKIE,
    CSRF_HEADER,
    SESSIONS,
    Session,
    SessionStore,
    current_session,
)
from edge.api.middleware import json_body
from edge.api.routes import OpenApiRegistry, RouteTable
from edge.api.state import DEVICES, KEYS, READY, SETTINGS
from edge.api.static_page import inline_page
from edge.camera.events import RecognitionEvent
from edge.camera.payload import recognition_payload
from edge.camera.service import EdgeServices
from edge.errors import EdgeError

log = logging.getLogger("edge.api.console")

routes = RouteTable()
PAGES = ("people", "try", "live", "health")
#: events buffered per open live page; a page that falls further behind loses the oldest
QUEUE_LIMIT = 200
#: a comment line keeps idle proxies and browsers from closing the stream
HEARTBEAT_S = 15.0
#: how often a stream notices a shutdown, a signed-out session or a closed page
POLL_S = 0.5
#: live pages open at once: each holds a connection, and an edge box has few
MAX_STREAMS = 8


# Pages -----------------------------------------------------------------------------------------
def build_pages() -> tuple[dict[str, str], str]:
    """Each page: the shell with the stylesheet, the script and a policy allowing just them."""
    page, policy = inline_page(
        "console",
        css_marker="/*CONSOLE_CSS*/",
        js_marker="/*CONSOLE_JS*/",
        csp_marker="/*CONSOLE_CSP*/",
        img_src="'self' data: blob:",
    )
    policy += "; frame-ancestors 'none'"  # only honoured as a header, not in the <meta>
    pages = {name: page.replace('data-page=""', f'data-page="{name}"') for name in PAGES}
    pages["signin"] = page.replace('data-page=""', 'data-page="signin"')
    return pages, policy


PAGE_HTML, PAGE_POLICY = build_pages()
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page(name: str) -> web.Response:
    resp = web.Response(text=PAGE_HTML[name], content_type="text/html", headers=PAGE_HEADERS)
    resp.enable_compression()  # gzip when the browser accepts it: a quarter of the bytes
    return resp


def _see_other(where: str) -> web.Response:
    """A redirect answered (not raised: the error middleware maps raised HTTP errors)."""
    return web.Response(status=303, headers={"Location": where, "Cache-Control": "no-store"})


def _session(request: web.Request) -> Session | None:
    return current_session(request, request.app[KEYS])


def _require_session(request: web.Request, *, csrf: bool = True) -> Session:
    session = _session(request)
    if session is None:
        raise EdgeError(401, "not signed in to the console; sign in at /console/signin")
    if csrf:
        token = request.headers.get(CSRF_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(token, session.csrf.encode()):
            raise EdgeError(401, f"missing or wrong {CSRF_HEADER} header; reload the page")
    return session


@routes.route("GET", "/console", summary="The console: people when signed in", responses={})
async def console_root(request: web.Request) -> web.StreamResponse:
    return _see_other("/console/people" if _session(request) else "/console/signin")


@routes.route("GET", "/console/signin", summary="Console sign-in page", responses={})
async def signin_page(request: web.Request) -> web.StreamResponse:
    return _page("signin")


@routes.route("GET", "/console/{page:people|try|live|health}", summary="A page", responses={})
async def console_page(request: web.Request) -> web.StreamResponse:
    if _session(request) is None:
        return _see_other("/console/signin")
    return _page(request.match_info["page"])


# Session ---------------------------------------------------------------------------------------
def _same_origin(request: web.Request) -> bool:
    """A browser names the page that sent a POST; only this box's own pages may sign in.

    The host is compared, not the scheme: behind a TLS-terminating proxy the page is https
    while this server sees http."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


@routes.route("POST", "/console/session", summary="Sign in with an api-key", responses={})
async def sign_in(request: web.Request) -> web.StreamResponse:
    if not _same_origin(request):
        raise EdgeError(401, "sign in from this box's own console page")
    data = await json_body(request)
    presented = data.get("apiKey")
    if not isinstance(presented, str) or not presented.strip():
        raise EdgeError(110, "apiKey is required: paste an api-key of this box")
    store = request.app[SESSIONS]
    store.check_sign_in_allowed()
    secret = presented.strip()
    key = request.app[KEYS].lookup(secret)
    if key is None:
        store.sign_in_failed()
        log.info("console sign-in refused: unknown api-key")
        raise EdgeError(401, "unknown api-key; use a key of this box (see its api-key file)")
    sid, session = store.create(key, secret)
    log.info("console sign-in: key %s, instance %s", key.key_id, key.instance)
    resp = web.json_response({"instance": session.instance, "csrf": session.csrf})
    resp.set_cookie(
        COOKIE,
        sid,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure or request.app[SETTINGS].server.tls_cert_file is not None,
    )
    return resp


@routes.route("GET", "/console/session", summary="The signed-in session", responses={})
async def session_info(request: web.Request) -> web.StreamResponse:
    """The page's CSRF token: readable by this origin's scripts only (no CORS)."""
    session = _require_session(request, csrf=False)
    services = request.app[DEVICES].current
    cameras = (
        sorted(n for n, r in services.cameras.items() if r.cfg.instance == session.instance)
        if services is not None
        else []
    )
    settings = request.app[SETTINGS]
    return web.json_response(
        {
            "instance": session.instance,
            "keyId": session.key_id,
            "csrf": session.csrf,
            "deviceId": settings.device_id,
            "cameras": cameras,
            "sync": {"enabled": settings.sync.enabled},
        },
        headers={"Cache-Control": "no-store"},
    )


@routes.route("DELETE", "/console/session", summary="Sign out", responses={})
async def sign_out(request: web.Request) -> web.StreamResponse:
    _require_session(request)
    request.app[SESSIONS].drop(request.cookies.get(COOKIE, ""))
    resp = web.Response(status=204)
    resp.del_cookie(COOKIE, path="/")
    return resp


# Cameras ---------------------------------------------------------------------------------------
def _own_cameras(services: EdgeServices | None, session: Session) -> dict[str, Any]:
    if services is None:
        return {}
    return {n: r for n, r in list(services.cameras.items()) if r.cfg.instance == session.instance}


@routes.route("GET", "/console/cameras", summary="Health of this instance's cameras", responses={})
async def cameras(request: web.Request) -> web.StreamResponse:
    session = _require_session(request)
    own = _own_cameras(request.app[DEVICES].current, session)
    return web.json_response({"cameras": [r.worker.stats() for r in own.values()]})


class CameraEnrol(BaseModel):
    key: str = Field(min_length=1, max_length=256)
    collection: str = Field("", max_length=256)


@routes.route(
    "POST",
    "/console/cameras/{name}/enroll",
    summary="Enrol the person in front of a camera",
    responses={},
)
async def camera_enroll(request: web.Request) -> web.StreamResponse:
    """The camera's own enrolment (the MQTT `enroll` command's), for this instance only."""
    session = _require_session(request)
    services = request.app[DEVICES].current
    name = request.match_info["name"]
    if name not in _own_cameras(services, session) or services is None:
        raise EdgeError(113, f"camera {name!r} does not exist on this box for this api-key")
    data = await json_body(request)
    if not data.get("key"):
        raise EdgeError(110, "key is required: the name to enrol the person under")
    try:
        req = CameraEnrol.model_validate(data)
    except ValueError:
        raise EdgeError(112, "key (1-256 characters) and collection (<= 256) are needed") from None
    from edge.camera.service import EnrollRequest  # the camera side is loaded only if serving

    cmd = EnrollRequest(camera=name, key=req.key, collection=req.collection, ttl=-1, timeoutS=5.0)
    result = await asyncio.to_thread(services.enroll, cmd)
    return web.json_response(result, status=201)


# Live events -----------------------------------------------------------------------------------
def _offer(queue: asyncio.Queue[dict[str, object]], item: dict[str, object]) -> None:
    if queue.full():
        queue.get_nowait()  # a slow page loses the oldest event, never blocks the camera
    queue.put_nowait(item)


@routes.route("GET", "/console/events", summary="Recognition events (SSE)", responses={})
async def events(request: web.Request) -> web.StreamResponse:
    """One `recognition` event per track decision of this instance's cameras.

    No CSRF header here: `EventSource` cannot send one, the stream only reads, the cookie is
    `SameSite=Strict` and another origin cannot read the answer.
    """
    session = _require_session(request, csrf=False)
    sid = request.cookies.get(COOKIE, "")
    store = request.app[SESSIONS]
    if store.streams >= MAX_STREAMS:
        raise EdgeError(429, f"{MAX_STREAMS} live pages are open already; close one and reload")
    services = request.app[DEVICES].current
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue(QUEUE_LIMIT)

    def listener(event: RecognitionEvent) -> None:  # on a camera thread
        if _camera_instance(services, event.camera) == session.instance:
            loop.call_soon_threadsafe(_offer, queue, recognition_payload(event))

    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    if services is not None:
        services.listeners.append(listener)
    state = request.app[READY]
    store.streams += 1
    try:
        await resp.write(b"retry: 2000\n: connected\n\n")
        idle = 0.0
        while not state.shutting_down and store.get(sid) is not None and _open(request):
            try:
                item = await asyncio.wait_for(queue.get(), POLL_S)
            except asyncio.TimeoutError:
                idle += POLL_S
                if idle >= HEARTBEAT_S:
                    await resp.write(b": keep-alive\n\n")
                    idle = 0.0
                continue
            idle = 0.0
            data = json.dumps(item, separators=(",", ":"))
            await resp.write(f"event: recognition\ndata: {data}\n\n".encode())
    except ConnectionResetError:
        pass  # the page went away
    finally:
        store.streams -= 1
        if services is not None:
            with contextlib.suppress(ValueError):
                services.listeners.remove(listener)
    return resp


def _open(request: web.Request) -> bool:
    """False once the page has gone (its connection is closing)."""
    transport = request.transport
    return transport is not None and not transport.is_closing()


def _camera_instance(services: EdgeServices | None, camera: str) -> str | None:
    runner = services.cameras.get(camera) if services is not None else None
    return runner.cfg.instance if runner is not None else None


# Wiring ----------------------------------------------------------------------------------------
def add_console(app: web.Application) -> None:
    """Serve the console when `console.enabled`; its session store lives in the app."""
    settings = app[SETTINGS]
    if not settings.console.enabled:
        return
    app[SESSIONS] = SessionStore(settings.console)
    routes.add_to(app.router, OpenApiRegistry(title="edge-face console"), settings)
