"""Contract audit: api.md statements checked by real requests that no other module pinned down.

Each test names the api.md section it checks. Everything runs against a real loopback server
with the installed models and real photos from the shared test data.
"""

from __future__ import annotations

import base64
import math
import uuid as uuid_mod
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from edge.api import schemas as s
from tests.support.faces import ALL_DETAILS, FACES, FacesServer, assert_error, face_server
from tests.support.images import img
from tests.support.servers import KEY_A

EMOTIONS = ["angry", "happy", "sad", "calm", "surprised", "scared", "disgusted", "sleepy"]
ATTRIBUTE_VALUES = {
    "gender": {"male", "female"},
    "mask": {"with_mask", "without_mask"},
    "glasses": {"without_glasses", "with_transparent_glasses", "with_sunglasses"},
    "hat": {"with_hat", "without_hat"},
    "helmet": {"with_helmet", "without_helmet"},
    "bangs": {"with_bangs", "without_bangs"},
    "facialHair": {"with_facial_hair", "without_facial_hair"},
    "headphones": {"without_headphones", "with_over_ear_headphones", "with_in_ear_headphones"},
}
LIVENESS = "/api/v1/liveness"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[FacesServer]:
    with face_server(tmp_path_factory.mktemp("audit"), model_dir) as srv:
        yield srv


@pytest.fixture(scope="module")
def p(testdata: Path) -> dict[str, Path]:
    fbi = testdata / "faces_by_identity"
    aw = testdata / "awkward"
    return {
        "obama": fbi / "barack_obama" / "1.jpg",
        "obama2": fbi / "barack_obama" / "2.jpg",
        "jolie": fbi / "angelina_jolie" / "1.jpg",
        "group": testdata / "multi_face" / "fr_two_people.jpg",
        "many": testdata / "multi_face" / "deepface_selfie_many_people.jpg",
        "gray": aw / "hopper_gray.jpg",
        "webp": aw / "hopper.webp",
        "pgm": aw / "orl_s01_1.pgm",
        "truncated": aw / "broken_truncated.jpg",
        "corrupt": aw / "broken_corrupted.png",
        "color": aw / "hopper_reference_upright.jpg",
        "live": sorted((testdata / "liveness" / "live").iterdir())[0],
    }


def body(image: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "EDGE_FACE_V1", "image": image, **extra}


def parse_time(t: str) -> datetime:
    """§0: ISO-8601 UTC, second precision, `Z` suffix — nothing else is accepted here."""
    assert len(t) == 20 and t[-1] == "Z", t
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


# §2.2 details: every block's shape and value ranges ------------------------------------------
def check_details(d: dict[str, Any], w: int, h: int) -> None:
    s.Details.model_validate(d)  # exact keys, types, 106 landmarks, 8 emotions
    pos = d["position"]
    assert pos["width"] >= 1 and pos["height"] >= 1
    ang = d["angle"]
    for k in ("pitch", "yaw", "roll"):
        assert -90 <= ang[k] <= 90, (k, ang)
    assert ang["centerX"] == pos["left"] + pos["width"] // 2
    assert ang["centerY"] == pos["top"] + pos["height"] // 2
    lms = d["landmarks"]
    assert len(lms) == 106
    assert all(type(pt["x"]) is int and type(pt["y"]) is int for pt in lms)
    q = d["quality"]
    assert -1 <= q["brightness"] <= 1
    for k in ("sharpness", "mouthClosed", "centered", "size", "integrity"):
        assert 0 <= q[k] <= 1, (k, q)
    assert all(0 <= v <= 1 for v in q["completeness"].values()), q["completeness"]
    # size = face box area / image area: recompute it from the returned position
    assert q["size"] == pytest.approx(pos["width"] * pos["height"] / (w * h), abs=0.02)
    a = d["attributes"]
    age = a["age"]
    assert age["upperLimit"] == age["value"] + 5 and age["lowerLimit"] == age["value"] - 5
    emo = a["emotions"]
    assert [e["value"] for e in emo] == EMOTIONS
    assert all(0 <= e["certainty"] <= 1 for e in emo)
    assert math.isclose(sum(e["certainty"] for e in emo), 1.0, abs_tol=1e-3)
    for name, allowed in ATTRIBUTE_VALUES.items():
        if name in a:  # omitted when no loaded model estimates it (§2.2)
            assert a[name]["value"] in allowed, (name, a[name])
            assert 0 <= a[name]["certainty"] <= 1


