"""Hostile requests over real loopback HTTP (raw sockets where a client library would
normalise the bytes): each gets its api.md §1 status and `{code, name, message}` body,
writes nothing, and the server keeps serving."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
from hostile_helpers import assert_contract, exchange, request_bytes

from edge.api import schemas
from edge.config import load_settings
from tests.support.faces import FACES, FacesServer, assert_error
from tests.support.images import img, pic

MODELS = "/api/v1/models"


@pytest.fixture(scope="module")
def photo(testdata: Path) -> dict[str, Any]:
    return img(pic(testdata / "faces_by_identity" / "barack_obama", "1"))


@pytest.fixture(scope="module")
def entity(srv: FacesServer, photo: dict[str, Any]) -> str:
    """One stored face whose fields must survive every hostile request below."""
    r = srv.create(photo, collection="keep", key="k1")
    assert r.status == 201, r.raw
    return str(r.json["uuid"])


def unchanged(srv: FacesServer, entity: str, count: int) -> None:
    """Nothing written, the entity as created, and a normal request still answered."""
    assert srv.count() == count
    r = srv.call("GET", f"{FACES}/{entity}")
    assert r.status == 200, r.raw
    assert (r.json["collection"], r.json["key"], r.json["metadata"]) == ("keep", "k1", [])
    assert srv.call("GET", MODELS).status == 200


def body_routes(entity: str) -> list[tuple[str, str]]:
    return [
        ("POST", FACES),
        ("POST", FACES + "/search"),
        ("POST", FACES + "/detect"),
        ("POST", FACES + "/compare"),
        ("POST", "/api/v1/liveness"),
        ("PATCH", f"{FACES}/{entity}"),
    ]


def nested(depth: int, opener: str) -> bytes:
    closer = "]" if opener == "[" else "}"
    return (opener * depth + "1" + closer * depth).encode()


# 1. deep JSON ---------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [100, 1000, 50_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_111(srv: FacesServer, entity: str, depth: int, opener: str) -> None:
    count = srv.count()
    for method, path in body_routes(entity):
        for body in (
            nested(depth, opener),  # the whole body
            b'{"model": "EDGE_FACE_V1", "image": {"data": ' + nested(depth, opener) + b"}}",
        ):
            r = exchange(srv.port, request_bytes(method, path, body))
            msg = assert_contract(r, 400, 111)["message"]
            assert "deeper" in msg or "must be" in msg, msg
    unchanged(srv, entity, count)


# 2. compressed bodies -------------------------------------------------------------------------
def encoded(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    return data


@pytest.mark.parametrize(
    "coding", ["deflate", "gzip", "br", "x-gzip", "identity, gzip", "GZIP", "zstd", "foo"]
)
def test_compressed_body_is_415_and_never_decoded(
    srv: FacesServer, entity: str, photo: dict[str, Any], coding: str
) -> None:
    count = srv.count()
    plain = json.dumps({"model": "EDGE_FACE_V1", "image": photo, "collection": "zip"}).encode()
    body = encoded(coding.split(",")[-1].strip().lower(), plain)
    for method, path in ((("POST", FACES)), ("POST", FACES + "/detect")):
        r = exchange(
            srv.port, request_bytes(method, path, body, headers={"Content-Encoding": coding})
        )
        msg = assert_contract(r, 415, 415)["message"]
        assert "Content-Encoding" in msg, msg
    unchanged(srv, entity, count)


def test_identity_encoding_is_plain_json(srv: FacesServer, photo: dict[str, Any]) -> None:
    body = json.dumps({"model": "EDGE_FACE_V1", "image": photo}).encode()
    r = exchange(
        srv.port,
        request_bytes("POST", FACES + "/detect", body, headers={"Content-Encoding": "identity"}),
    )
    assert r.status == 200, r.body[:300]


# 3. errors from the protocol layer, before any handler -----------------------------------------
LONG = "a" * 40_000
HUGE_HEADER = {"X-A": "b" * 120_000}
MANY_HEADERS = {f"X-{i}": "1" for i in range(2000)}
PROTOCOL_CASES: list[tuple[str, bytes, int, int]] = [
    ("expect", request_bytes("GET", MODELS, headers={"Expect": "foo"}), 417, 417),
    (
        "expect-body",
        request_bytes("POST", FACES + "/detect", b"{}", headers={"Expect": "202-accepted"}),
        417,
        417,
    ),
    ("unknown-method", request_bytes("FOO", MODELS), 405, 405),
    ("unknown-method-unknown-path", request_bytes("BREW", "/coffee"), 405, 405),
    ("method-not-a-token", request_bytes("G@T", MODELS), 400, 111),
    ("http-1.2", request_bytes("GET", MODELS, version="HTTP/1.2"), 505, 505),
    ("http-2.0", request_bytes("GET", MODELS, version="HTTP/2.0"), 505, 505),
    ("http-3.0", request_bytes("GET", MODELS, version="HTTP/3.0"), 505, 505),
    ("bad-request-line", b"GET\r\n\r\n", 400, 111),
    ("bad-header-line", b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, 111),
    ("tls-hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64, 400, 111),
    ("uri-over-parser-limit", request_bytes("GET", "/" + LONG), 414, 414),
    ("uri-over-contract-limit", request_bytes("GET", "/" + "a" * 9000), 414, 414),
    ("header-over-parser-limit", request_bytes("GET", MODELS, headers=HUGE_HEADER), 431, 431),
    (
        "headers-over-contract-limit",
        request_bytes("GET", MODELS, headers={f"X-{i}": "b" * 1000 for i in range(30)}),
        431,
        431,
    ),
    ("too-many-headers", request_bytes("GET", MODELS, headers=MANY_HEADERS), 431, 431),
    (
        "declared-body-too-large",
        request_bytes("POST", FACES, headers={"Content-Length": str(6 * 2**20)}) + b"{}",
        413,
        413,
    ),
    (
        "conflicting-lengths",
        request_bytes("POST", FACES, headers={"Content-Length": "2"})
        .replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\n")
        + b"{}x",
        400,
        111,
    ),
    (
        "bad-transfer-encoding",
        request_bytes("POST", FACES, headers={"Transfer-Encoding": "gzip, chunked"}) + b"0\r\n\r\n",
        400,
        111,
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [c[1:] for c in PROTOCOL_CASES],
    ids=[c[0] for c in PROTOCOL_CASES],
)
def test_protocol_errors_carry_the_contract_body(
    srv: FacesServer, entity: str, raw: bytes, status: int, code: int
) -> None:
    count = srv.count()
    assert_contract(exchange(srv.port, raw), status, code)
    unchanged(srv, entity, count)


# 4. lone UTF-16 surrogates ---------------------------------------------------------------------
SURROGATE_PATCHES: list[tuple[dict[str, Any], str]] = [
    ({"collection": "\ud800"}, "collection"),
    ({"key": "a\udfffb"}, "key"),
    ({"metadata": [{"name": "\udc00", "type": "string", "value": "x"}]}, "metadata[0].name"),
    ({"metadata": [{"name": "n", "type": "string", "value": "x\ud83d"}]}, "metadata[0].value"),
    (
        {"metadata": [{"name": "n", "type": "string", "value": "ok"},
                      {"name": "m", "type": "string", "value": "\udbff"}]},
        "metadata[1].value",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), SURROGATE_PATCHES)
def test_lone_surrogate_in_patch_is_112_naming_the_field(
    srv: FacesServer, entity: str, body: dict[str, Any], field: str
) -> None:
    count = srv.count()
    r = srv.call("PATCH", f"{FACES}/{entity}", body)  # json.dumps writes "\ud800" escapes
    assert_error(r, 400, 112, field)
    unchanged(srv, entity, count)


@pytest.mark.parametrize(("fields", "field"), SURROGATE_PATCHES)
def test_lone_surrogate_in_create_is_112(
    srv: FacesServer, entity: str, photo: dict[str, Any], fields: dict[str, Any], field: str
) -> None:
    count = srv.count()
    assert_error(srv.create(photo, **fields), 400, 112, field)
    unchanged(srv, entity, count)


def test_lone_surrogate_in_a_search_filter_is_112(
    srv: FacesServer, entity: str, photo: dict[str, Any]
) -> None:
    count = srv.count()
    body = {"model": "EDGE_FACE_V1", "image": photo, "collection": "\ud800"}
    assert_error(srv.call("POST", FACES + "/search", body), 400, 112, "collection")
    unchanged(srv, entity, count)


def test_query_text_with_a_surrogate_is_112() -> None:
    """URL decoding turns bad UTF-8 into U+FFFD, so this guard is for other callers."""
    with pytest.raises(schemas.EdgeError) as e:
        schemas.parse_list_query({"key": "\ud800"}, load_settings(None))
    assert (e.value.code, e.value.message.split()[0]) == (112, "key")


def test_invalid_utf8_in_the_query_is_not_a_500(srv: FacesServer, entity: str) -> None:
    r = srv.call("GET", FACES + "?collection=%ED%A0%80&key=%FF")
    assert r.status == 200, r.raw
    assert r.json["count"] == 0


# 5. control characters in a path uuid ----------------------------------------------------------
@pytest.mark.parametrize("suffix", ["%0a", "%0d", "%0d%0a", "%00", "%09", "%20", "%0b", "%0c"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_path_uuid_with_a_control_character_is_404(
    srv: FacesServer, entity: str, suffix: str, method: str
) -> None:
    count = srv.count()
    body = json.dumps({"collection": "changed"}).encode() if method == "PATCH" else b""
    for uuid in ("00000000-0000-7000-8000-000000000000", entity):
        r = exchange(srv.port, request_bytes(method, f"{FACES}/{uuid}{suffix}", body))
        assert_contract(r, 404, 404)
    unchanged(srv, entity, count)  # the real entity was neither patched nor deleted


# 7. what an error message echoes -----------------------------------------------------------------
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def short_and_clean(message: str) -> None:
    assert len(message) <= 200, (len(message), message[:100])
    assert not CONTROL.search(message), message


def test_long_path_is_not_echoed_whole(srv: FacesServer) -> None:
    r = exchange(srv.port, request_bytes("GET", "/api/v1/" + "x" * 7000))
    msg = assert_contract(r, 404, 404)["message"]
    short_and_clean(msg)
    assert "x" * 32 in msg and "…" in msg  # still says what was asked for


def test_control_characters_are_escaped_in_messages(srv: FacesServer) -> None:
    r = exchange(srv.port, request_bytes("GET", "/api/v1/%1b%5b31mred%0d%0aSet-Cookie:%20x"))
    msg = assert_contract(r, 404, 404)["message"]
    short_and_clean(msg)
    assert "\\x1b" in msg and "\\r\\n" in msg


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "M" * 5000, "image": {"data": "x"}}, 400, 113),
        ({"model": "\x1b[2J" + "M" * 100, "image": {"data": "x"}}, 400, 113),
    ],
)
def test_client_values_are_excerpted(
    srv: FacesServer, body: dict[str, Any], status: int, code: int
) -> None:
    r = srv.call("POST", FACES + "/detect", body)
    short_and_clean(assert_error(r, status, code, "model")["message"])


def test_duplicate_metadata_name_is_excerpted(
    srv: FacesServer, entity: str, photo: dict[str, Any]
) -> None:
    count = srv.count()
    md = [{"name": "n" * 5000, "type": "integer", "value": 1}] * 2
    r = srv.create(photo, metadata=md)
    short_and_clean(assert_error(r, 400, 116, "metadata[1].name")["message"])
    unchanged(srv, entity, count)


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/" + "x" * 5000},
        {"Content-Type": "application/json; charset=" + "\t\tq" * 2000},
        {"Content-Encoding": "z" * 5000},
    ],
)
def test_header_values_are_excerpted(srv: FacesServer, headers: dict[str, str]) -> None:
    raw = request_bytes("POST", FACES + "/detect", b"{}", headers=headers)
    short_and_clean(assert_contract(exchange(srv.port, raw), 415, 415)["message"])
