"""End to end over HTTP: enrol one photo per person, find each person with another photo.

Uses the `photo` kind of faces_by_identity (ordinary colour photos, as a kiosk would see):
every person with at least two such photos is enrolled from one and searched with each of
the others; people with a single photo are never enrolled and must stay under the published
recommended threshold.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from tests.support.faces import FACES, FacesServer
from tests.support.images import img


def photos_by_person(testdata: Path) -> dict[str, list[Path]]:
    sources = json.loads((testdata / "SOURCES.json").read_text())
    out: dict[str, list[Path]] = defaultdict(list)
    for f in sources["files"]:
        labels = f.get("labels", {})
        if f["file"].startswith("faces_by_identity/") and labels.get("image_kind") == "photo":
            out[labels["identity"]].append(testdata / f["file"])
    return {k: sorted(v) for k, v in sorted(out.items())}


def test_enrol_then_search_finds_each_person(srv: FacesServer, testdata: Path) -> None:
    people = photos_by_person(testdata)
    threshold = next(
        m["recommendedThreshold"]
        for m in srv.call("GET", "/api/v1/models").json["models"]
        if m["entity"] == "faces"
    )
    enrolled: dict[str, str] = {}
    probes: list[tuple[str, Path]] = []
    strangers: list[Path] = []
    for person, photos in people.items():
        if len(photos) < 2:
            strangers += photos
            continue
        rest = list(photos)
        while rest and person not in enrolled:
            r = srv.create(img(rest.pop(0)), collection="e2e", key=person)
            if r.status == 201:
                enrolled[person] = r.json["uuid"]
            else:  # a photo without a usable face (e.g. a small face) is skipped, loudly
                assert r.json["code"] in (223, 224), r.raw
        probes += [(person, p) for p in rest]
    assert len(enrolled) >= 10 and len(strangers) >= 3

    def search(photo: Path) -> dict:
        body = {"model": "EDGE_FACE_V1", "image": img(photo), "collection": "e2e"}
        return srv.call("POST", f"{FACES}/search", body).json

    right, asked, report = 0, 0, []
    for person, photo in probes:
        out = search(photo)
        if "entitiesFound" not in out:  # the probe photo has no usable face
            assert out["code"] in (223, 224), out
            continue
        asked += 1
        top = out["entitiesFound"][0]
        right += top["key"] == person
        report.append((person, photo.name, top["key"], round(top["similarityScore"], 3)))
    print(f"\nrank-1: {right}/{asked}")
    for row in report:
        print(*row)
    assert asked >= 2 * len(enrolled) - 5
    assert right == asked, [r for r in report if r[0] != r[2]]

    for photo in strangers:
        out = search(photo)
        if "entitiesFound" in out:
            best = out["entitiesFound"][0]["similarityScore"]
            assert best < threshold, (photo, out["entitiesFound"][0])