def test_detect_details_ranges_and_order(srv: FacesServer, p: dict[str, Path]) -> None:
    """§2.2 ranges on every face of a crowd; §3 detect: largest first, ≥ 32 px, no `rotated`."""
    import cv2

    r = srv.call("POST", FACES + "/detect", body(img(p["many"], returnDetails=ALL_DETAILS)))
    assert r.status == 200, r.raw
    out = r.json
    assert out["count"] == len(out["entities"]) >= 3
    im = cv2.imread(str(p["many"]))
    h, w = im.shape[:2]
    areas = []
    for ent in out["entities"]:
        assert set(ent) == {"details"}  # `rotated` only with autoRotate
        check_details(ent["details"], w, h)
        pos = ent["details"]["position"]
        assert pos["width"] >= 32 and pos["height"] >= 32
        areas.append(pos["width"] * pos["height"])
    assert areas == sorted(areas, reverse=True)
    r = srv.call("POST", FACES + "/detect", body(img(p["group"], autoRotate=True)))
    assert r.status == 200 and r.json["count"] >= 1
    assert all(e["rotated"] in (0, 90, 180, 270) for e in r.json["entities"])


def test_uploaded_details_ranges(srv: FacesServer, p: dict[str, Path]) -> None:
    """§2.2 on the largest face of search (always returns entityUploaded) and of create."""
    import cv2

    h, w = cv2.imread(str(p["jolie"])).shape[:2]
    r = srv.call("POST", FACES + "/search", body(img(p["jolie"], returnDetails=ALL_DETAILS)))
    assert r.status == 200, r.raw
    check_details(r.json["entityUploaded"]["details"], w, h)
    r = srv.create(img(p["jolie"], returnDetails=ALL_DETAILS), collection="audit-details")
    assert r.status == 201, r.raw
    check_details(r.json["entityUploaded"]["details"], w, h)
    r = srv.create(img(p["jolie"]), collection="audit-details")
    assert "entityUploaded" not in r.json  # only when a detail was requested


# §0 transport ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": KEY_A},
        {"X-API-KEY": KEY_A},
        {"API-Key": KEY_A},
        {"Api-Key": KEY_A, "instance-id": "someone-else", "Instance-Id": "x"},
    ],
)
def test_key_header_spellings(srv: FacesServer, headers: dict[str, str]) -> None:
    r = srv.call("GET", FACES + "?limit=1", headers=headers, key=None)
    assert r.status == 200, r.raw
    assert "x-request-id" in r.headers


def test_instance_id_header_does_not_change_the_tenant(srv: FacesServer, p: dict) -> None:
    c = srv.create(img(p["obama"]), collection="audit-inst")
    assert c.status == 201
    u = c.json["uuid"]
    for hdr in ({"instance-id": "inst-b"}, {"instance-id": "inst-a"}):
        r = srv.call("GET", f"{FACES}/{u}", headers=hdr)
        assert r.status == 200 and r.json["uuid"] == u


# §1 errors: the body and x-request-id on every kind of failure ----------------------------------
def test_every_error_has_the_contract_body_and_a_request_id(srv: FacesServer) -> None:
    cases = [
        (srv.call("GET", "/api/v1/nope"), 404, 404),
        (srv.call("PUT", FACES, {"model": "EDGE_FACE_V1"}), 405, 405),
        (srv.call("GET", FACES, key=None), 401, 401),
        (srv.call("GET", FACES, key="wrong"), 401, 401),
        (
            srv.call("POST", FACES, raw=b"{}", headers={"Content-Type": "text/plain"}, key=KEY_A),
            415,
            415,
        ),
        (
            srv.call(
                "POST",
                FACES,
                raw=b"x" * (5 * 2**20 + 1),
                headers={"Content-Type": "application/json"},
            ),
            413,
            413,
        ),
        (srv.call("GET", FACES + "?x=" + "a" * (8 * 2**10)), 414, 414),
    ]
    for r, status, code in cases:
        assert_error(r, status, code)
        assert r.headers.get("x-request-id"), r.headers
        assert r.headers["content-type"].startswith("application/json")
    assert cases[0][0].json["name"] == "route_not_found"


