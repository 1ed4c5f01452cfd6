"""`edge_face.client` against a real service on loopback, with real photos read in place.

Every endpoint is called through the public import name, its answer parsed into the typed
results, and contract errors checked to arrive as `ApiError` with their code and status.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from edge_face.client import (
    ApiError,
    AsyncClient,
    Box,
    Client,
    Entity,
    Image,
    ServiceUnreachable,
)
from tests.support.faces import FacesServer, face_server
from tests.support.net import free_port
from tests.support.servers import KEY_A, KEY_B


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[FacesServer]:
    with face_server(tmp_path_factory.mktemp("client"), model_dir) as srv:
        yield srv


@pytest.fixture
def client(srv: FacesServer) -> Iterator[Client]:
    with Client(f"http://127.0.0.1:{srv.port}", KEY_A) as c:
        yield c
    for e in list(c.entities()):  # each test leaves an empty gallery behind
        c.delete(e.uuid)


def person(testdata: Path, name: str, i: int = 0) -> Path:
    return sorted((testdata / "faces_by_identity" / name).iterdir())[i]


def test_create_get_patch_list_delete_round_trip(client: Client, testdata: Path) -> None:
    photo = person(testdata, "elon_musk")
    made = client.create(
        photo,
        key="elon",
        collection="door",
        metadata={"floor": 3, "badge": "A-17", "vip": True, "height": 1.85},
        details=["position"],
    )
    assert isinstance(made, Entity) and made.key == "elon" and made.collection == "door"
    assert made.metadata == {"floor": 3, "badge": "A-17", "vip": True, "height": 1.85}
    assert made.never_expires and isinstance(made.created_at, datetime)
    assert made.created_at.tzinfo == timezone.utc
    assert made.uploaded is not None and made.uploaded.position is not None
    assert made.uploaded.angle is None  # only the requested block came back

    got = client.get(made.uuid)
    assert got.uuid == made.uuid and got.metadata == made.metadata and got.uploaded is None

    patched = client.patch(made.uuid, key="elon_musk", ttl=3600)
    assert patched.key == "elon_musk" and patched.collection == "door"  # untouched field kept
    assert not patched.never_expires and patched.expires_at is not None
    assert client.get(made.uuid).key == "elon_musk"

    page = client.list(key="elon_musk")
    assert page.total == 1 and [e.uuid for e in page.entities] == [made.uuid]
    assert page.next_after == ""  # fewer than `limit` on the page

    client.delete(made.uuid)
    with pytest.raises(ApiError) as err:
        client.get(made.uuid)
    assert (err.value.status, err.value.code, err.value.name) == (404, 404, "entity_not_found")
    assert err.value.request_id  # the x-request-id header, for the service's log


def test_bytes_and_image_objects_are_encoded_by_the_client(client: Client, testdata: Path) -> None:
    photo = person(testdata, "guido_van_rossum")
    a = client.create(photo.read_bytes(), key="guido")
    b = client.create(Image(str(photo)), key="guido")
    assert client.compare_entity(a.uuid, photo).similarity_score >= 0.99
    assert client.compare_entity(b.uuid, photo.read_bytes()).similarity_score >= 0.99


def test_entities_walks_every_page(client: Client, testdata: Path) -> None:
    photo = person(testdata, "mark_zuckerberg")
    made = [client.create(photo, key=f"m{i}").uuid for i in range(5)]
    page = client.list(limit=2)
    assert page.count == 2 and page.next_after == made[1] and page.total == 5
    assert [e.uuid for e in client.entities(page_size=2)] == made  # 2 + 2 + 1 pages
    assert [e.uuid for e in client.entities(key="m3", page_size=2)] == [made[3]]


def test_search_detect_and_compare(client: Client, testdata: Path) -> None:
    elon, mark = person(testdata, "elon_musk"), person(testdata, "mark_zuckerberg")
    client.create(elon, key="elon", collection="door")
    client.create(mark, key="mark", collection="door")

    found = client.search(person(testdata, "elon_musk", 1), collection="door", details=True)
    assert found.count == 2 and found.max_entities == 10
    assert found.hits[0].entity.key == "elon"
    assert found.hits[0].similarity_score > found.hits[1].similarity_score
    assert found.uploaded.landmarks is not None and len(found.uploaded.landmarks) == 106
    assert client.search(elon, collection="elsewhere").hits == []

    group = testdata / "multi_face" / "deepface_couple.jpg"
    det = client.detect(group)
    assert det.count == len(det.faces) >= 2
    first, second = det.faces[0].details.position, det.faces[1].details.position
    assert isinstance(first, Box) and isinstance(second, Box)
    assert first.width * first.height >= second.width * second.height  # largest first
    # `area` travels: limited to the second face's box, that face comes first.
    there = client.detect(Image(group, area=second))
    assert there.faces[0].details.position == second

    same = client.compare(elon, person(testdata, "elon_musk", 1))
    other = client.compare(elon, mark, details=["quality"])
    assert same.similarity_score > other.similarity_score
    assert other.one.quality is not None and other.two.quality is not None


def test_liveness_models_readyz(client: Client, testdata: Path) -> None:
    live = sorted((testdata / "liveness" / "live").iterdir())[0]
    result = client.liveness(live)
    assert 0.0 <= result.spoof_score <= 1.0 and result.position.width > 0
    assert result.model == "EDGE_LIVENESS_V1"

    models = {m.name: m for m in client.models()}
    face = models["EDGE_FACE_V1"]
    assert face.entity == "faces" and "JCV_FACE_K25000" in face.aliases
    assert face.recommended_threshold is not None and face.vector_dimension
    assert models["EDGE_LIVENESS_V1"].entity == "liveness"
    assert client.readyz().ready


def test_contract_errors_carry_code_name_message_status(
    srv: FacesServer, client: Client, testdata: Path
) -> None:
    with pytest.raises(ApiError) as err:
        client.create(testdata / "awkward" / "no_face_dogs.jpg", key="dogs")
    assert (err.value.status, err.value.code, err.value.name) == (
        400,
        223,
        "image_entity_not_found",
    )
    assert err.value.message

    with pytest.raises(ApiError) as err:
        client.create(person(testdata, "elon_musk"), model="NO_SUCH_MODEL")
    assert (err.value.status, err.value.code) == (400, 113)

    made = client.create(person(testdata, "elon_musk"), key="elon")
    with pytest.raises(ApiError) as err:
        client.patch(made.uuid)  # no field at all
    assert (err.value.status, err.value.code) == (400, 110)

    refused = Client(f"http://127.0.0.1:{srv.port}", "wrong-key-123")
    with pytest.raises(ApiError) as err:
        refused.list()
    assert (err.value.status, err.value.code, err.value.name) == (401, 401, "unauthorized")

    with pytest.raises(ValueError, match="detail block"):
        client.detect(person(testdata, "elon_musk"), details=["shoe_size"])


def test_instances_do_not_see_each_other(srv: FacesServer, client: Client, testdata: Path) -> None:
    made = client.create(person(testdata, "elon_musk"), key="elon")
    other = Client(f"http://127.0.0.1:{srv.port}/api/v1/", KEY_B)  # base may end in /api/v1
    assert other.list().total == 0
    with pytest.raises(ApiError) as err:
        other.get(made.uuid)
    assert err.value.status == 404


def test_an_unreachable_service_is_one_clear_error() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnreachable) as err:
        Client(dead, KEY_A, timeout=5).readyz()
    assert err.value.status == 0 and f"is `edge-face serve` running at {dead}?" in str(err.value)
    with pytest.raises(ValueError, match="not an http"):
        Client("127.0.0.1:8080", KEY_A)


async def test_async_client_round_trip(srv: FacesServer, testdata: Path) -> None:
    elon = person(testdata, "elon_musk")
    async with AsyncClient(f"http://127.0.0.1:{srv.port}", KEY_A) as c:
        assert (await c.readyz()).ready
        made = [await c.create(elon, key="elon", collection="async") for _ in range(3)]
        assert (await c.get(made[0].uuid)).collection == "async"
        assert (await c.patch(made[0].uuid, metadata={"n": 1})).metadata == {"n": 1}
        walked = [e.uuid async for e in c.entities(collection="async", page_size=2)]
        assert walked == [m.uuid for m in made]
        hits = (await c.search(person(testdata, "elon_musk", 1), collection="async")).hits
        assert {h.entity.key for h in hits} == {"elon"}
        assert (await c.compare_entity(made[1].uuid, elon)).similarity_score >= 0.99
        assert (await c.compare(elon, elon)).similarity_score >= 0.99
        assert (await c.detect(elon)).count >= 1
        assert 0 <= (await c.liveness([elon, elon])).spoof_score <= 1
        assert "EDGE_FACE_V1" in {m.name for m in await c.models()}
        for m in made:
            await c.delete(m.uuid)
        with pytest.raises(ApiError) as err:
            await c.delete(made[0].uuid)
        assert (err.value.status, err.value.code) == (404, 404)
    bad = AsyncClient(f"http://127.0.0.1:{srv.port}", "wrong-key-123")
    try:
        with pytest.raises(ApiError) as err:
            await bad.list()
        assert err.value.code == 401
    finally:
        await bad.close()
    dead = AsyncClient(f"http://127.0.0.1:{free_port()}", KEY_A, timeout=5)
    try:
        with pytest.raises(ServiceUnreachable):
            await dead.models()
    finally:
        await dead.close()
