"""The outermost middleware: request id, transport limits, error mapping and metrics.

Every failure leaves as the contract body `{code, name, message}` with the api.md §1
status; an unexpected exception becomes a 500 whose body names only the request id (the
traceback goes to the log with that id, the request body never does).

Content type rule [decision]: a request that carries a body (POST/PUT/PATCH with a
non-empty body) must be JSON: `application/json` or any `application/*+json`, with no
charset or charset utf-8 (any case). A missing Content-Type is accepted and the body parsed
as JSON, because some embedded HTTP clients omit it; anything else is 415. A body-less
request (DELETE, GET, an empty POST) is never checked. A body with any Content-Encoding
other than `identity` is 415 too: it is never decoded (no decompression bombs, and the
5 MB limit stays a limit on what the client sent).

Hostile input never reaches a 500: a JSON body nested deeper than `MAX_JSON_DEPTH` is 111,
an HTTP version other than 1.x is 505, a body that does not arrive within
`server.body_timeout_s` is 408, and messages quote client text only as a short excerpt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from edge.api.schemas import excerpt
from edge.api.state import READY, REQUEST_ID, SETTINGS
from edge.errors import ERROR_CATALOGUE, EdgeError
from edge.metrics import REGISTRY

log = logging.getLogger("edge.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_SECONDS = REGISTRY.histogram(
    "edge_http_request_seconds", "HTTP request latency per route template and method"
)
REQUESTS = REGISTRY.counter(
    "edge_http_requests_total", "HTTP requests per route template, method and status"
)

_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: aiohttp status -> (code, name) where the contract name differs from the catalogue's
_HTTP_NAMES = {404: (404, "route_not_found")}
#: [decision] JSON bodies of this API are a few levels deep; far deeper is an attack
MAX_JSON_DEPTH = 32
#: a message longer than this is cut (the echo of client text is already capped)
MAX_MESSAGE = 400
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def safe_message(text: str) -> str:
    """The last guard before a message leaves: no control characters, bounded length."""
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def error_response(err: EdgeError, request_id: str = "") -> web.Response:
    body = err.body()
    body["message"] = safe_message(str(body["message"]))
    resp = web.json_response(body, status=err.http_status)
    if request_id:
        resp.headers["x-request-id"] = request_id
    if err.http_status in (408, 505):
        resp.force_close()  # the rest of the request is unread or unreadable
    return resp


def request_id_for(request: web.BaseRequest) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _SANE_ID.match(given) else uuid.uuid4().hex


def route_label(request: web.Request) -> str:
    """The route template (bounded cardinality), never the raw path."""
    match = request.match_info
    if match.http_exception is not None:
        return "unmatched"
    resource = match.route.resource
    return resource.canonical if resource is not None else "unmatched"


def headers_size(request: web.BaseRequest) -> int:
    """Bytes of all header lines as sent: name, ': ', value, CRLF."""
    return sum(len(k) + len(v) + 4 for k, v in request.raw_headers)


def check_limits(request: web.Request) -> None:
    """414/431/413/415 from the contract, before any handler reads the body."""
    server = request.app[SETTINGS].server
    uri = len(request.raw_path.encode("utf-8", "surrogateescape"))
    if uri > server.max_uri_bytes:
        raise EdgeError(414, f"request URI is {uri} bytes; the limit is {server.max_uri_bytes}")
    size = headers_size(request)
    if size > server.max_header_bytes:
        raise EdgeError(
            431, f"request headers are {size} bytes; the limit is {server.max_header_bytes}"
        )
    length = request.content_length
    if length is not None and length > server.max_body_bytes:
        raise EdgeError(
            413, f"request body is {length} bytes; the limit is {server.max_body_bytes}"
        )
    if request.version.major != 1:
        raise EdgeError(
            505,
            f"HTTP/{request.version.major}.{request.version.minor} is not supported; send HTTP/1.1",
        )
    has_body = bool(length) or (length is None and request.body_exists)
    if has_body:
        check_content_encoding(request.headers.getall("Content-Encoding", []))
    if request.method in BODY_METHODS and has_body:
        check_content_type(request.headers.get("Content-Type"))


def check_content_encoding(values: list[str]) -> None:
    """A compressed body is refused, not decoded (see the module docstring)."""
    codings = [c.strip().lower() for v in values for c in v.split(",") if c.strip()]
    other = [c for c in codings if c != "identity"]
    if other:
        raise EdgeError(
            415,
            f"Content-Encoding '{excerpt(other[0])}' is not supported;"
            " send the JSON body uncompressed",
        )


def check_content_type(value: str | None) -> None:
    if value is None:
        return  # [decision] missing Content-Type: parse as JSON
    mime, _, params = value.partition(";")
    mime = mime.strip().lower()
    if not (
        mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))
    ):
        raise EdgeError(
            415,
            f"Content-Type '{excerpt(mime) or '(empty)'}' is not supported; send application/json",
        )
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset" and val.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise EdgeError(
                415, f"charset '{excerpt(val.strip())}' is not supported; send UTF-8 JSON"
            )


async def read_body(request: web.Request) -> bytes:
    """The whole body, within `server.body_timeout_s` (408) and the size limit (413).

    aiohttp itself waits for a body forever: a client trickling a byte a minute would hold
    its connection (and its share of memory) for hours.
    """
    timeout = request.app[SETTINGS].server.body_timeout_s
    try:
        return await asyncio.wait_for(request.read(), timeout)
    except web.HTTPRequestEntityTooLarge as e:
        raise EdgeError(413, f"request body exceeds {e.body or 'the limit'}") from None
    except asyncio.TimeoutError:
        raise EdgeError(
            408,
            f"the request body did not arrive within {timeout:g} s; send it at once, right"
            " after the headers",
        ) from None


def json_depth_exceeds(data: object, limit: int) -> bool:
    """True when containers nest deeper than `limit` (iterative: no recursion to exhaust)."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or the contract error (111 / 408 / 413)."""
    raw = await read_body(request)
    if not raw.strip():
        raise EdgeError(111, "request body is empty; expected a JSON object")
    too_deep = EdgeError(
        111, f"request body nests JSON deeper than {MAX_JSON_DEPTH} levels; send a flat object"
    )
    try:
        data = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as e:
        raise EdgeError(111, f"request body is not valid JSON: {excerpt(str(e), 120)}") from None
    if not isinstance(data, dict):
        raise EdgeError(111, f"request body must be a JSON object, not {type(data).__name__}")
    if json_depth_exceeds(data, MAX_JSON_DEPTH):
        raise too_deep
    return data


