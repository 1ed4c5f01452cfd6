"""The API's 106 landmarks read off the 468-point mesh: the table, where the points land on
real faces (against PFLD-106 and dlib's 68 points), left/right order, the shipped merge and
the evaluation that decides it. Real models on real photos."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from edge.api.wire import details_json
from edge.config import ConfigError, load_settings
from edge.engine import Models
from edge.evaluation import landmarks106 as lm_eval
from edge.runtime.registry import ModelRegistry
from edge.vision import mesh106
from edge.vision.details import DetailAnalyzer
from edge.vision.landmarks import LandmarkModel
from edge.vision.mesh import MeshModel
from edge.vision.types import DetailFlags
from tests.support.images import read_bgr
from tests.vision.vision_helpers import FRONTAL

TURNED = "awkward/cai_xukun_pixels_rotated_r90.jpg"  # the face lies on its side
LANDMARKS = DetailFlags(landmarks=True)


def _iod(pts: np.ndarray) -> float:
    return float(np.linalg.norm(pts[61] - pts[52]))  # outer eye corners, API order


def _upright(pts: np.ndarray) -> np.ndarray:
    """Points in the face frame: x along the eye line (74 -> 77), y down the face."""
    d = pts[77] - pts[74]
    a = math.atan2(float(d[1]), float(d[0]))
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    out: np.ndarray = (pts - pts[74]) @ rot.T
    return out


@pytest.fixture(scope="module")
def mesh_model(registry: ModelRegistry) -> MeshModel:
    return MeshModel(registry)


# The table ---------------------------------------------------------------------------------
def test_table_is_106_valid_vertex_mixes() -> None:
    data = json.loads(mesh106.MAP_PATH.read_text())
    assert len(data["points"]) == 106
    for entry in data["points"]:
        assert 1 <= len(entry) <= 4
        assert all(0 <= v < 468 and v == int(v) for v, _ in entry)
        assert sum(w for _, w in entry) == pytest.approx(1.0, abs=1e-6)
    w = mesh106.table().weights
    assert w.shape == (106, 468) and np.allclose(w.sum(1), 1.0)
    # Distinct API points are distinct mesh points, except the designed ones: the mesh has no
    # iris, so each eye's centre (74/77) and pupil (104/105) are the same mix.
    same = {(a, b) for a in range(106) for b in range(a + 1, 106) if np.allclose(w[a], w[b])}
    assert same == {(74, 104), (77, 105)}


def test_parts_cover_the_106_points_once_and_ship_only_known_parts() -> None:
    idx = sorted(i for part in mesh106.PARTS.values() for i in part)
    assert idx == list(range(106))
    assert set(mesh106.table().ship_parts) <= set(mesh106.PARTS)


def test_a_broken_table_is_refused() -> None:
    good = [[[0, 1.0]]] * 106
    mesh106._check(good)
    with pytest.raises(ValueError, match="105 points"):
        mesh106._check(good[:105])
    with pytest.raises(ValueError, match="bad vertex"):
        mesh106._check([[[468, 1.0]], *good[1:]])
    with pytest.raises(ValueError, match="sum to"):
        mesh106._check([[[0, 0.5], [1, 0.4]], *good[1:]])


# Where the points land on real faces -------------------------------------------------------
@pytest.mark.parametrize("rel", [*FRONTAL, TURNED])
def test_mesh106_lands_near_pfld106_per_part(
    registry: ModelRegistry, mesh_model: MeshModel, largest_face, testdata: Path, rel: str
) -> None:
    """Per part, mesh-106 is within 25% of the inter-ocular distance of PFLD-106 on average.

    Measured here: 3-20% (the two models' conventions differ: PFLD's contour sits outside
    the jaw and its eye rings high). A point in the wrong group is farther than 25%: eye to
    brow is about 35%, left eye to right eye 100%; the mirrored (left/right-swapped) mesh
    points are checked to fail the same bound."""
    bgr = read_bgr(testdata / rel)
    face = largest_face(bgr)
    pfld = LandmarkModel(registry).predict(bgr, face).astype(np.float64)
    ours = mesh106.points106(mesh_model.predict(bgr, face)).astype(np.float64)
    iod = _iod(pfld)
    d = np.linalg.norm(ours - pfld, axis=1) / iod
    for part, idx in mesh106.PARTS.items():
        assert d[list(idx)].mean() < 0.25, (part, d[list(idx)].mean())
    swapped = ours[lm_eval.mirror_permutation()]
    eyes = list(mesh106.PARTS["eyes"])
    assert (np.linalg.norm(swapped - pfld, axis=1)[eyes] / iod).mean() > 0.25


def test_mesh106_lands_near_dlib68(models: Models, testdata: Path) -> None:
    """On dlib's 68 points (dlib's shape predictor, not hand-labelled; faces of 37-90 px)
    the median face's NME per part stays within the bound a right-group point meets and a
    wrong-group one (>= 35% away) does not. Measured medians: eyes/brows/nose 4-6%, mouth
    about 10%, contour about 22% (the mesh's jaw runs inside dlib's on these small faces)."""
    pipe = models.pipeline
    mesh = MeshModel(pipe.registry)
    ann = json.loads((testdata / "annotations" / "dlib_pascal_voc_faces.json").read_text())
    per_part: dict[str, list[float]] = {p: [] for p in lm_eval.PART_OF_68}
    for rel, item in sorted(ann["images"].items()):
        if not item.get("faces_with_landmarks"):
            continue
        bgr = read_bgr(testdata / rel)
        faces = [a.face for a in pipe.detect_all(bgr)]
        for lab in item["faces_with_landmarks"]:
            x, y, w, h = lab["box_xywh"]
            box = np.array([x, y, x + w, y + h], np.float64)
            best = max(faces, key=lambda f: lm_eval._iou(box, f.box.astype(np.float64)))
            if lm_eval._iou(box, best.box.astype(np.float64)) < 0.3:
                continue
            ref = np.asarray(lab["landmarks68"], np.float64)
            got = mesh106.points106(mesh.predict(bgr, best))[list(lm_eval.API_OF_68)]
            d = np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref[45] - ref[36])
            for part, idx in lm_eval.PART_OF_68.items():
                per_part[part].append(float(d[list(idx)].mean()))
    assert len(per_part["eyes"]) >= 15
    bounds = {"eyes": 0.15, "brows": 0.15, "nose": 0.15, "mouth": 0.2, "contour": 0.35}
    for part, bound in bounds.items():
        assert float(np.median(per_part[part])) < bound, (part, np.median(per_part[part]))


@pytest.mark.parametrize("rel", [*FRONTAL, TURNED])
def test_mesh106_left_and_right_are_image_left_and_right(
    mesh_model: MeshModel, largest_face, testdata: Path, rel: str
) -> None:
    """The ordering checks of landmarks106.md §7 (face frame, so the sideways face too):
    the contract's left eye/brow/contour/mouth corner are on the image-left side."""
    bgr = read_bgr(testdata / rel)
    p = _upright(mesh106.points106(mesh_model.predict(bgr, largest_face(bgr))).astype(float))
    x, y = p[:, 0], p[:, 1]
    left_eye, right_eye = [52, 53, 72, 54, 55, 56, 73, 57], [58, 59, 75, 60, 61, 62, 76, 63]
    assert x[left_eye].mean() < x[right_eye].mean()
    assert x[52] < x[55] < x[58] < x[61]  # outer, inner | inner, outer
    assert y[72] < y[73] and y[75] < y[76]  # lid top above bottom
    assert x[0] < x[32] and y[0] < y[16] and y[32] < y[16]
    assert x[33] < x[37] < x[38] < x[42]
    assert all(x[a] < x[b] for a, b in zip(range(64, 67), range(65, 68), strict=True))
    assert all(x[a] < x[b] for a, b in zip(range(68, 71), range(69, 72), strict=True))
    assert y[35] < y[65] and y[40] < y[70]  # upper brow edge above the lower one
    assert y[65] < y[72] and y[70] < y[75]  # brows above the eyes
    assert y[43] < y[46] and x[47] < x[51] and x[82] < x[83] and y[78] < y[80] < y[82]
    assert x[84] < x[90] and y[87] < y[93] and x[95] < x[91] and x[103] < x[101]
    assert y[46] < y[87] < y[16]  # nose tip above the mouth above the chin


