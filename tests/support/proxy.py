"""A small TCP proxy on loopback that a test can cut, reset or make swallow answers.

One proxy per box-to-hub link. `block()` resets every open connection and refuses new
ones (a partition), `heal()` lets traffic through again, and `drop_answers()` forwards
requests but throws the server's bytes away (the hub commits, the box never sees the
ack: the crash point between commit and acknowledgement).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dead link or a killed peer looks to the client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # shutdown() first: close() alone does not wake a pump thread blocked in recv() on this
    # socket, and the connection would stay open until that thread returns.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class Proxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode = "open"  # open | blocked | drop_answers
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._closed = False
        self.bytes_down = 0  # server -> client bytes forwarded (what a box downloaded)
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "blocked":
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)  # the hub is down: the box sees a refused/reset connection
                continue
            with self._lock:
                self._conns += [client, upstream]
            for src, dst, answer in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, answer), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answer: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self.mode == "blocked":
                    break
                if answer and self.mode == "drop_answers":
                    continue
                dst.sendall(data)
                if answer:
                    self.bytes_down += len(data)
        except OSError:
            pass
        finally:
            _reset(src)
            _reset(dst)

    def _reset_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            _reset(c)

    def block(self) -> None:
        self.mode = "blocked"
        self._reset_all()

    def drop_answers(self) -> None:
        self.mode = "drop_answers"
        self._reset_all()  # connections opened before keep their pumps otherwise

    def heal(self) -> None:
        self.mode = "open"

    def close(self) -> None:
        self._closed = True
        self.block()
        with contextlib.suppress(OSError):
            self._listener.close()