def test_readyz_error_body_is_the_contract_body(cold_server: Any) -> None:
    """§1: every non-2xx answer is exactly {code, name, message} — /readyz's 503 too."""
    r = cold_server.call("GET", "/readyz", key=None)
    assert_error(r, 503, 503)
    assert r.headers.get("x-request-id")


# §2.3 entity: times, ttl, paging -----------------------------------------------------------------
def test_times_and_ttl(srv: FacesServer, p: dict[str, Path]) -> None:
    r = srv.create(img(p["obama"]), collection="audit-ttl")
    assert r.status == 201
    e = r.json
    created = parse_time(e["createdAt"])
    assert parse_time(e["updatedAt"]) == created
    assert e["expiresAt"] == "3000-01-01T00:00:00Z"
    assert abs(created - datetime.now(timezone.utc)) < timedelta(seconds=30)
    r = srv.create(img(p["obama"]), collection="audit-ttl", ttl=3600)
    exp = parse_time(r.json["expiresAt"]) - parse_time(r.json["createdAt"])
    assert timedelta(seconds=3599) <= exp <= timedelta(seconds=3601)
    # PATCH ttl restarts from now; ttl -1 goes back to "never"
    u = r.json["uuid"]
    r = srv.call("PATCH", f"{FACES}/{u}", {"ttl": -1})
    assert r.status == 200 and r.json["expiresAt"] == "3000-01-01T00:00:00Z"
    parse_time(r.json["updatedAt"])


def test_paging_full_last_page(srv: FacesServer, p: dict[str, Path]) -> None:
    coll = "audit-page-" + uuid_mod.uuid4().hex[:8]
    made = [srv.create(img(p["obama"]), collection=coll).json["uuid"] for _ in range(4)]
    assert made == sorted(made)  # uuids sort in creation order
    q = f"{FACES}?collection={coll}"
    full = srv.call("GET", q + "&limit=4").json
    assert full["total"] == 4 and full["count"] == 4 and full["limit"] == 4
    assert [x["uuid"] for x in full["entities"]] == made
    assert full["nextAfter"] == made[-1]  # a full page, even with nothing after it
    end = srv.call("GET", q + f"&limit=4&after={full['nextAfter']}").json
    assert end["count"] == 0 and end["nextAfter"] == "" and end["entities"] == []
    assert end["total"] == 4
    short = srv.call("GET", q + "&limit=3").json
    assert short["nextAfter"] == made[2]
    rest = srv.call("GET", q + f"&limit=3&after={short['nextAfter']}").json
    assert [x["uuid"] for x in rest["entities"]] == made[3:] and rest["nextAfter"] == ""
    assert srv.call("GET", q).json["limit"] == 20  # default
    for bad in ("abc", "0", "1001", "-1", "1.5"):
        assert_error(srv.call("GET", q + f"&limit={bad}"), 400, 112, "limit")


# §1 precedence and edge cases ------------------------------------------------------------------
def test_malformed_uuid_is_entity_not_found(srv: FacesServer) -> None:
    for method, suffix, payload in (
        ("GET", "", None),
        ("DELETE", "", None),
        ("PATCH", "", {"key": "x"}),
        ("POST", "/compare", {"model": "EDGE_FACE_V1", "image": {"data": "AAAA"}}),
    ):
        r = srv.call(method, f"{FACES}/not-a-uuid{suffix}", payload)
        assert_error(r, 404, 404)
        assert r.json["name"] == "entity_not_found", (method, r.json)


