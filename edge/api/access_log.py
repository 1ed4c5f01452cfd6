"""One access line per request: method, path, status, contract code, request id, latency.

Replaces aiohttp's Apache-style line, which carries the query string and lacks the request
id and error code an operator needs to match a client's complaint to the log. Probes
(`/healthz`, `/readyz`, `/metrics`) are logged at DEBUG: a load balancer or Prometheus
polling every few seconds would otherwise bury the real traffic. Only metadata is logged:
never a body (images), never a header value (api-keys).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from edge.api.state import API_KEY_ID, REQUEST_ID
from edge.logsetup import FIELDS

ACCESS_LOGGER = logging.getLogger("edge.access")
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
#: a longer path is cut in the log (the URI limit is 8 KiB; a log line should stay short)
MAX_PATH = 200
#: error bodies are small JSON objects; anything bigger is not one of ours
MAX_ERROR_BODY = 16384


def _printable(text: str) -> str:
    """Escape control characters so a crafted path cannot forge log lines."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def error_code(response: StreamResponse) -> int | None:
    """The contract `code` of an error response (its JSON body), else None."""
    if response.status < 400:
        return None
    body = getattr(response, "body", None)
    if not isinstance(body, (bytes, bytearray)) or len(body) > MAX_ERROR_BODY:
        return None
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


def access_fields(request: BaseRequest, response: StreamResponse, seconds: float) -> dict[str, Any]:
    """The structured fields of one access line."""
    path = request.raw_path.split("?", 1)[0]  # query values may hold data: never logged
    if len(path) > MAX_PATH:
        path = path[:MAX_PATH] + "..."
    rid = response.headers.get("x-request-id") or request.get(REQUEST_ID) or "-"
    fields: dict[str, Any] = {
        "method": _printable(request.method),
        "path": _printable(path),
        "status": response.status,
        "code": error_code(response),
        "request_id": rid,
        "latency_ms": round(seconds * 1000, 1),
        "client": request.remote or "-",
    }
    key_id = request.get(API_KEY_ID)
    if key_id:
        fields["key_id"] = key_id  # a hash prefix, never the key
    return fields


class EdgeAccessLogger(AbstractAccessLogger):
    """aiohttp `access_log_class` writing `edge.access` lines (text or JSON via the handler)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        try:
            fields = access_fields(request, response, time)
            level = logging.DEBUG if fields["path"] in PROBE_PATHS else logging.INFO
            if not self.logger.isEnabledFor(level):
                return
            code = f" code={fields['code']}" if fields["code"] is not None else ""
            msg = (
                f"{fields['method']} {fields['path']} {fields['status']}{code} "
                f"{fields['latency_ms']}ms rid={fields['request_id']} client={fields['client']}"
            )
            if "key_id" in fields:
                msg += f" key={fields['key_id']}"
            self.logger.log(level, "%s", msg, extra={FIELDS: fields})
        except Exception:  # a logging failure must never break the response path
            self.logger.exception("could not write the access line")