# The product's landmarks block -------------------------------------------------------------
def test_landmarks_block_takes_the_shipped_parts_from_the_mesh(
    registry: ModelRegistry, largest_face, testdata: Path
) -> None:
    """evaluated = PFLD-106 with the shipped parts from the mesh; pfld and mesh = one source
    alone. The quality block (read from the PFLD-106 hub) is the same whatever the source."""
    bgr = read_bgr(testdata / FRONTAL[0])
    face = largest_face(bgr)
    flags = DetailFlags(landmarks=True, quality=True)
    out = {
        src: details_json(DetailAnalyzer(registry, src).analyze(bgr, face, flags))
        for src in ("evaluated", "pfld", "mesh")
    }
    lm = {s: np.array([[p["x"], p["y"]] for p in o["landmarks"]], float) for s, o in out.items()}
    pfld = LandmarkModel(registry).predict(bgr, face)
    ours = mesh106.points106(MeshModel(registry).predict(bgr, face))
    assert np.abs(lm["pfld"] - np.round(pfld)).max() <= 1
    assert np.abs(lm["mesh"] - np.round(ours)).max() <= 1
    shipped = mesh106.table().ship_parts
    for part, idx in mesh106.PARTS.items():
        want = lm["mesh"] if part in shipped else lm["pfld"]
        assert np.array_equal(lm["evaluated"][list(idx)], want[list(idx)]), part
    assert shipped and not np.array_equal(lm["evaluated"], lm["pfld"])
    assert out["evaluated"]["quality"] == out["pfld"]["quality"] == out["mesh"]["quality"]
    assert len(out["mesh"]["landmarks"]) == 106  # the contract's shape, unchanged


