"""Detail blocks of one face (api.md §2.2): runs only the models the requested blocks need.

Landmarks are the hub: angle, quality, the eye patches and the upright crops all use them, so
they are computed at most once per face and shared. The mask detector and the eye-state CNN
are likewise run at most once per face, whichever of quality/attributes asks first.

The landmarks block the API returns takes the parts the evaluation shipped from the 468-point
mesh (`mesh106.py`, setting `landmarks.source`); the hub the other blocks read stays PFLD-106,
on which their thresholds were measured.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from edge.runtime.registry import ModelRegistry
from edge.vision import mesh106
from edge.vision import quality as q
from edge.vision.attributes import (
    AgeGender,
    AgeGenderHse,
    Emotion,
    EyeState,
    MaskDetector,
    MaskHit,
    fuse_emotions,
)
from edge.vision.landmarks import LandmarkModel, points_angle
from edge.vision.mesh import Mesh, MeshModel
from edge.vision.occlusion import visibility
from edge.vision.pose import HeadPose
from edge.vision.types import (
    Age,
    AttributeName,
    DetailFlags,
    Face,
    FaceAttributes,
    FaceDetails,
    FaceQuality,
    Label,
)

log = logging.getLogger(__name__)

AGE_MARGIN = 5


class _FaceWork:
    """Lazily computed, shared per-face intermediate results (one request, one face)."""

    def __init__(self, owner: DetailAnalyzer, bgr: np.ndarray, face: Face) -> None:
        self.owner, self.bgr, self.face = owner, bgr, face
        self._points: np.ndarray | None = None
        self._mask: tuple[MaskHit | None] | None = None
        self._eyes: tuple[tuple[float, float] | None] | None = None
        self._mesh: tuple[Mesh | None] | None = None

    @property
    def points(self) -> np.ndarray:
        if self._points is None:
            self._points = self.owner.landmarks.predict(self.bgr, self.face)
        return self._points

    @property
    def api_points(self) -> np.ndarray:
        """The landmarks block: PFLD-106 with the mesh's parts merged in; the mesh alone
        (PFLD-106 not run for it) when every part comes from the mesh."""
        parts = self.owner.mesh_parts
        mesh = self.mesh if parts else None
        if mesh is None:
            return self.points
        from_mesh = mesh106.points106(mesh)
        if set(parts) == set(mesh106.PARTS):
            return from_mesh
        return mesh106.merge(self.points, from_mesh, parts)

    @property
    def angle(self) -> float:
        return points_angle(self.points)

    @property
    def mask(self) -> MaskHit | None:
        if self._mask is None:
            hit = None
            if self.owner.has_mask:  # frame-level match, else the face's own crop decides
                mask = self.owner.mask
                hit = mask.match(self.bgr, self.face) or mask.classify(self.bgr, self.face)
            self._mask = (hit,)
        return self._mask[0]

    @property
    def mesh(self) -> Mesh | None:
        """The 468-point mesh when the pack has it (run at most once per face)."""
        if self._mesh is None:
            mesh = self.owner.mesh.predict(self.bgr, self.face) if self.owner.has_mesh else None
            self._mesh = (mesh,)
        return self._mesh[0]

    @property
    def eyes_open(self) -> tuple[float, float] | None:
        if self._eyes is None:
            eyes = self.owner.eyes.predict(self.bgr, self.points) if self.owner.has_eyes else None
            self._eyes = (eyes,)
        return self._eyes[0]


class DetailAnalyzer:
    """Measures the requested detail blocks of one face. Stateless per call: thread-safe
    (sessions are thread-safe; the mask detector's frame cache is locked)."""

    def __init__(
        self,
        registry: ModelRegistry,
        landmarks_source: Literal["evaluated", "pfld", "mesh"] = "evaluated",
    ) -> None:
        self.registry = registry
        self.landmarks = LandmarkModel(registry)
        self.pose = HeadPose(registry)
        self.age_gender = AgeGender(registry)
        # HSE FaceRes where the pack has it (research-nc): better on every age/gender figure
        # of `edge-face eval faces`, alone also better than averaged with the Intel model.
        self.age_gender_hse = AgeGenderHse(registry) if registry.has(AgeGenderHse.ROLE) else None
        self.emotion = Emotion(registry)
        self.eyes = EyeState(registry)
        self.mask = MaskDetector(registry)
        self.has_mask = registry.has(MaskDetector.ROLE)
        self.has_eyes = registry.has(EyeState.ROLE)
        self.mesh = MeshModel(registry)
        self.has_mesh = self.mesh.available
        # Parts of the landmarks block read off the mesh (none without the mesh model).
        self.mesh_parts: tuple[str, ...] = ()
        if self.has_mesh and landmarks_source == "mesh":
            self.mesh_parts = tuple(mesh106.PARTS)
        elif self.has_mesh and landmarks_source == "evaluated":
            self.mesh_parts = mesh106.table().ship_parts

    def supported_attributes(self) -> list[AttributeName]:
        """Attributes the loaded pack can estimate; all others are omitted from responses."""
        out: list[AttributeName] = []
        if self.registry.has(AgeGender.ROLE) or self.age_gender_hse is not None:
            out += ["age", "gender"]
        if self.registry.has(Emotion.ROLE):
            out.append("emotions")
        if self.has_mask:
            out.append("mask")
        return out

    def analyze(self, bgr: np.ndarray, face: Face, flags: DetailFlags) -> FaceDetails:
        """Only the requested blocks; the others stay None."""
        h, w = bgr.shape[:2]
        work = _FaceWork(self, bgr, face)
        return FaceDetails(
            position=face.position(w, h) if flags.position else None,
            angle=self.pose.estimate(bgr, face, work.points) if flags.angle else None,
            landmarks=work.api_points if flags.landmarks else None,
            quality=self._quality(work, w, h) if flags.quality else None,
            attributes=self._attributes(work) if flags.attributes else None,
        )

    def _quality(self, work: _FaceWork, w: int, h: int) -> FaceQuality:
        bgr, face, pts = work.bgr, work.face, work.points
        hit = work.mask
        mesh = work.mesh
        signals = q.OcclusionSignals(
            mask_share=hit.mask_share if hit is not None else None,
            eye_open=work.eyes_open,
            visible=visibility(mesh) if mesh is not None else None,
        )
        return FaceQuality(
            brightness=q.brightness(bgr, face, pts),
            sharpness=q.sharpness(bgr, face, pts),
            mouth_closed=q.mouth_closed(pts),
            centered=q.centered(face, w, h),
            size=q.size(face, w, h),
            integrity=q.integrity(face, w, h, pts),
            completeness=q.completeness(pts, w, h, signals),
        )

    def _attributes(self, work: _FaceWork) -> FaceAttributes:
        bgr, face = work.bgr, work.face
        supported = self.supported_attributes()
        age: Age | None = None
        gender: Label | None = None
        emotions: tuple[Label, ...] | None = None
        mask: Label | None = None
        if "age" in supported:
            if self.age_gender_hse is not None:
                years, p_male = self.age_gender_hse.predict(bgr, face)
            else:
                years, p_male = self.age_gender.predict(bgr, face, work.angle)
            value = max(round(years), 0)
            age = Age(value=value, upper_limit=value + AGE_MARGIN, lower_limit=value - AGE_MARGIN)
            male = p_male >= 0.5
            gender = Label("male" if male else "female", round(p_male if male else 1.0 - p_male, 4))
        if "emotions" in supported:
            fer7 = self.emotion.predict(bgr, face, work.angle)
            eyes = work.eyes_open
            closed = (1.0 - eyes[0]) * (1.0 - eyes[1]) if eyes is not None else 0.0
            emotions = fuse_emotions(fer7, closed)
        if "mask" in supported:
            hit = work.mask
            if hit is not None:
                share = hit.mask_share
                masked = share >= 0.5
                mask = Label(
                    "with_mask" if masked else "without_mask",
                    round(share if masked else 1.0 - share, 4),
                )
        return FaceAttributes(age=age, gender=gender, emotions=emotions, mask=mask)

    def warmup(self) -> None:
        """Compile and run every model this analyzer uses once, on a synthetic face, so the
        first request does not pay for graph compilation."""
        img = np.full((240, 320, 3), 128, np.uint8)
        face = Face(
            box=np.array([110, 60, 210, 190], np.float32),
            score=1.0,
            kps=np.array([[140, 110], [180, 110], [160, 135], [145, 160], [175, 160]], np.float32),
        )
        self.analyze(img, face, DetailFlags.all())
        log.debug("detail models warmed up")
