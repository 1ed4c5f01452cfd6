"""Console access rules over real HTTP on loopback (no browser needed).

The product app runs without models (the rules do not need them) plus the test-only
`/test/echo` route, which answers with the instance the request was authenticated as: that is
how a console session is shown to stand for its own key's instance and no other.
"""

from __future__ import annotations

import http.client
import logging
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from edge.api.console_session import COOKIE, CSRF_HEADER, SessionStore
from edge.api.keyring import ApiKey
from edge.config import ConsoleConfig
from tests.support.servers import (
    KEY_A,
    KEY_B,
    Gate,
    Resp,
    Server,
    add_test_routes,
    api_settings,
    start_server,
    stop_server,
)


def _serve(tmp: Path, model_dir: Path, **overrides: object) -> Server:
    from edge.api.app import create_app

    settings = api_settings(tmp, model_dir)
    for name, value in overrides.items():
        setattr(settings, name, value)
    app = create_app(settings, load_models=False)
    add_test_routes(app, Gate())
    return start_server(app, settings)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Server]:
    srv = _serve(tmp_path_factory.mktemp("console"), model_dir)
    yield srv
    stop_server(srv)


def sign_in(srv: Server, key: str, **headers: str) -> tuple[Resp, str, str]:
    """(answer, session id from Set-Cookie, csrf token) for a JSON sign-in."""
    r = srv.call("POST", "/console/session", {"apiKey": key}, key=None, headers=headers)
    jar: SimpleCookie = SimpleCookie(r.headers.get("set-cookie", ""))
    sid = jar[COOKIE].value if COOKIE in jar else ""
    csrf = r.json.get("csrf", "") if r.status == 200 else ""
    return r, sid, csrf


def with_session(sid: str, csrf: str | None = None) -> dict[str, str]:
    headers = {"Cookie": f"{COOKIE}={sid}"}
    if csrf is not None:
        headers[CSRF_HEADER] = csrf
    return headers


def test_pages_need_a_session_and_sign_in_is_a_page(console: Server) -> None:
    for path in ("/console", "/console/people", "/console/try", "/console/live"):
        r = console.call("GET", path, key=None)
        assert r.status == 303 and r.headers["location"] == "/console/signin", path
    page = console.call("GET", "/console/signin", key=None)
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    html = page.raw.decode()
    assert 'data-page="signin"' in html
    assert "http://" not in html and "https://" not in html  # nothing from another host


def test_sign_in_sets_a_strict_http_only_cookie_and_never_returns_the_key(
    console: Server,
) -> None:
    r, sid, csrf = sign_in(console, KEY_A)
    assert r.status == 200, r.raw
    assert r.json["instance"] == "inst-a" and csrf
    assert KEY_A not in r.raw.decode()
    cookie = r.headers["set-cookie"]
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "path"} <= attrs and "samesite=strict" in cookie.lower()
    assert "secure" not in attrs  # plain HTTP here; `Secure` is set when the box serves TLS
    assert sid and sid != KEY_A and KEY_A not in cookie

    page = console.call("GET", "/console/people", key=None, headers=with_session(sid))
    assert page.status == 200 and 'data-page="people"' in page.raw.decode()
    info = console.call("GET", "/console/session", key=None, headers=with_session(sid))
    assert info.status == 200 and info.json["csrf"] == csrf and info.json["cameras"] == []


def test_a_session_stands_for_its_own_key_and_instance_only_with_its_csrf_token(
    console: Server,
) -> None:
    _r, sid_a, csrf_a = sign_in(console, KEY_A)
    _r, sid_b, csrf_b = sign_in(console, KEY_B)
    body = {"x": 1}

    r = console.call("POST", "/test/echo", body, key=None, headers=with_session(sid_a, csrf_a))
    assert r.status == 200 and r.json["instance"] == "inst-a"
    r = console.call("POST", "/test/echo", body, key=None, headers=with_session(sid_b, csrf_b))
    assert r.status == 200 and r.json["instance"] == "inst-b"

    # the cookie alone (what a forged cross-site request could carry at best) is refused
    for headers in (with_session(sid_a), with_session(sid_a, csrf_b), with_session(sid_a, "")):
        r = console.call("POST", "/test/echo", body, key=None, headers=headers)
        assert r.status == 401 and r.json["code"] == 401, r.raw
        assert CSRF_HEADER in r.json["message"]
    r = console.call("GET", "/api/v1/entities/faces", key=None, headers=with_session(sid_a))
    assert r.status == 401

    # an unknown session id is not a key either
    r = console.call("POST", "/test/echo", body, key=None, headers=with_session("forged", csrf_a))
    assert r.status == 401 and "sign in again" in r.json["message"]


