"""Slow and silent clients over real loopback sockets: read timeouts answer 408 (contract
body) and close, and hundreds of slow-loris connections cannot stop a real search."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import resource
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_helpers import assert_contract, parse_response, read_response, request_bytes

from tests.support.faces import FACES, FacesServer, face_server
from tests.support.images import img, pic
from tests.support.net import free_port, read_all
from tests.support.servers import KEY_A, serve_process, write_serve_config

MODELS = "/api/v1/models"
#: bounds every wait below; the server's own timeouts are 1 s
WAIT = 20.0


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[FacesServer]:
    """A server with 1-second header and body timeouts."""
    with face_server(
        tmp_path_factory.mktemp("slow"), model_dir, header_timeout_s=1, body_timeout_s=1
    ) as srv:
        yield srv


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def still_serving(srv: FacesServer) -> None:
    assert srv.call("GET", MODELS).status == 200


def test_half_a_request_line_gets_408_and_the_connection_closes(quick: FacesServer) -> None:
    with connect(quick.port) as s:
        s.sendall(b"GET /api/v1/mod")
        answer = read_all(s)  # old code: socket timeout, the server waited forever
    assert_contract(parse_response(answer), 408, 408)
    still_serving(quick)


def test_headers_trickled_byte_by_byte_get_408(quick: FacesServer) -> None:
    """The header deadline runs from the first byte; more bytes do not extend it."""
    head = request_bytes("GET", MODELS, headers={"X-Pad": "p" * 200})[:-2]  # never ends
    with connect(quick.port) as s:
        for i in range(len(head)):
            s.sendall(head[i : i + 1])
            if select.select([s], [], [], 0.1)[0]:
                break  # the server answered
        else:
            pytest.fail("the server let a client trickle its headers for the whole test")
        assert_contract(parse_response(read_all(s)), 408, 408)
    still_serving(quick)


def test_a_silent_client_is_disconnected_without_an_answer(quick: FacesServer) -> None:
    with connect(quick.port) as s:
        assert read_all(s) == b""  # closed; no 408 to a client that asked nothing
    still_serving(quick)


def test_half_of_a_next_request_on_a_kept_alive_connection_gets_408(quick: FacesServer) -> None:
    with connect(quick.port) as s:
        s.sendall(request_bytes("GET", MODELS, headers={"Connection": "keep-alive"}))
        assert read_response(s).status == 200
        time.sleep(1.5)  # idle longer than the header timeout: keep-alive, not a timeout
        s.sendall(b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\n")
        assert_contract(parse_response(read_all(s)), 408, 408)
    still_serving(quick)


@pytest.mark.parametrize("sent", [0, 10])
def test_a_body_that_does_not_arrive_gets_408_and_nothing_is_written(
    quick: FacesServer, testdata: Path, sent: int
) -> None:
    photo = img(pic(testdata / "faces_by_identity" / "barack_obama", "1"))
    body = json.dumps({"model": "EDGE_FACE_V1", "image": photo}).encode()
    before = quick.count()
    with connect(quick.port) as s:
        s.sendall(request_bytes("POST", FACES, body)[: -len(body) + sent])
        assert_contract(parse_response(read_all(s)), 408, 408)
    assert quick.count() == before
    still_serving(quick)


# The connection cap ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[FacesServer]:
    """At most 2 connections, long timeouts: only the cap decides below."""
    with face_server(
        tmp_path_factory.mktemp("cap"),
        model_dir,
        max_connections=2,
        header_timeout_s=300,
        body_timeout_s=300,
    ) as srv:
        yield srv


def test_at_the_cap_the_idlest_request_head_makes_room(capped: FacesServer) -> None:
    with connect(capped.port) as oldest, connect(capped.port) as younger:
        oldest.sendall(b"GET /api/v1/mod")
        time.sleep(0.3)  # so "oldest" is the older of the two
        younger.sendall(b"GET /api/v1/mod")
        time.sleep(0.3)
        still_serving(capped)  # the third connection is served...
        assert_contract(parse_response(read_all(oldest)), 408, 408)  # ...at its cost
        younger.sendall(b"els HTTP/1.1\r\nHost: x\r\napi-key: " + KEY_A.encode() + b"\r\n\r\n")
        assert read_response(younger).status == 200  # the younger one was left alone


def test_at_the_cap_with_every_connection_busy_a_new_one_gets_503(capped: FacesServer) -> None:
    """Requests in progress (here: uploading a body) are never cut for a newcomer."""
    busy = [connect(capped.port) for _ in range(2)]
    try:
        for s in busy:
            s.sendall(request_bytes("POST", FACES, b"{" + b" " * 99)[:-90])
        time.sleep(0.3)
        with connect(capped.port) as extra:
            body = assert_contract(parse_response(read_all(extra)), 503, 503)
        assert "retry" in body["message"]
    finally:
        for s in busy:
            s.close()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:  # the server notices the closed uploads
        with contextlib.suppress(OSError, http.client.HTTPException):
            if capped.call("GET", MODELS, timeout=5).status == 200:
                break
        time.sleep(0.2)
    still_serving(capped)


# Slow-loris at scale, against a real `edge-face serve` with a small open-file limit ---------------
FD_LIMIT = 256
SLOW_CLIENTS = 300  # more than the process could hold open at once


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def _status(port: int) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/readyz")
        return conn.getresponse().status
    except OSError:
        return None


@pytest.fixture
def served_small(tmp_path: Path, model_dir: Path) -> Iterator[tuple[int, Path]]:
    """`edge-face serve` with `ulimit -n 256`, like a box whose unit sets no LimitNOFILE,
    and a header timeout (60 s) longer than the test, so only the connection cap helps."""
    port = free_port()
    cfg = write_serve_config(tmp_path, model_dir, "loris", header_timeout_s=60)
    log = tmp_path / "serve.log"
    proc = serve_process(cfg, port, log, preexec_fn=_limit_fds)
    try:
        deadline = time.monotonic() + 120
        while _status(port) != 200 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _status(port) == 200, log.read_text()
        yield port, log
    finally:
        proc.kill()
        proc.wait(30)


def open_slow_clients(port: int, n: int) -> list[socket.socket]:
    """`n` connections that each send half a request line and then nothing. Connected
    without blocking: with the old server, the backlog fills and connect() would hang."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    pending = list(socks)
    deadline = time.monotonic() + 5
    while pending and time.monotonic() < deadline:
        _, writable, _ = select.select([], pending, [], 0.2)
        for s in writable:
            with contextlib.suppress(OSError):
                s.send(b"POST /api/v1/entities/faces/search HTTP/1.1\r\nHost: x\r\nCont")
            pending.remove(s)
    return socks


def test_hundreds_of_slow_loris_clients_do_not_stop_a_search(
    served_small: tuple[int, Path], testdata: Path
) -> None:
    port, log = served_small
    photo = img(pic(testdata / "faces_by_identity" / "barack_obama", "1"))
    body = json.dumps({"model": "EDGE_FACE_V1", "image": photo})
    slow = open_slow_clients(port, SLOW_CLIENTS)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        conn.request(
            "POST",
            FACES + "/search",
            body=body,
            headers={"api-key": KEY_A, "Content-Type": "application/json"},
        )
        r = conn.getresponse()
        answer: Any = json.loads(r.read())
        assert r.status == 200, answer
        assert answer["count"] == 0  # nothing enrolled: an answer, not an error
        # The search was answered while the slow clients were still connected on our side.
        assert all(s.fileno() >= 0 for s in slow)
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read().decode()
        assert re.search(r'dropped_total\{reason="evicted"\} [1-9]', metrics), metrics[-2000:]
    finally:
        for s in slow:
            s.close()
    text = log.read_text()
    assert "max_connections 512 lowered to 128" in text, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