def _from_http_exception(exc: web.HTTPException) -> EdgeError:
    status = exc.status
    if status in _HTTP_NAMES:
        code, name = _HTTP_NAMES[status]
        return EdgeError(code, "unknown path", name)
    if status == 413:
        return EdgeError(413, "request body exceeds the size limit")
    if status in ERROR_CATALOGUE and ERROR_CATALOGUE[status][0] == status:
        return EdgeError(status, exc.text or exc.reason)
    if 400 <= status < 500:
        return EdgeError(112, exc.text or exc.reason)
    return EdgeError(500, "internal error")


def http_exception_error(request: web.BaseRequest, exc: web.HTTPException) -> web.Response:
    """The contract answer for an aiohttp HTTP error (status >= 400)."""
    err = _from_http_exception(exc)
    where = excerpt(request.path)
    if exc.status == 404:
        err.message = f"no route {excerpt(request.method, 16)} {where}"
    if exc.status == 405:
        err.message = f"{excerpt(request.method, 16)} is not allowed on {where}"
    if exc.status == 417:
        err.message = (
            f"Expect: '{excerpt(request.headers.get('Expect', ''))}' is not supported;"
            " only 100-continue is"
        )
    resp = error_response(err)
    if exc.status == 405 and "Allow" in exc.headers:
        resp.headers["Allow"] = exc.headers["Allow"]
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: assigns the request id, maps every failure, records metrics."""
    rid = request_id_for(request)
    request[REQUEST_ID] = rid
    t0 = time.perf_counter()
    route = route_label(request)
    state = request.app[READY]
    state.in_flight += 1
    resp: web.StreamResponse
    try:
        if state.shutting_down and route not in ("/healthz", "/readyz"):
            raise EdgeError(503, "service unavailable: shutting down")
        check_limits(request)
        resp = await handler(request)
    except EdgeError as err:
        resp = error_response(err, rid)
    except web.HTTPException as exc:
        if exc.status < 400:
            resp = exc
        elif exc.status == 404 and request.match_info.http_exception is None:
            resp = error_response(_from_http_exception(exc), rid)  # raised by a handler
        else:
            resp = http_exception_error(request, exc)
    except Exception:
        log.exception("internal error [request_id=%s] %s %s", rid, request.method, route)
        resp = error_response(EdgeError(500, f"internal error; request id {rid}"), rid)
    finally:
        state.in_flight -= 1
    if not resp.prepared:
        resp.headers["x-request-id"] = rid
        if state.shutting_down:
            resp.force_close()  # keep-alive clients reconnect elsewhere / after restart
    elapsed = time.perf_counter() - t0
    REQUEST_SECONDS.observe(elapsed, route=route, method=request.method)
    REQUESTS.inc(route=route, method=request.method, status=str(resp.status))
    return resp