def test_landmarks_source_setting_is_validated_and_reaches_the_pipeline(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    assert load_settings(None, landmarks={"source": "pfld"}).landmarks.source == "pfld"
    with pytest.raises(ConfigError):
        load_settings(None, landmarks={"source": "dlib"})
    from edge.vision.pipeline import FacePipeline

    pipe = FacePipeline(registry, load_settings(None, landmarks={"source": "pfld"}))
    assert isinstance(pipe.details, DetailAnalyzer) and pipe.details.mesh_parts == ()
    pipe = FacePipeline(registry, load_settings(None))
    assert isinstance(pipe.details, DetailAnalyzer)
    assert pipe.details.mesh_parts == mesh106.table().ship_parts


# The evaluation ----------------------------------------------------------------------------
def test_eval_prints_both_sources_and_the_shipped_parts_pass_its_gate(
    models: Models, testdata: Path
) -> None:
    res = lm_eval.evaluate(models.pipeline, testdata)
    text = lm_eval.format_table(res)
    header = next(line for line in text.splitlines() if line.startswith("part"))
    assert "PFLD-106" in header and "mesh-106" in header
    for part in mesh106.PARTS:
        assert any(line.startswith(part) and "dlib-68" in line for line in text.splitlines())
    assert res["dlib68"]["faces"] >= 15 and res["portraits"]["faces"] >= 50
    for src in ("PFLD-106", "mesh-106"):
        assert all(math.isfinite(v) for v in res["dlib68"]["nme"][src].values())
        assert res["portraits"]["ms_per_face"][src] > 0
    # What ships is exactly what this evaluation finds no worse.
    assert res["mesh_no_worse"] == list(mesh106.table().ship_parts)
    old, new = lm_eval.columns(res, "PFLD-106"), lm_eval.columns(res, "mesh-106")
    for part in mesh106.table().ship_parts:
        assert all(new[part][c] <= old[part][c] for c in old[part])


def test_shipped_table_and_its_document_follow_from_the_rules(
    models: Models, mesh_model: MeshModel, largest_face, testdata: Path
) -> None:
    """Rebuilding the table from the calibration faces gives the shipped points, and
    docs/landmarks106_mesh.md is the document of the shipped JSON.

    Bound: 4% of the inter-ocular distance for any point, 0.5% for the median one. Other
    numeric precision (this suite's models vs the default install) moved the nearest-vertex
    picks of the nose wings to the adjacent vertex, 2.7% away; a wrong rule (another vertex
    group, a swapped side) moves points by 10% or more."""
    from tools.mesh106_table import DOC_PATH, build, collect, markdown

    shipped = json.loads(mesh106.MAP_PATH.read_text())
    rebuilt = build(*collect(models.pipeline, testdata), shipped["ship_parts"])
    bgr = read_bgr(testdata / FRONTAL[0])
    pts = mesh_model.predict(bgr, largest_face(bgr)).points.astype(np.float64)
    a = mesh106._check(shipped["points"]) @ pts
    b = mesh106._check(rebuilt["points"]) @ pts
    gap = np.linalg.norm(a - b, axis=1) / _iod(a)
    assert gap.max() < 0.04
    assert np.median(gap) < 0.005
    assert DOC_PATH.read_text(encoding="utf-8") == markdown(shipped)
