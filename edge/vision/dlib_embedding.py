"""dlib ResNet-29 face descriptor (public domain, CC0): 150x150 dlib chip -> 128-d vector.

The network was trained on dlib's own face chips, not on ArcFace crops, so it gets its own
alignment: a least-squares similarity transform of the five detector keypoints onto dlib's
mean-face template (padding 0.25, size 150), as stated in the model manifest. The ONNX
graph subtracts dlib's channel means and divides by 256 itself; the input is raw RGB 0..255.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge.runtime.backends import InferenceSession
from edge.vision.align import similarity_transform

__all__ = ["DLIB_CHIP", "DLIB_FILE", "DLIB_TEMPLATE", "DlibEmbedder", "dlib_chip"]

#: The manifest file this embedder is written for.
DLIB_FILE = "recognition_dlib_resnet_v1_128d.onnx"
DLIB_CHIP = 150
#: Eye centres, nose tip and mouth corners of dlib's mean face (get_face_chip_details,
#: padding 0.25, size 150), in the detector's keypoint order.
DLIB_TEMPLATE = np.array(
    [
        [47.549, 46.599],
        [100.476, 46.599],
        [74.013, 76.563],
        [50.415, 103.023],
        [97.610, 103.023],
    ],
    dtype=np.float32,
)


def dlib_chip(bgr: np.ndarray, kps: np.ndarray, size: int = DLIB_CHIP) -> np.ndarray:
    """The (size, size, 3) BGR chip with the five keypoints moved onto the dlib template."""
    m = similarity_transform(kps, DLIB_TEMPLATE * (size / DLIB_CHIP))
    return cv2.warpAffine(bgr, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)


class DlibEmbedder:
    """Runs the dlib network; `embed*` return L2-normalised vectors, `raw` dlib's own.

    dlib compares raw descriptors by Euclidean distance (same person below 0.6); the
    product compares unit vectors by cosine like every other recognizer, and the cosine of
    this network is not zero-centred (impostors near 0.84), which the calibration absorbs.
    """

    size = DLIB_CHIP

    def __init__(self, session: InferenceSession) -> None:
        self.session = session
        self._input = session.info.inputs[0].name
        out = session.info.outputs[0].shape
        self.dim = int(out[-1]) if out and isinstance(out[-1], int) else 128

    @staticmethod
    def preprocess(chip_bgr: np.ndarray) -> np.ndarray:
        if chip_bgr.shape[:2] != (DLIB_CHIP, DLIB_CHIP):
            chip_bgr = cv2.resize(chip_bgr, (DLIB_CHIP, DLIB_CHIP), interpolation=cv2.INTER_AREA)
        rgb = chip_bgr[:, :, ::-1].astype(np.float32)
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])

    def raw(self, chip_bgr: np.ndarray) -> np.ndarray:
        """dlib's descriptor of a 150x150 chip, unnormalised (norm about 1-1.5)."""
        out = self.session.run({self._input: self.preprocess(chip_bgr)})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def embed(self, chip_bgr: np.ndarray) -> np.ndarray:
        v = self.raw(chip_bgr)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v

    def align(self, bgr: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """The chip `embed` reads."""
        return dlib_chip(bgr, kps)

    def embed_face(self, bgr: np.ndarray, kps: np.ndarray) -> np.ndarray:
        return self.embed(dlib_chip(bgr, kps))

    def embed_many(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.embed(c) for c in chips])
