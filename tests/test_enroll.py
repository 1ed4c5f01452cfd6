"""`edge-face enroll` against a real service on loopback, with real photos read in place.

The per-person gallery is a tmp folder of symlinks to ../shared/testdata photos (links, not
copies), so the test controls which photos are enrolled and which are held out for search.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.config import load_settings
from tests.support.faces import FACES, FacesServer, face_server
from tests.support.images import img
from tests.support.net import free_port
from tests.support.servers import KEY_A

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
    from edge.commands.enroll import run

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


def test_a_photo_over_the_body_limit_that_cannot_be_shrunk_fails_with_413_and_the_run_goes_on(
    srv: FacesServer, testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes the client cannot decode are sent as they are: the service's 413 stands."""
    import numpy as np

    big = tmp_path / "big.jpg"
    big.write_bytes(np.random.default_rng(0).bytes(srv.settings.server.max_body_bytes))
    one = photos(testdata, "elon_musk")[0]
    rc, out, _ = enroll(capsys, str(big), str(one), "--url", url(srv), "--api-key", KEY_A)
    assert rc == 1, out
    assert f"{big}: 413 payload_too_large:" in out
    assert [e["key"] for e in entities(srv)] == [one.stem]


def test_a_photo_over_the_body_limit_is_shrunk_and_enrolled(
    srv: FacesServer, testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2

    original = photos(testdata, "elon_musk")[0]
    bgr = cv2.imread(str(original), cv2.IMREAD_COLOR)
    big = tmp_path / "elon_large.png"
    assert cv2.imwrite(str(big), cv2.resize(bgr, None, fx=5, fy=5, interpolation=cv2.INTER_CUBIC))
    size = big.stat().st_size
    assert size > srv.settings.server.max_body_bytes  # sent as it is, it would be a 413
    rc, out, err = enroll(
        capsys, str(big), "--key", "elon", "--url", url(srv), "--api-key", KEY_A, "--json"
    )
    assert rc == 0, (out, err)
    report = json.loads(out)
    [item] = report["enrolled"]
    assert (
        item["shrunkFrom"] == size
        and item["sentBytes"] * 4 / 3 < srv.settings.server.max_body_bytes
    )
    # The face survived the re-encoding: the original photo finds it as the same person.
    r = srv.call(
        "POST", f"{FACES}/{item['uuid']}/compare", {"model": "EDGE_FACE_V1", "image": img(original)}
    )
    assert r.status == 200, r.raw
    assert r.json["similarityScore"] >= 0.9


def test_skip_existing_twice_enrols_once(
    srv: FacesServer, gallery: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = gallery
    args = (str(root), "--url", url(srv), "--api-key", KEY_A, "--skip-existing", "--json")
    rc, out, _ = enroll(capsys, *args)
    assert rc == 0, out
    first = json.loads(out)
    assert len(first["enrolled"]) == 2 * len(PEOPLE) and first["skipped"] == []
    rc, out, _ = enroll(capsys, *args)
    assert rc == 0, out
    second = json.loads(out)
    assert second["enrolled"] == []
    assert sorted(s["key"] for s in second["skipped"]) == sorted(PEOPLE)
    assert {s["existing"] for s in second["skipped"]} == {2}
    assert sorted(e["uuid"] for e in entities(srv)) == sorted(e["uuid"] for e in first["enrolled"])
    # Another collection is another gallery: the same people are enrolled there.
    rc, out, _ = enroll(capsys, *args, "--collection", "lobby")
    assert rc == 0 and len(json.loads(out)["enrolled"]) == 2 * len(PEOPLE)


def test_replace_leaves_exactly_the_new_enrolments(
    srv: FacesServer,
    gallery: tuple[Path, dict[str, Path]],
    tmp_path: Path,
    testdata: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, held_out = gallery
    base = ("--url", url(srv), "--api-key", KEY_A, "--json")
    rc, out, _ = enroll(capsys, str(root), *base)
    assert rc == 0, out
    old = {e["uuid"] for e in json.loads(out)["enrolled"]}
    keep = srv.call("GET", f"{FACES}?key=mark_zuckerberg").json["entities"]

    # New photos of two people: elon gets one new photo, guido a photo with no face at all.
    new = tmp_path / "new"
    (new / "elon_musk").mkdir(parents=True)
    (new / "elon_musk" / "x.jpg").symlink_to(held_out["elon_musk"])
    (new / "guido_van_rossum").mkdir()
    (new / "guido_van_rossum" / "x.jpg").symlink_to(testdata / "awkward" / "no_face_dogs.jpg")
    rc, out, _ = enroll(capsys, str(new), *base, "--replace")
    assert rc == 1, out  # guido's photo failed
    report = json.loads(out)
    assert report["replaced"] == [{"key": "elon_musk", "deleted": 2}]
    assert report["kept"] == [{"key": "guido_van_rossum", "existing": 2}]
    [fresh] = report["enrolled"]

    stored = entities(srv)
    elon = [e["uuid"] for e in stored if e["key"] == "elon_musk"]
    assert elon == [fresh["uuid"]]  # exactly the new enrolment
    assert len([e for e in stored if e["key"] == "guido_van_rossum"]) == 2  # kept: nothing new
    assert [e for e in stored if e["key"] == "mark_zuckerberg"] == keep  # untouched
    assert fresh["uuid"] not in old
    r = srv.call(
        "POST", f"{FACES}/search", {"model": "EDGE_FACE_V1", "image": img(held_out["elon_musk"])}
    )
    assert r.json["entitiesFound"][0]["uuid"] == fresh["uuid"]  # the index dropped the old ones


def test_file_names_as_keys_warn_and_progress_is_plain_lines_off_a_terminal(
    srv: FacesServer, testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, p in enumerate(photos(testdata, "elon_musk")[:2]):
        (flat / f"IMG_{i}.jpg").symlink_to(p)
    rc, out, err = enroll(capsys, str(flat), "--url", url(srv), "--api-key", KEY_A)
    assert rc == 0, out
    assert "2 photo(s) use their file name as the key ('IMG_0', 'IMG_1')" in err
    assert "one folder per person" in err
    lines = sorted(line for line in err.splitlines() if line.startswith("["))
    assert [line[:6] for line in lines] == ["[1/2] ", "[2/2] "]  # in completion order
    assert sorted(line[6:] for line in lines) == [
        f"{flat / f'IMG_{i}.jpg'}: enrolled as 'IMG_{i}'" for i in range(2)
    ]
    assert "\r" not in err

    # Per-person folders or --key: no warning.
    rc, _, err = enroll(
        capsys, str(flat), "--key", "elon", "--url", url(srv), "--api-key", KEY_A, "--dry-run"
    )
    assert rc == 0 and "warning" not in err


def test_a_terminal_gets_a_progress_bar(
    srv: FacesServer, gallery: tuple[Path, dict[str, Path]]
) -> None:
    import os
    import pty

    root, _ = gallery
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge.cli",
                "enroll",
                str(root),
                "--url",
                url(srv),
                "--api-key",
                KEY_A,
            ],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
        )
        out, _ = proc.communicate(timeout=300)
        os.close(slave)
        slave = -1
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 0, out
    bar = seen.decode()
    assert f"\r[{'#' * 30}] {2 * len(PEOPLE)}/{2 * len(PEOPLE)}" in bar
    assert "enrolled as" not in bar  # the bar replaces the per-photo lines


def test_a_box_with_smaller_limits_gets_photos_shrunk_further(
    tmp_path: Path, model_dir: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The local config says 5 MB / 40 MP; the box says 100 KB / 0.6 MP: 413 and 217 answers
    make the client shrink again (and again) until the photo is accepted."""
    import cv2

    with face_server(
        tmp_path / "strict", model_dir, max_body_bytes=100 * 1024, max_pixels=600_000
    ) as strict:
        chosen = [photos(testdata, "elon_musk")[i] for i in (0, 3)]  # 1 MP / 100 KB, 240 KB
        for p in chosen:
            h, w = cv2.imread(str(p)).shape[:2]
            assert h * w > 600_000 or p.stat().st_size * 4 / 3 > 100 * 1024
        rc, out, err = enroll(
            capsys,
            *map(str, chosen),
            "--key",
            "elon",
            "--url",
            url(strict),
            "--api-key",
            KEY_A,
            "--json",
        )
        assert rc == 0, (out, err)
        report = json.loads(out)
        assert len(report["enrolled"]) == 2
        for item, p in zip(report["enrolled"], chosen, strict=True):
            assert item["shrunkFrom"] == p.stat().st_size
            # Still the same face: a small probe made from the original matches it.
            bgr = cv2.imread(str(p))
            probe = cv2.resize(bgr, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", probe, [cv2.IMWRITE_JPEG_QUALITY, 80])
            assert ok
            body = {"model": "EDGE_FACE_V1", "image": {"data": base64.b64encode(buf).decode()}}
            r = strict.call("POST", f"{FACES}/{item['uuid']}/compare", body)
            assert r.status == 200, r.raw
            assert r.json["similarityScore"] >= 0.9