def test_patch_without_an_updatable_field_is_110(srv: FacesServer, p: dict[str, Path]) -> None:
    u = srv.create(img(p["obama"]), collection="audit-patch").json["uuid"]
    for payload in ({}, {"model": "EDGE_FACE_V1"}, {"class": "x", "uuid": u}):
        assert_error(srv.call("PATCH", f"{FACES}/{u}", payload), 400, 110)
    assert_error(srv.call("PATCH", f"{FACES}/{u}", {"key": 5}), 400, 111, "key")
    r = srv.call("PATCH", f"{FACES}/{u}", {"model": "JCV_FACE_K25000", "key": "k"})
    assert r.status == 200 and r.json["model"] == "EDGE_FACE_V1"  # model changes nothing


@pytest.mark.parametrize("ttl", [0, -2, -100])
def test_bad_ttl_is_112(srv: FacesServer, p: dict[str, Path], ttl: int) -> None:
    before = srv.count()
    assert_error(srv.create(img(p["obama"]), ttl=ttl), 400, 112, "ttl")
    assert srv.count() == before


@pytest.mark.parametrize(
    "area",
    [
        {"top": 0, "left": 0, "width": 0, "height": 50},
        {"top": 0, "left": 0, "width": 50, "height": 0},
        {"top": 100000, "left": 0, "width": 50, "height": 50},
        {"top": 0, "left": -500, "width": 100, "height": 100},
    ],
)
def test_bad_area_is_112(srv: FacesServer, p: dict[str, Path], area: dict) -> None:
    r = srv.call("POST", FACES + "/detect", body(img(p["group"], area=area)))
    assert_error(r, 400, 112, "image.area")


