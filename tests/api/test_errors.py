"""Every error the skeleton produces: exact status and body, over real loopback HTTP."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from tests.support.servers import KEY_A, KEY_B, KEY_C, Gate, Resp, Server

MiB = 2**20


def assert_error(r: Resp, status: int, code: int, name: str) -> dict:
    assert r.status == status, r.raw
    assert r.headers["content-type"].startswith("application/json")
    body = r.json
    assert set(body) == {"code", "name", "message"}
    assert (body["code"], body["name"]) == (code, name)
    assert body["message"]
    assert r.headers.get("x-request-id")
    return body


@pytest.fixture
def warm(warm_server: tuple[Server, Gate]) -> Server:
    return warm_server[0]


# 401 ------------------------------------------------------------------------------------------
def test_missing_key_is_401(warm: Server) -> None:
    body = assert_error(warm.call("POST", "/test/echo", {}, key=None), 401, 401, "unauthorized")
    assert "api-key" in body["message"]


@pytest.mark.parametrize("header", ["api-key", "X-API-KEY", "x-api-key", "Api-Key"])
def test_unknown_key_is_401_for_each_spelling(warm: Server, header: str) -> None:
    r = warm.call("POST", "/test/echo", {}, headers={header: "not-a-key"}, key=None)
    assert_error(r, 401, 401, "unauthorized")


@pytest.mark.parametrize(
    ("header", "key", "instance"),
    [
        ("api-key", KEY_A, "inst-a"),
        ("X-Api-Key", KEY_B, "inst-b"),
    ],
)
def test_known_key_maps_to_its_instance(warm: Server, header: str, key: str, instance: str) -> None:
    r = warm.call(
        "POST", "/test/echo", {"a": 1}, headers={header: key, "instance-id": "x"}, key=None
    )
    assert r.status == 200, r.raw
    assert r.json == {"instance": instance, "keys": ["a"]}


def test_key_prefix_is_not_accepted(warm: Server) -> None:
    r = warm.call("POST", "/test/echo", {}, key=KEY_A[:-1])
    assert_error(r, 401, 401, "unauthorized")


# 404 / 405 ----------------------------------------------------------------------------------
def test_unknown_route_is_404_route_not_found(warm: Server) -> None:
    for key in (None, KEY_A):
        body = assert_error(
            warm.call("GET", "/api/v1/nothing", key=key), 404, 404, "route_not_found"
        )
        assert "/api/v1/nothing" in body["message"]


def test_wrong_method_is_405(warm: Server) -> None:
    r = warm.call("DELETE", "/healthz")
    assert_error(r, 405, 405, "method_not_allowed")
    assert "GET" in r.headers["allow"]


# 413 / 414 / 431 ----------------------------------------------------------------------------
def test_body_over_5_mib_is_413(warm: Server) -> None:
    payload = b'{"x": "' + b"a" * (5 * MiB) + b'"}'
    r = warm.call("POST", "/test/echo", raw=payload, headers={"Content-Type": "application/json"})
    assert_error(r, 413, 413, "payload_too_large")


def test_chunked_body_over_5_mib_is_413(warm: Server) -> None:
    head = (
        b"POST /test/echo HTTP/1.1\r\nHost: t\r\napi-key: "
        + KEY_A.encode()
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
    )
    chunk = b"a" * MiB
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6)) + b"0\r\n\r\n"
    out = warm.raw(head + body)
    status_line, _, rest = out.partition(b"\r\n")
    assert b" 413 " in status_line
    answer = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert answer["name"] == "payload_too_large"
    assert answer["message"] == f"request body exceeds the limit of {5 * MiB} bytes"


def test_body_of_exactly_5_mib_is_accepted(warm: Server) -> None:
    filler = 5 * MiB - len(b'{"x": ""}')
    payload = b'{"x": "' + b"a" * filler + b'"}'
    assert len(payload) == 5 * MiB
    r = warm.call("POST", "/test/echo", raw=payload, headers={"Content-Type": "application/json"})
    assert r.status == 200, r.raw


def test_uri_over_8_kib_is_414(warm: Server) -> None:
    path = "/healthz?q=" + "a" * (8 * 1024)
    assert_error(warm.call("GET", path), 414, 414, "uri_too_long")
    ok = warm.call("GET", "/healthz?q=" + "a" * (8 * 1024 - len("/healthz?q=")))
    assert ok.status == 200


@pytest.mark.parametrize("size", [9 * 1024, 60 * 1024])
def test_uri_too_long_over_raw_socket_is_json_414(warm: Server, size: int) -> None:
    """60 KiB passes the parser's own limit too: still the contract's JSON."""
    req = b"GET /healthz?q=" + b"a" * size + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    out = warm.raw(req)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"414"
    assert b"x-request-id" in head.lower()
    assert json.loads(body)["name"] == "uri_too_long"


def test_headers_over_25_kib_are_431(warm: Server) -> None:
    headers = {f"x-pad-{i}": "b" * 1000 for i in range(26)}
    assert_error(warm.call("GET", "/healthz", headers=headers), 431, 431, "headers_too_large")
    fine = {f"x-pad-{i}": "b" * 1000 for i in range(20)}
    assert warm.call("GET", "/healthz", headers=fine).status == 200


@pytest.mark.parametrize("kind", ["one-long-header", "many-headers"])
def test_absurd_headers_over_raw_socket_are_json_431(warm: Server, kind: str) -> None:
    if kind == "one-long-header":
        extra = b"X-Big: " + b"b" * (200 * 1024) + b"\r\n"
    else:
        extra = b"".join(b"X-H%d: v\r\n" % i for i in range(3000))
    out = warm.raw(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra + b"\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"431"
    assert json.loads(body)["name"] == "headers_too_large"


# 415 / 111 ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ctype",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "",
    ],
)
def test_non_json_body_is_415(warm: Server, ctype: str) -> None:
    r = warm.call("POST", "/test/echo", raw=b'{"a": 1}', headers={"Content-Type": ctype})
    assert_error(r, 415, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "ctype",
    [
        "application/json",
        "application/json; charset=UTF-8",
        "Application/JSON;charset=utf8",
        "application/merge-patch+json",
        None,
    ],
)
def test_json_content_types_are_accepted(warm: Server, ctype: str | None) -> None:
    headers = {"Content-Type": ctype} if ctype is not None else {}
    r = warm.call("POST", "/test/echo", raw=b'{"a": 1}', headers=headers)
    assert r.status == 200, r.raw
    assert r.json["keys"] == ["a"]


def test_body_less_post_is_not_checked_for_content_type(warm: Server) -> None:
    # empty body: no 415; the route then says what is wrong with the body (111)
    r = warm.call("POST", "/test/echo", raw=b"", headers={"Content-Type": "text/plain"})
    assert_error(r, 400, 111, "body_parameter_invalid_type")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"null", "JSON object"),
        (b'{"a": ', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"   ", "empty"),
    ],
)
def test_body_that_is_not_a_json_object_is_111(warm: Server, raw: bytes, fragment: str) -> None:
    r = warm.call("POST", "/test/echo", raw=raw, headers={"Content-Type": "application/json"})
    body = assert_error(r, 400, 111, "body_parameter_invalid_type")
    assert fragment in body["message"]


# 429 ----------------------------------------------------------------------------------------
def test_admission_full_answers_429_at_once(warm_server: tuple[Server, Gate]) -> None:
    srv, gate = warm_server
    gate.started.clear()
    gate.release.clear()
    first: list[Resp] = []
    t = threading.Thread(target=lambda: first.append(srv.call("GET", "/test/block")))
    t.start()
    try:
        assert gate.started.wait(60), "the first request never reached the inference pool"
        # queue_limit=1 and one request is admitted: the next inference call is refused
        busy = srv.call("GET", "/test/infer")
        assert_error(busy, 429, 429, "too_many_requests")
        # a route without inference is not affected by admission
        assert srv.call("GET", "/healthz").status == 200
    finally:
        gate.release.set()
        t.join(60)
    assert first[0].status == 200 and first[0].json == {"result": "released"}
    # the slot was given back
    assert srv.call("GET", "/test/infer").status == 200


def test_rate_limit_per_key_is_429(cold_server: Server) -> None:
    assert cold_server.call("POST", "/test/echo", {"a": 1}, key=KEY_A).status == 200
    body = assert_error(
        cold_server.call("POST", "/test/echo", {"a": 1}, key=KEY_A), 429, 429, "too_many_requests"
    )
    assert "rate limit" in body["message"]
    # the other key has its own bucket
    assert cold_server.call("POST", "/test/echo", {"a": 1}, key=KEY_B).status == 200


# 503 ----------------------------------------------------------------------------------------
def test_inference_before_models_load_is_503(cold_server: Server) -> None:
    r = cold_server.call("GET", "/test/infer", key=KEY_C)
    assert_error(r, 503, 503, "service_unavailable")


def test_503_while_warming_then_200(warm_server: tuple[Server, Gate]) -> None:
    srv, _ = warm_server
    assert_error(srv.notes["infer_before"], 503, 503, "service_unavailable")
    r = srv.call("GET", "/test/infer")
    assert r.status == 200 and r.json["dim"] > 0


# 500 ----------------------------------------------------------------------------------------
def test_unexpected_exception_is_500_with_only_the_request_id(
    warm: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="edge.api")
    marker = "body-marker-never-logged"
    r = warm.call("POST", "/test/boom", {"secret": marker}, headers={"x-request-id": "req-500-a"})
    body = assert_error(r, 500, 500, "internal_error")
    assert r.headers["x-request-id"] == "req-500-a"
    assert body["message"] == "internal error; request id req-500-a"
    assert "secret-detail" not in r.raw.decode() and "Traceback" not in r.raw.decode()
    logged = caplog.text
    assert "req-500-a" in logged and "secret-detail-of-the-bug" in logged  # traceback logged
    assert marker not in logged


# x-request-id -------------------------------------------------------------------------------
def test_request_id_is_echoed_when_sane_and_generated_otherwise(warm: Server) -> None:
    assert (
        warm.call("GET", "/healthz", headers={"x-request-id": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    for bad in ("has space", "x" * 200, "semi;colon"):
        rid = warm.call("GET", "/healthz", headers={"x-request-id": bad}).headers["x-request-id"]
        assert rid and rid != bad
    ids = {warm.call("GET", "/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