def test_a_wrong_key_is_refused_with_the_contract_body_and_no_cookie(console: Server) -> None:
    r, sid, _csrf = sign_in(console, "not-a-key-of-this-box")
    assert r.status == 401 and set(r.json) == {"code", "name", "message"}
    assert r.json["name"] == "unauthorized" and not sid and "set-cookie" not in r.headers
    r = console.call("POST", "/console/session", {}, key=None)
    assert r.status == 400 and r.json["code"] == 110


def test_sign_in_only_from_this_box_as_json(console: Server) -> None:
    r, sid, _ = sign_in(console, KEY_A, Origin="http://evil.example")
    assert r.status == 401 and not sid
    # a cross-site HTML form can only post form or text bodies: refused before the key is read
    r = console.call(
        "POST",
        "/console/session",
        raw=b"apiKey=" + KEY_A.encode(),
        key=None,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 415 and "set-cookie" not in r.headers


def test_sign_out_ends_the_session(console: Server) -> None:
    _r, sid, csrf = sign_in(console, KEY_A)
    r = console.call("DELETE", "/console/session", key=None, headers=with_session(sid))
    assert r.status == 401  # signing out is a write: the csrf token is needed too
    r = console.call("DELETE", "/console/session", key=None, headers=with_session(sid, csrf))
    assert r.status == 204 and f"{COOKIE}=" in r.headers["set-cookie"]
    r = console.call("POST", "/test/echo", {"x": 1}, key=None, headers=with_session(sid, csrf))
    assert r.status == 401 and "sign in again" in r.json["message"]
    page = console.call("GET", "/console/people", key=None, headers=with_session(sid))
    assert page.status == 303


def test_console_routes_refuse_without_a_session(console: Server) -> None:
    for method, path in (
        ("GET", "/console/session"),
        ("GET", "/console/cameras"),
        ("GET", "/console/events"),
        ("POST", "/console/cameras/door/enroll"),
    ):
        r = console.call(method, path, key=None)
        assert r.status == 401 and r.json["code"] == 401, (method, path)


def test_the_event_stream_ends_when_the_session_does(console: Server) -> None:
    _r, sid, csrf = sign_in(console, KEY_A)
    conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
    try:
        conn.request("GET", "/console/events", headers=with_session(sid))
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("content-type") == "text/event-stream"
        assert resp.readline() == b"retry: 2000\n"
        console.call("DELETE", "/console/session", key=None, headers=with_session(sid, csrf))
        rest = resp.read()  # returns once the server ends the stream
        assert b"event:" not in rest
    finally:
        conn.close()


def test_the_api_key_is_never_logged(console: Server, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        sign_in(console, KEY_A)
        sign_in(console, "wrong-" + KEY_A)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "console sign-in" in text  # the sign-ins were logged...
    assert KEY_A not in text  # ...without the key


def test_console_off_serves_nothing_and_ignores_cookies(tmp_path: Path, model_dir: Path) -> None:
    srv = _serve(tmp_path, model_dir, console=ConsoleConfig(enabled=False))
    try:
        for method, path in (("GET", "/console"), ("GET", "/console/people")):
            r = srv.call(method, path, key=None)
            assert r.status == 404 and r.json["name"] == "route_not_found"
        r = srv.call("POST", "/console/session", {"apiKey": KEY_A}, key=None)
        assert r.status == 404
        r = srv.call("GET", "/api/v1/entities/faces", key=None, headers=with_session("x", "y"))
        assert r.status == 401 and "missing api-key" in r.json["message"]
    finally:
        stop_server(srv)


def test_the_cookie_is_secure_when_the_box_serves_https(tmp_path: Path, model_dir: Path) -> None:
    # only the setting matters for the flag: the files are not loaded by this in-process app
    https = api_settings(tmp_path, model_dir).server.model_copy(
        update={"tls_cert_file": tmp_path / "box.pem", "tls_key_file": tmp_path / "box.key"}
    )
    srv = _serve(tmp_path, model_dir, server=https)
    try:
        r, sid, _csrf = sign_in(srv, KEY_A)
        assert r.status == 200 and sid
        attrs = {a.strip().lower() for a in r.headers["set-cookie"].split(";")}
        assert {"secure", "httponly", "samesite=strict"} <= attrs
    finally:
        stop_server(srv)


# The session store on its own, with a hand-moved clock --------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_end_after_their_idle_time_and_the_oldest_goes_first() -> None:
    clock = Clock()
    store = SessionStore(ConsoleConfig(session_idle_s=60, max_sessions=2), clock=clock)
    key = ApiKey(b"k", "inst")
    one, s1 = store.create(key, "k")
    clock.now += 59
    assert store.get(one) is s1  # used: its idle timer restarts
    clock.now += 59
    assert store.get(one) is s1
    clock.now += 61
    assert store.get(one) is None  # idle too long
    a, _ = store.create(key, "k")
    b, _ = store.create(key, "k")
    assert store.get(a) is not None  # a is now the most recently used
    c, _ = store.create(key, "k")
    assert len(store) == 2 and store.get(b) is None and store.get(a) and store.get(c)
    assert s1.csrf != store.get(a).csrf  # type: ignore[union-attr]


def test_live_streams_are_capped_and_a_closed_page_frees_its_place(console: Server) -> None:
    from edge.api.console import MAX_STREAMS

    _r, sid, _csrf = sign_in(console, KEY_A)

    def open_stream() -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
        conn.request("GET", "/console/events", headers=with_session(sid))
        return conn, conn.getresponse()

    streams = [open_stream() for _ in range(MAX_STREAMS)]
    try:
        for _conn, resp in streams:
            assert resp.status == 200 and resp.readline() == b"retry: 2000\n"
        _conn, refused = open_stream()
        assert refused.status == 429 and b"live pages are open" in refused.read()
        _conn.close()
        streams.pop()[0].close()  # the page goes away
        deadline = time.monotonic() + 20
        while True:  # its place is freed once the server notices the closed connection
            conn, resp = open_stream()
            if resp.status == 200:
                streams.append((conn, resp))
                break
            conn.close()
            assert time.monotonic() < deadline, "a closed stream kept its place"
            time.sleep(0.2)
    finally:
        for conn, _resp in streams:
            conn.close()


def test_guessing_keys_is_slowed_down(tmp_path: Path, model_dir: Path) -> None:
    from edge.api.console_session import MAX_FAILURES

    srv = _serve(tmp_path, model_dir)
    try:
        for i in range(MAX_FAILURES):
            assert sign_in(srv, f"guess-{i}")[0].status == 401
        r, sid, _ = sign_in(srv, KEY_A)  # even the right key waits now
        assert r.status == 429 and not sid and "too many failed sign-ins" in r.json["message"]
    finally:
        stop_server(srv)


def test_failed_sign_ins_are_forgotten_after_the_window() -> None:
    from edge.api.console_session import FAILURE_WINDOW_S, MAX_FAILURES
    from edge.errors import EdgeError

    clock = Clock()
    store = SessionStore(ConsoleConfig(), clock=clock)
    for _ in range(MAX_FAILURES):
        store.check_sign_in_allowed()
        store.sign_in_failed()
    with pytest.raises(EdgeError) as refused:
        store.check_sign_in_allowed()
    assert refused.value.code == 429
    clock.now += FAILURE_WINDOW_S + 1
    store.check_sign_in_allowed()  # the window has passed


def test_pruning_a_key_ends_its_console_sessions(tmp_path: Path, model_dir: Path) -> None:
    from edge.api.app import create_app
    from edge.api.keyring import read_key_file, write_key_file
    from edge.config import load_settings

    settings = load_settings(None, data_dir=tmp_path / "data", models={"dir": model_dir})
    app = create_app(settings, load_models=False, announce=lambda _line: None)
    add_test_routes(app, Gate())
    srv = start_server(app, settings)
    try:
        old = read_key_file(settings.api_key_path)[0]
        _r, sid, csrf = sign_in(srv, old)
        assert sid
        echo = ("POST", "/test/echo", {"x": 1})
        assert srv.call(*echo, key=None, headers=with_session(sid, csrf)).status == 200
        write_key_file(settings.api_key_path, ["a-brand-new-key-0123456789abcdef"])  # pruned
        deadline = time.monotonic() + 20
        while srv.call(*echo, key=None, headers=with_session(sid, csrf)).status != 401:
            assert time.monotonic() < deadline, "the pruned key's session still works"
            time.sleep(0.2)
        assert srv.call("GET", "/console/people", key=None, headers=with_session(sid)).status == 303
    finally:
        stop_server(srv)