def test_image_check_precedence(
    srv: FacesServer,
    tmp_path_factory: pytest.TempPathFactory,
    model_dir: Path,
    p: dict[str, Path],
) -> None:
    """214 (base64) > 215 (format) > 214 (decode) > 217 (pixels) > 216 (grayscale).

    A pixel cap below every test image's size makes 217 reachable for all of them, so each
    earlier check is seen to win over it, and 217 over the grayscale check. [decision, see
    edge.imaging.decode] the cap is judged from the file header before any pixel is
    allocated, so a file whose header is intact but whose data is cut short (truncated JPEG)
    is 217 when its header claims too many pixels, 214 otherwise (test_entities)."""
    import cv2

    color = cv2.imread(str(p["color"]))
    gray3 = cv2.cvtColor(cv2.cvtColor(color, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)

    def encoded(ext: str, pixels: Any) -> dict[str, Any]:
        ok, buf = cv2.imencode(ext, pixels)
        assert ok
        return {"data": base64.b64encode(buf.tobytes()).decode()}

    with face_server(tmp_path_factory.mktemp("cap"), model_dir, max_pixels=1000) as cap:
        cases = [
            ({"data": "!!!not base64!!!"}, 214),
            (img(p["webp"]), 215),
            (img(p["pgm"]), 215),
            (encoded(".bmp", color), 215),  # a colour BMP is still 215
            (encoded(".tiff", gray3), 215),
            (img(p["corrupt"]), 214),
            (img(p["gray"]), 217),
            (encoded(".png", gray3), 217),
            (img(p["color"]), 217),
        ]
        for image, code in cases:
            r = cap.call("POST", FACES + "/detect", body(image))
            assert_error(r, 400, code, "image.data")
    # with the default cap, the grayscale check is what remains: a gray picture in an RGB
    # PNG is grayscale too (judged by the pixels, not the file's channel count)
    for image in (img(p["gray"]), encoded(".png", gray3)):
        r = srv.call("POST", FACES + "/detect", body(image))
        assert_error(r, 400, 216, "image.data")
    assert srv.call("POST", FACES + "/detect", body(encoded(".png", color))).status == 200


def test_data_url_prefix_and_whitespace(srv: FacesServer, p: dict[str, Path]) -> None:
    raw = base64.b64encode(p["obama"].read_bytes()).decode()
    wrapped = "data:image/jpeg;base64," + "\n".join(raw[i : i + 76] for i in range(0, len(raw), 76))
    a = srv.call("POST", FACES + "/detect", body({"data": raw, **{}})).json
    b = srv.call("POST", FACES + "/detect", body({"data": wrapped})).json
    assert a["count"] == b["count"] >= 1


# §3 search/compare ---------------------------------------------------------------------------
def test_unknown_fields_and_max_faces_alias(srv: FacesServer, p: dict[str, Path]) -> None:
    coll = "audit-search-" + uuid_mod.uuid4().hex[:8]
    for path in (p["obama"], p["obama2"], p["jolie"]):
        assert srv.create(img(path), collection=coll, **{"class": "x", "foo": [1]}).status == 201
    base = body(img(p["obama"], extra=1), collection=coll, **{"class": "face", "bar": None})
    r = srv.call("POST", FACES + "/search", {**base, "maxFaces": 1})
    assert r.status == 200, r.raw
    assert r.json["maxEntities"] == 1 and r.json["count"] == 1
    r = srv.call("POST", FACES + "/search", {**base, "maxFaces": 2})
    assert r.json["maxEntities"] == 2 and r.json["count"] == 2
    assert_error(srv.call("POST", FACES + "/search", {**base, "maxFaces": 0}), 400, 112, "maxFaces")
    r = srv.call("POST", FACES + "/search", base)
    assert r.json["maxEntities"] == 10 and r.json["threshold"] == 0
    scores = [e["similarityScore"] for e in r.json["entitiesFound"]]
    assert scores == sorted(scores, reverse=True) and r.json["count"] == 3
    top = r.json["entitiesFound"][0]
    assert "vector" not in top and "embedding" not in top
    r = srv.call("POST", FACES + "/search", {**base, "threshold": 1.0})
    assert r.status == 200 and r.json["count"] <= 1  # no hit is count 0, not an error


def test_similarity_is_one_number_for_search_and_compare(
    srv: FacesServer, p: dict[str, Path]
) -> None:
    coll = "audit-sim-" + uuid_mod.uuid4().hex[:8]
    stored = srv.create(img(p["obama"]), collection=coll).json["uuid"]
    probe = img(p["obama2"])
    found = srv.call("POST", FACES + "/search", body(probe, collection=coll)).json
    [hit] = found["entitiesFound"]
    cmp = srv.call(
        "POST",
        FACES + "/compare",
        {"model": "EDGE_FACE_V1", "imageOne": img(p["obama"]), "imageTwo": probe},
    ).json
    ent = srv.call("POST", f"{FACES}/{stored}/compare", body(probe)).json
    assert hit["similarityScore"] == pytest.approx(cmp["similarityScore"], abs=1e-6)
    assert ent["similarityScore"] == pytest.approx(cmp["similarityScore"], abs=1e-6)
    same = srv.call(
        "POST",
        FACES + "/compare",
        {"model": "EDGE_FACE_V1", "imageOne": img(p["obama"]), "imageTwo": img(p["obama"])},
    ).json
    assert same["similarityScore"] >= 0.99
    other = srv.call(
        "POST",
        FACES + "/compare",
        {"model": "EDGE_FACE_V1", "imageOne": img(p["obama"]), "imageTwo": img(p["jolie"])},
    ).json
    assert 0 <= other["similarityScore"] < cmp["similarityScore"]


# §4 liveness -----------------------------------------------------------------------------------
def live_item(index: int, data: str, typ: str = "RGB") -> dict[str, Any]:
    return {"index": index, "type": typ, "data": data}


def test_liveness_index_rules(srv: FacesServer, p: dict[str, Path]) -> None:
    data = img(p["live"])["data"]

    def call(images: Any, model: str = "EDGE_LIVENESS_V1") -> Any:
        return srv.call("POST", LIVENESS, {"model": model, "images": images})

    ok = call([live_item(0, data)])
    assert ok.status == 200, ok.raw
    s.LivenessOut.model_validate(ok.json)
    # order-independent; extra images ignored (not even decoded) once validated
    two = call([live_item(1, "AAAA"), live_item(0, data)])
    assert two.status == 200 and two.json == ok.json
    alias = call([live_item(0, data)], "JCV_2D_I25000")
    assert alias.json["model"] == "JCV_2D_I25000" and alias.json["position"] == ok.json["position"]
    assert_error(call([live_item(0, data), live_item(2, data)]), 400, 112, "images[1].index")
    assert_error(call([live_item(1, data)]), 400, 112, "images[0].index")
    assert_error(call([live_item(0, data), live_item(0, data)]), 400, 116, "images[1].index")
    assert_error(call([live_item(0, data, "IR")]), 400, 112, "images[0].type")
    assert_error(call([live_item(0, data), live_item(1, data, "DEPTH")]), 400, 112, "images[1]")
    assert_error(call([{"index": 0, "type": "RGB"}]), 400, 110, "images[0].data")
    assert_error(call([live_item(0, "   ")]), 400, 110, "images[0].data")
    assert_error(call([live_item(0, data), {"index": 1, "type": "RGB"}]), 400, 110, "images[1]")
    assert_error(call([]), 400, 219)
    assert_error(call([live_item(0, data)], "EDGE_FACE_V1"), 400, 113, "model")
    assert_error(call("x"), 400, 111, "images")


# §5 models, §6 ops -----------------------------------------------------------------------------
def test_models_shape(srv: FacesServer) -> None:
    r = srv.call("GET", "/api/v1/models")
    assert r.status == 200
    out = s.ModelsOut.model_validate(r.json)
    face, live = out.models
    assert face.name == "EDGE_FACE_V1" and face.entity == "faces"
    assert {"JCV_FACE_K25000", "JCV_FACE_J10000"} <= set(face.aliases)
    assert face.vectorDimension and face.vectorDimension > 0
    assert set(face.capabilities) == {"position", "angle", "landmarks", "quality", "attributes"}
    assert 0 < face.recommendedThreshold <= 1
    assert {"far", "tar"} <= set(face.measured)
    assert live.name == "EDGE_LIVENESS_V1" and live.entity == "liveness"
    assert "JCV_2D_I25000" in live.aliases and live.capabilities == {"position": True}
    assert {"apcer", "bpcer"} <= set(live.measured)
    for m in (face, live):
        for c in m.components:
            assert {"role", "file", "sha256", "licence", "backend", "device"} <= set(c), c


# Cross-checks between endpoints --------------------------------------------------------------
def test_uuid_is_v7_layout(srv: FacesServer, p: dict[str, Path]) -> None:
    """§2.3: server-made uuids in the UUIDv7 layout (version 7, RFC 4122 variant)."""
    u = uuid_mod.UUID(srv.create(img(p["obama"]), collection="audit-v7").json["uuid"])
    assert u.version == 7 and u.variant == uuid_mod.RFC_4122
    ms = int.from_bytes(u.bytes[:6], "big")  # v7: unix milliseconds in the first 48 bits
    assert abs(ms / 1000 - datetime.now(timezone.utc).timestamp()) < 60


def test_area_without_a_face_is_223(srv: FacesServer, p: dict[str, Path]) -> None:
    """§1: 223 = no face found in `area`; detect answers count 0 for the same area."""
    area = {"top": 0, "left": 0, "width": 40, "height": 40}
    before = srv.count()
    r = srv.create(img(p["group"], area=area))
    assert_error(r, 400, 223)
    assert srv.count() == before
    r = srv.call("POST", FACES + "/detect", body(img(p["group"], area=area)))
    assert r.status == 200 and r.json["count"] == 0


def test_attributes_match_what_models_publishes(srv: FacesServer, p: dict[str, Path]) -> None:
    """§2.2/§5: the attributes a face gets are exactly those GET /models says are supported."""
    face = srv.call("GET", "/api/v1/models").json["models"][0]
    r = srv.call("POST", FACES + "/detect", body(img(p["obama"], returnDetails=ALL_DETAILS)))
    details = r.json["entities"][0]["details"]
    assert set(details["attributes"]) == set(face["attributes"])
    assert {k for k, v in face["capabilities"].items() if v} == set(details)
    bare = srv.call("POST", FACES + "/search", body(img(p["obama"]))).json
    assert bare["entityUploaded"] == {"details": {}}  # no block unless asked


def test_liveness_position_is_the_face_endpoints_face(srv: FacesServer, p: dict) -> None:
    """§4: images[0]'s largest face, found as the face endpoints find it (fast, then slow)."""
    photo = img(p["obama"], returnDetails={"position": True})
    face = srv.call("POST", FACES + "/search", body(photo)).json["entityUploaded"]["details"]
    live = srv.call(
        "POST",
        LIVENESS,
        {"model": "EDGE_LIVENESS_V1", "images": [live_item(0, photo["data"])]},
    ).json
    assert live["position"] == face["position"]
    assert 0 <= live["spoofScore"] <= 1


def _png(bgr: Any) -> dict[str, Any]:
    import cv2

    ok, buf = cv2.imencode(".png", bgr)
    assert ok
    return {"data": base64.b64encode(buf.tobytes()).decode(), "returnDetails": ALL_DETAILS}


def _largest(srv: FacesServer, image: dict[str, Any]) -> dict[str, Any]:
    r = srv.call("POST", FACES + "/search", body(image))
    assert r.status == 200, r.raw
    return r.json["entityUploaded"]["details"]


def test_angle_signs_and_landmark_sides_over_http(srv: FacesServer, p: dict[str, Path]) -> None:
    """§2.2 conventions as the wire carries them: roll + = tilted counter-clockwise in the image,
    a mirror image negates yaw and roll, landmarks' left/right are image left/right."""
    import cv2

    bgr = cv2.imread(str(p["obama"]))
    h, w = bgr.shape[:2]
    upright = _largest(srv, _png(bgr))
    # rotate the picture 20° counter-clockwise about the face centre (OpenCV: + = CCW)
    a = upright["angle"]
    m = cv2.getRotationMatrix2D((float(a["centerX"]), float(a["centerY"])), 20.0, 1.0)
    tilted = _largest(srv, _png(cv2.warpAffine(bgr, m, (w, h), borderMode=cv2.BORDER_REPLICATE)))
    assert 12 <= tilted["angle"]["roll"] - a["roll"] <= 28, (a, tilted["angle"])
    mirrored = _largest(srv, _png(cv2.flip(bgr, 1)))["angle"]
    assert mirrored["roll"] == pytest.approx(-a["roll"], abs=4)
    assert mirrored["yaw"] == pytest.approx(-a["yaw"], abs=6)
    assert mirrored["pitch"] == pytest.approx(a["pitch"], abs=6)
    lm = upright["landmarks"]

    def mean_x(idx: list[int]) -> float:
        return sum(lm[i]["x"] for i in idx) / len(idx)

    left_eye = [*range(52, 58), 72, 73, 74]
    right_eye = [*range(58, 64), 75, 76, 77]
    assert mean_x(left_eye) < mean_x([*range(43, 52)]) < mean_x(right_eye)
    assert mean_x(list(range(0, 16))) < mean_x(list(range(17, 33)))  # contour left/right halves
    pos = upright["position"]
    inside = [
        pos["left"] - pos["width"] * 0.25 <= pt["x"] <= pos["left"] + pos["width"] * 1.25
        and pos["top"] - pos["height"] * 0.25 <= pt["y"] <= pos["top"] + pos["height"] * 1.25
        for pt in lm
    ]
    assert all(inside)


def test_area_reaching_outside_the_image_is_clipped(srv: FacesServer, p: dict[str, Path]) -> None:
    """§2.1: an overlapping area is clipped to the image (not 112); positions stay full-image."""
    full = srv.call(
        "POST", FACES + "/detect", body(img(p["group"], returnDetails={"position": True}))
    ).json
    huge = {"top": -1000, "left": -1000, "width": 100000, "height": 100000}
    r = srv.call(
        "POST",
        FACES + "/detect",
        body(img(p["group"], area=huge, returnDetails={"position": True})),
    )
    assert r.status == 200 and r.json == full
