"""`edge-face enroll` against a real service on loopback, with real photos read in place.

The per-person gallery is a tmp folder of symlinks to ../shared/testdata photos (links, not
copies), so the test controls which photos are enrolled and which are held out for search.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "api"))

from faces_helpers import FACES, KEY_A, FacesServer, face_server, img
from skeleton_helpers import free_port

from edge.cli import main
from edge.config import load_settings

PEOPLE = ("elon_musk", "guido_van_rossum", "mark_zuckerberg")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[FacesServer]:
    with face_server(tmp_path_factory.mktemp("enroll"), model_dir) as srv:
        yield srv


@pytest.fixture(autouse=True)
def empty_store(srv: FacesServer) -> Iterator[None]:
    """Each test starts and ends with no entities (deleted through the API)."""
    yield
    for e in entities(srv):
        assert srv.call("DELETE", f"{FACES}/{e['uuid']}").status == 204


def entities(srv: FacesServer) -> list[dict[str, Any]]:
    r = srv.call("GET", f"{FACES}?limit=1000")
    assert r.status == 200, r.raw
    return list(r.json["entities"])


def url(srv: FacesServer) -> str:
    return f"http://127.0.0.1:{srv.port}"


def photos(testdata: Path, person: str) -> list[Path]:
    return sorted((testdata / "faces_by_identity" / person).iterdir())


@pytest.fixture
def gallery(tmp_path: Path, testdata: Path) -> tuple[Path, dict[str, Path]]:
    """gallery/<person>/ linking each person's first two photos; the third is held out."""
    root = tmp_path / "gallery"
    held_out: dict[str, Path] = {}
    for person in PEOPLE:
        pics = photos(testdata, person)
        (root / person).mkdir(parents=True)
        for p in pics[:2]:
            (root / person / p.name).symlink_to(p)
        held_out[person] = pics[2]
    return root, held_out


def enroll(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["enroll", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_per_person_folders_enrol_with_folder_names_as_keys(
    srv: FacesServer, gallery: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, held_out = gallery
    rc, out, _ = enroll(capsys, str(root), "--url", url(srv), "--api-key", KEY_A, "--json")
    assert rc == 0, out
    report = json.loads(out)
    assert report["failed"] == [] and report["error"] is None
    assert len(report["enrolled"]) == 2 * len(PEOPLE)

    stored = {e["uuid"]: e for e in entities(srv)}
    assert len(stored) == 2 * len(PEOPLE)
    for item in report["enrolled"]:
        person = Path(item["path"]).parent.name
        assert item["key"] == person
        assert stored[item["uuid"]]["key"] == person
        assert stored[item["uuid"]]["model"] == "EDGE_FACE_V1"
    # The running service's index knows them: a held-out photo finds its own person first.
    for person, photo in held_out.items():
        r = srv.call("POST", f"{FACES}/search", {"model": "EDGE_FACE_V1", "image": img(photo)})
        assert r.status == 200, r.raw
        assert r.json["entitiesFound"][0]["key"] == person


def test_a_no_face_photo_fails_with_223_and_the_rest_are_enrolled(
    srv: FacesServer,
    gallery: tuple[Path, dict[str, Path]],
    testdata: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _ = gallery
    dogs = testdata / "awkward" / "no_face_dogs.jpg"
    args = (str(root), str(dogs), "--url", url(srv), "--api-key", KEY_A, "--collection", "door")
    rc, out, _ = enroll(capsys, *args)
    assert rc == 1
    assert f"enrolled {2 * len(PEOPLE)}, failed 1" in out
    assert f"{dogs}: 223 image_entity_not_found:" in out
    stored = entities(srv)
    assert len(stored) == 2 * len(PEOPLE)
    assert {e["key"] for e in stored} == set(PEOPLE)  # the dogs' stem key was never created
    assert {e["collection"] for e in stored} == {"door"}


def test_a_flat_folder_uses_stems_or_the_given_key(
    srv: FacesServer, testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = photos(testdata, "elon_musk")[0]
    rc, out, _ = enroll(
        capsys, str(one), "--url", url(srv), "--api-key", KEY_A, "--key", "elon", "--json"
    )
    assert rc == 0, out
    uuid = json.loads(out)["enrolled"][0]["uuid"]
    assert srv.call("GET", f"{FACES}/{uuid}").json["key"] == "elon"

    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "visitor_1.jpg").symlink_to(photos(testdata, "mark_zuckerberg")[0])
    (flat / "notes.txt").write_text("not a photo")  # skipped by suffix when scanning
    rc, out, _ = enroll(capsys, str(flat), "--url", url(srv), "--api-key", KEY_A, "--json")
    assert rc == 0, out
    assert [e["key"] for e in json.loads(out)["enrolled"]] == ["visitor_1"]
    assert sorted(e["key"] for e in entities(srv)) == ["elon", "visitor_1"]


def test_a_refused_key_exits_2_and_creates_nothing(
    srv: FacesServer, gallery: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = gallery
    rc, out, err = enroll(capsys, str(root), "--url", url(srv), "--api-key", "wrong-key-123")
    assert "enrolled 0, failed 0" in out
    assert rc == 2
    assert "refused the api-key" in err
    assert entities(srv) == []


def test_an_unreachable_service_exits_2_with_a_hint(
    gallery: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = gallery
    dead = f"http://127.0.0.1:{free_port()}"
    rc, _, err = enroll(capsys, str(root), "--url", dead, "--api-key", KEY_A)
    assert rc == 2
    assert f"is `edge-face serve` running at {dead}?" in err


def test_dry_run_lists_and_sends_nothing(
    srv: FacesServer, gallery: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = gallery
    rc, out, _ = enroll(capsys, str(root), "--url", url(srv), "--dry-run", "--json")
    assert rc == 0
    listed = json.loads(out)["photos"]
    assert sorted({p["key"] for p in listed}) == sorted(PEOPLE)
    assert len(listed) == 2 * len(PEOPLE)
    assert "data" not in out  # only paths and keys, never image bytes
    assert entities(srv) == []


def test_the_key_comes_from_the_generated_key_file(
    srv: FacesServer, testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --api-key, no env, no configured key: the box's generated key file is used."""
    from edge.enroll import run

    data = tmp_path / "data"
    data.mkdir()
    (data / "api-key").write_text(KEY_A + "\n")
    settings = load_settings(None, data_dir=data, server={"host": "0.0.0.0", "port": srv.port})
    from edge.cli import build_parser

    argv = ["enroll", str(photos(testdata, "guido_van_rossum")[0])]
    args = build_parser(argv).parse_args(argv)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("EDGE_API_KEY", raising=False)
        assert run(settings, args) == 0  # also: 0.0.0.0 is reached through 127.0.0.1
    assert "enrolled 1, failed 0" in capsys.readouterr().out
    assert [e["key"] for e in entities(srv)] == ["1"]


def test_help_works() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "enroll", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--dry-run" in proc.stdout and "per-person" in proc.stdout


def test_a_photo_over_the_body_limit_fails_with_413_and_the_run_goes_on(
    srv: FacesServer, testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, (1600, 1600, 3), dtype=np.uint8)
    big = tmp_path / "big.png"
    assert cv2.imwrite(str(big), noise)
    assert big.stat().st_size * 4 / 3 > srv.settings.server.max_body_bytes
    one = photos(testdata, "elon_musk")[0]
    rc, out, _ = enroll(capsys, str(big), str(one), "--url", url(srv), "--api-key", KEY_A)
    assert rc == 1, out
    assert f"{big}: 413 payload_too_large:" in out
    assert [e["key"] for e in entities(srv)] == [one.stem]
