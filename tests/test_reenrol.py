"""`edge-face models reenrol-report` on a real gallery file made by the real store."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main as cli_main
from edge.runtime.manifest import Manifest
from edge.runtime.registry import pack_fingerprint
from edge.store.entities import EntityStore


def _vec(seed: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _enrol(store: EntityStore, key: str, collection: str, dim: int, ttl: int = -1) -> None:
    store.create(instance="site", model="EDGE_FACE_V1", model_name="EDGE_FACE_V1",
                 collection=collection, key=key, metadata=[], ttl=ttl,
                 vector=_vec(len(key) + dim, dim))  # fmt: skip


@pytest.fixture
def gallery(tmp_path: Path, manifest: Manifest) -> Path:
    """Two V1 people (alice twice), one expired V1 row, one person already on V2."""
    db = tmp_path / "edge.sqlite3"
    with EntityStore(db, pack_fingerprint=pack_fingerprint(manifest, "default")) as s:
        _enrol(s, "alice", "staff", 128)
        _enrol(s, "alice", "staff", 128)
        _enrol(s, "bob", "", 128)
    past = datetime(2020, 1, 1, tzinfo=timezone.utc)
    with EntityStore(
        db, pack_fingerprint=pack_fingerprint(manifest, "default"), clock=lambda: past
    ) as s:
        _enrol(s, "gone", "", 128, ttl=60)
    with EntityStore(db, pack_fingerprint=pack_fingerprint(manifest, "v2")) as s:
        _enrol(s, "carol", "staff", 256)
    return db


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = cli_main(["models", "reenrol-report", *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_lists_what_a_move_to_v2_must_re_enrol(
    gallery: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = _report(capsys, "--store", str(gallery), "--json")
    assert rc == 0
    r = json.loads(out)
    assert r["target_model"] == "EDGE_FACE_V2"
    assert (r["live"], r["ready"], r["to_reenrol"]) == (4, 1, 3)  # the expired row is not live
    groups = {(g["collection"], g["key"]): g for g in r["groups"]}
    assert set(groups) == {("staff", "alice"), ("", "bob")}
    assert groups[("staff", "alice")]["enrolments"] == 2
    assert groups[("", "bob")]["made_by"] == "default/research-nc"


def test_moving_back_to_v1_lists_the_v2_person(
    gallery: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = _report(capsys, "--store", str(gallery), "--pack", "default")
    assert rc == 0
    assert "3 already made by it, 1 to re-enrol" in out
    assert "carol" in out and "alice" not in out
    assert "photos are not stored" in out


def test_read_only_and_clear_errors(
    gallery: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = gallery.read_bytes()
    _report(capsys, "--store", str(gallery), "--pack", "cc0")
    assert gallery.read_bytes() == before
    rc, _, err = _report(capsys, "--store", str(gallery), "--pack", "nope")
    assert rc == 2 and "unknown model pack 'nope'" in err
    rc, _, err = _report(capsys, "--store", str(tmp_path / "missing.sqlite3"))
    assert rc == 2 and "no gallery at" in err
