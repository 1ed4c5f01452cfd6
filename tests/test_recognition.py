"""The recognition service on real models, real photos and a real store: the threshold rule
of search (REST and cameras share it), the typed results, and domain errors (no contract
codes: the API adds those with the request's field name)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.config import Settings
from edge.engine import Engine
from edge.imaging.errors import ImageInputError
from edge.recognition import (
    Analyzed,
    Comparison,
    Enrolled,
    ImageQuery,
    LivenessCheck,
    LivenessUnavailable,
    Recognition,
    SearchResult,
)
from edge.store import Entity
from edge.vision.errors import NoFaceFound
from tests.support.engine import manifest_without_liveness, shared_models
from tests.support.images import b64, read_bgr

INSTANCE = "inst-a"


def photo(testdata: Path, person: str, n: int) -> Path:
    return testdata / "faces_by_identity" / person / f"{n}.jpg"


def query(path: Path) -> ImageQuery:
    return ImageQuery(data=b64(path))


@pytest.fixture
def rec(make_settings: Callable[..., Settings], model_dir: Path) -> Iterator[Recognition]:
    with Engine.open(make_settings(), models=shared_models(str(model_dir))) as engine:
        yield Recognition(engine)


def enrol(rec: Recognition, path: Path, key: str) -> Enrolled:
    return rec.enrol_image(
        INSTANCE,
        query(path),
        model=rec.model,
        model_name="EDGE_FACE_V1",
        key=key,
        collection="staff",
        metadata=[],
        ttl=-1,
    )


def test_search_keeps_matches_at_or_above_the_threshold_best_first(
    rec: Recognition, testdata: Path
) -> None:
    guido = enrol(rec, photo(testdata, "guido_van_rossum", 1), "guido")
    matt = enrol(rec, photo(testdata, "matt_damon", 1), "matt")
    probe = rec.analyze(query(photo(testdata, "guido_van_rossum", 2)))

    everyone = rec.search(INSTANCE, probe.embedding, limit=10, threshold=0.0)
    assert [m.entity.uuid for m in everyone] == [guido.entity.uuid, matt.entity.uuid]
    own, other = everyone
    # The calibrated score is the REST similarityScore of the two embeddings.
    assert own.score == pytest.approx(rec.similarity(probe.embedding, enrol_vector(rec, guido)))
    assert own.score >= rec.threshold > other.score

    # Default threshold: the recommended one, so only the same person is found.
    assert [m.entity.key for m in rec.search(INSTANCE, probe.embedding, limit=10)] == ["guido"]
    # `>=`: a score equal to the threshold is a match, the next float above is not.
    at = rec.search(INSTANCE, probe.embedding, limit=10, threshold=own.score)
    assert [m.entity.key for m in at] == ["guido"]
    above = float(np.nextafter(own.score, 2.0))
    assert rec.search(INSTANCE, probe.embedding, limit=10, threshold=above) == []
    # Scoping: another collection or instance finds nobody.
    assert rec.search(INSTANCE, probe.embedding, collection="visitors", threshold=0.0) == []
    assert rec.search("inst-b", probe.embedding, threshold=0.0) == []

    # The camera's question is the same rule with limit 1.
    best = rec.best_match(INSTANCE, "staff", probe.embedding)
    assert best is not None and best.entity.uuid == guido.entity.uuid
    stranger = rec.analyze(query(photo(testdata, "barack_obama", 1)))
    assert rec.best_match(INSTANCE, "", stranger.embedding) is None


def enrol_vector(rec: Recognition, enrolled: Enrolled) -> np.ndarray:
    ent = rec.comparable_entity(INSTANCE, enrolled.entity.uuid, rec.model)
    assert ent is not None and ent.vector is not None
    return ent.vector


def test_results_are_typed_and_consistent(rec: Recognition, testdata: Path) -> None:
    path = photo(testdata, "matt_damon", 2)
    analyzed = rec.analyze(query(path))
    assert isinstance(analyzed, Analyzed)
    assert (analyzed.image.width, analyzed.image.height) == analyzed.face.image_size
    assert analyzed.embedding.shape == (rec.pipeline.embedding_dim,)

    enrolled = enrol(rec, photo(testdata, "matt_damon", 1), "matt")
    assert isinstance(enrolled.entity, Entity) and enrolled.entity.key == "matt"
    assert enrolled.entity.model_name == "EDGE_FACE_V1" and rec.store.count(INSTANCE) == 1

    found = rec.search_image(
        INSTANCE,
        query(path),
        model=rec.model,
        collection=None,
        key=None,
        limit=5,
        threshold=rec.threshold,
    )
    assert isinstance(found, SearchResult)
    assert [m.entity.uuid for m in found.matches] == [enrolled.entity.uuid]
    assert found.face.face.position(*found.face.image_size) == analyzed.face.face.position(
        *analyzed.face.image_size
    )

    other = rec.analyze(query(photo(testdata, "guido_van_rossum", 1)))
    cmp = rec.compare(analyzed, other)
    assert isinstance(cmp, Comparison) and 0.0 <= cmp.score < rec.threshold
    assert cmp.score == pytest.approx(rec.compare(other, analyzed).score)  # symmetric
    assert cmp.one is analyzed.face and cmp.two is other.face

    # A stored entity is comparable only with its own model (and this pack's weights).
    assert rec.comparable_entity(INSTANCE, enrolled.entity.uuid, "OTHER_MODEL") is None


def test_liveness_scores_the_face_analyze_finds(rec: Recognition, testdata: Path) -> None:
    path = testdata / "liveness" / "spoof" / "doubango_spoof.jpg"
    check = rec.liveness(query(path))
    assert isinstance(check, LivenessCheck) and 0.0 <= check.spoof_score <= 1.0
    face = rec.analyze(query(path), embed=False).face
    assert check.position == face.face.position(*face.image_size)
    # The same scorer a camera calls per frame, on the same pixels and face.
    direct = rec.spoof(read_bgr(path), face.face)
    assert direct is not None
    assert check.result.spoof_score == pytest.approx(direct.spoof_score, abs=1e-4)


def test_domain_errors_not_contract_codes(rec: Recognition, testdata: Path) -> None:
    with pytest.raises(NoFaceFound):
        rec.analyze(query(testdata / "awkward" / "no_face_dogs.jpg"))
    with pytest.raises(ImageInputError):
        rec.analyze(ImageQuery(data="not base64 at all!"))
    assert rec.detect_all(query(testdata / "awkward" / "no_face_landscape_view.jpg")) == []
    assert rec.store.count(INSTANCE) == 0


def test_without_liveness_roles_liveness_is_unavailable(
    make_settings: Callable[..., Settings], tmp_path: Path, testdata: Path
) -> None:
    manifest = manifest_without_liveness(tmp_path / "manifest.json")
    with Engine.open(make_settings(models={"manifest": manifest})) as engine:
        rec = Recognition(engine)
        assert not rec.has_liveness
        path = photo(testdata, "matt_damon", 1)
        with pytest.raises(LivenessUnavailable):
            rec.liveness(query(path))
        face = rec.analyze(query(path)).face.face
        assert rec.spoof(read_bgr(path), face) is None
        # Recognition itself is untouched by the missing liveness roles.
        assert rec.detect_frame(read_bgr(path))
