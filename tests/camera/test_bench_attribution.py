"""`bench camera` attributes each decided face to the right appearance and explains misses."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
from camera_helpers import Vision

from benchmarks.camera import Outcome, RunResult, _appearance_of, build_video, explain_wrong
from edge.engine import Engine
from edge.recognition import Recognition


def test_faces_map_to_their_appearance_and_a_miss_is_explained(
    vision: Vision, engine: Engine, tmp_path: Path, testdata: Path
) -> None:
    video = tmp_path / "people.avi"
    # 0.6 s gap + 2 s per group: three groups of 1, 2 and 3 people.
    appearances, enrol = build_video(video, testdata, 8.4, 25.0)
    assert [a.slots for a in appearances] == [1, 2, 2, 3, 3, 3]
    rec = Recognition(engine)
    cap = cv2.VideoCapture(str(video))
    for seg in sorted({a.segment for a in appearances}):
        first = next(a.first_frame for a in appearances if a.segment == seg)
        cap.set(cv2.CAP_PROP_POS_FRAMES, first + 2)
        ok, img = cap.read()
        assert ok
        faces = sorted(rec.detect_frame(img), key=lambda f: f.box[0])
        expected = [i for i, a in enumerate(appearances) if a.segment == seg]
        got = [_appearance_of(appearances, seg, asdict(f.position(1280, 720))) for f in faces]
        assert got == expected  # left to right, one face per appearance
    cap.release()

    enrolled = {
        a.key: vision.pipeline.analyze_largest(cv2.imread(str(enrol[a.key]))).embedding
        for a in appearances
    }
    # Say the third appearance was decided as the first person: the line names both and
    # carries the measured similarities (own enrolment above the other person's).
    wrong = RunResult("edge-face", wrong=[Outcome(2, appearances[0].key, 0.95)])
    names = {k: v.name for k, v in enrol.items()}
    (line,) = explain_wrong([wrong], appearances, video, rec, enrolled, names)
    a = appearances[2]
    assert line.lstrip().startswith(f"{a.key} (group {a.segment}, face 2 of 2")
    assert appearances[0].key in line and "another person matched" in line
    own = float(line.split("own enrolment ")[1].split()[0])
    other = float(line.split("nearest other ")[1].split()[1].rstrip(";"))
    assert own > other and np.isfinite(own)
