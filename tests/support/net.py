"""Loopback ports for the real servers and brokers the tests start, and a plain JSON call
to a server running in another process."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the OS picks it; the caller binds it).

    Only for a separate process that must be told its port up front; an in-process server
    binds port 0 itself and reads the port back, which leaves no window for a clash.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def json_call(
    port: int, method: str, path: str, body: Any = None, *, key: str, timeout: float = 60
) -> tuple[int, Any]:
    """(status, parsed JSON or None) of one request to 127.0.0.1:`port` with an api-key."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"api-key": key, "Content-Type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)
    finally:
        conn.close()


def read_all(s: socket.socket) -> bytes:
    """Everything until the server closes the connection (a reset counts as closed)."""
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
