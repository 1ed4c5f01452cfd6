"""Loopback ports for the real servers and brokers the tests start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the OS picks it; the caller binds it).

    Only for a separate process that must be told its port up front; an in-process server
    binds port 0 itself and reads the port back, which leaves no window for a clash.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
