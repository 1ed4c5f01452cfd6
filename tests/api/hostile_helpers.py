"""Raw-socket HTTP for the hostile-input tests: aiohttp's or http.client's own client would
normalise (or refuse to send) exactly the bytes these tests are about."""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass
from typing import Any

from edge.errors import ERROR_CATALOGUE
from tests.support.servers import KEY_A


@dataclass
class RawResp:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def parse_response(data: bytes) -> RawResp:
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {data[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", len(rest)))
    return RawResp(status, headers, rest[:length])


def read_response(sock: socket.socket) -> RawResp:
    """One response: the head, then exactly Content-Length bytes (or until EOF)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    resp = parse_response(buf)
    want = int(resp.headers.get("content-length", "0"))
    body = buf.partition(b"\r\n\r\n")[2]
    while len(body) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    resp.body = body[:want]
    return resp


def exchange(port: int, data: bytes, timeout: float = 30) -> RawResp:
    """Send `data` as it is and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        # the server may answer early (e.g. 413) and close: then read what it said
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        return read_response(s)


def request_bytes(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    headers: dict[str, str] | None = None,
    version: str = "HTTP/1.1",
    key: str | None = KEY_A,
) -> bytes:
    hdrs = {"Host": "127.0.0.1", "Connection": "close"}
    if key is not None:
        hdrs["api-key"] = key
    if body:
        hdrs["Content-Type"] = "application/json"
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return head.encode("latin-1") + b"\r\n" + body


def assert_contract(resp: RawResp, status: int, code: int) -> dict[str, Any]:
    """Exact status, a JSON `{code, name, message}` body with the catalogue's name."""
    assert resp.status == status, (resp.status, resp.body[:300])
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json
    assert set(body) == {"code", "name", "message"}, body
    assert body["code"] == code, body
    if code != 404:
        assert body["name"] == ERROR_CATALOGUE[code][1], body
    assert isinstance(body["message"], str) and body["message"], body
    assert "x-request-id" in resp.headers
    return body
