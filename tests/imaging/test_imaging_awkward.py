"""Every awkward test image through intake, with the outcome its SOURCES.json label implies."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.api.wire import image_error
from edge.imaging import decode_bytes, decode_image, rotate_cw
from edge.imaging.errors import ImageInputError, TooManyPixels
from tests.imaging.imaging_helpers import b64, correlation

# file -> contract error code, or (format, width, height) of the decoded (first) frame.
EXPECTED: dict[str, int | tuple[str, int, int]] = {
    "broken_corrupted.png": 214,
    "broken_empty.png": 214,  # 5 bytes of text: no image format at all
    "broken_truncated.jpg": 214,
    "cai_xukun_pixels_rotated_r180.jpg": ("jpeg", 330, 409),
    "cai_xukun_pixels_rotated_r270.jpg": ("jpeg", 409, 330),
    "cai_xukun_pixels_rotated_r90.jpg": ("jpeg", 409, 330),
    "cartoon_face_not_real.jpg": ("jpeg", 325, 325),
    "cg_rendered_faces.jpg": ("jpeg", 1024, 1024),
    "elon_musk_smoke_animated.gif": ("gif", 480, 272),
    "exif_orientation_2_hopper.jpg": ("jpeg", 128, 128),
    "exif_orientation_3_hopper.jpg": ("jpeg", 128, 128),
    "exif_orientation_4_hopper.jpg": ("jpeg", 128, 128),
    "exif_orientation_5_hopper.jpg": ("jpeg", 128, 128),
    "exif_orientation_6_hopper.jpg": ("jpeg", 128, 128),
    "exif_orientation_7_hopper.jpg": ("jpeg", 128, 128),
    "exif_orientation_8_hopper.jpg": ("jpeg", 128, 128),
    "hopper.webp": 215,
    "hopper_64px.gif": ("gif", 64, 64),
    "hopper_gray.jpg": 216,
    "hopper_reference_upright.jpg": ("jpeg", 128, 128),
    "hopper_static.gif": ("gif", 128, 128),
    "masked_face_1.jpg": ("jpeg", 1024, 853),
    "masked_face_2.jpeg": ("jpeg", 996, 448),
    "masked_face_3.jpg": 215,  # WebP bytes behind a .jpg name: judged by bytes
    "no_face_dogs.jpg": ("jpeg", 900, 916),
    "no_face_landscape_view.jpg": ("jpeg", 1080, 641),
    "obama_1080p.jpg": ("jpeg", 1920, 1080),
    "obama_240p.jpg": ("jpeg", 427, 240),
    "obama_partial_face.jpg": ("jpeg", 491, 1137),
    "obama_partial_face2.jpg": ("jpeg", 551, 1137),
    "obama_rgba_32bit.png": ("png", 626, 1200),
    "orl_s01_1.pgm": 215,
    "scarlett_johansson_4352x2903.jpg": ("jpeg", 4352, 2903),
    "street_tracking_animated.gif": ("gif", 600, 338),
    "yale_subject01_happy_GIF_without_extension": 216,  # gray picture in a palette GIF
}

# EXIF orientation -> (clockwise degrees reported, mirrored) with autoRotate.
EXIF_STEPS = {2: (0, True), 3: (180, False), 4: (180, True), 5: (270, True)}
EXIF_STEPS |= {6: (90, False), 7: (90, True), 8: (270, False)}


def test_table_covers_every_awkward_file(awkward: Path) -> None:
    assert {p.name for p in awkward.iterdir() if p.is_file()} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("auto_rotate", [False, True])
def test_awkward_file_outcome(awkward: Path, name: str, auto_rotate: bool) -> None:
    raw = (awkward / name).read_bytes()
    expected = EXPECTED[name]
    if isinstance(expected, int):
        with pytest.raises(ImageInputError) as err:
            decode_image(b64(raw), auto_rotate=auto_rotate)
        answered = image_error(err.value, "imageOne")
        assert answered.code == expected
        assert "imageOne.data" in answered.message
        return
    fmt, width, height = expected
    img = decode_image(b64(raw), auto_rotate=auto_rotate)
    assert (img.format, img.width, img.height) == (fmt, width, height)
    assert img.bgr.shape == (height, width, 3)
    assert img.bgr.dtype == np.uint8 and img.bgr.flags.c_contiguous


def test_rgba_png_drops_alpha_keeps_colour(awkward: Path) -> None:
    path = awkward / "obama_rgba_32bit.png"
    rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert rgba.shape[2] == 4
    img = decode_bytes(path.read_bytes())
    assert np.array_equal(img.bgr, rgba[:, :, :3])


@pytest.mark.parametrize("name", ["elon_musk_smoke_animated.gif", "street_tracking_animated.gif"])
def test_animated_gif_gives_first_frame(awkward: Path, name: str) -> None:
    raw = (awkward / name).read_bytes()
    ok, frames = cv2.imdecodemulti(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    assert ok and len(frames) > 1
    img = decode_bytes(raw)
    assert np.array_equal(img.bgr, frames[0])
    assert not np.array_equal(img.bgr, frames[1])


def test_large_image_over_cap_is_217_and_at_cap_decodes(awkward: Path) -> None:
    raw = (awkward / "scarlett_johansson_4352x2903.jpg").read_bytes()
    with pytest.raises(TooManyPixels) as err:
        decode_bytes(raw, max_pixels=4352 * 2903 - 1)
    answered = image_error(err.value, "image")
    assert answered.code == 217 and "image.data" in answered.message
    with pytest.raises(TooManyPixels) as err:
        decode_bytes(raw, max_pixels=1_000_000)
    assert image_error(err.value, "image").code == 217
    assert decode_bytes(raw, max_pixels=4352 * 2903).width == 4352


@pytest.mark.parametrize("orientation", sorted(EXIF_STEPS))
def test_exif_applied_only_with_auto_rotate(
    awkward: Path, hopper_bgr: np.ndarray, orientation: int
) -> None:
    raw = (awkward / f"exif_orientation_{orientation}_hopper.jpg").read_bytes()
    buf = np.frombuffer(raw, np.uint8)
    raw_grid = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    opencv_upright = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # OpenCV's own EXIF handling

    kept = decode_bytes(raw)
    assert kept.exif_orientation == orientation
    assert (kept.rotated, kept.mirrored) == (0, False)
    assert np.array_equal(kept.bgr, raw_grid)
    assert correlation(hopper_bgr, kept.bgr) < 0.6

    upright = decode_bytes(raw, auto_rotate=True)
    assert upright.exif_orientation == orientation
    assert (upright.rotated, upright.mirrored) == EXIF_STEPS[orientation]
    assert correlation(hopper_bgr, upright.bgr) > 0.98
    assert np.array_equal(upright.bgr, opencv_upright)
    mirrored = cv2.flip(raw_grid, 1) if upright.mirrored else raw_grid
    assert np.array_equal(rotate_cw(mirrored, upright.rotated), upright.bgr)


@pytest.mark.parametrize("turned", [90, 180])
def test_rotate_cw_on_pixel_rotated_photos(awkward: Path, turned: int) -> None:
    """rN holds the upright photo turned N degrees clockwise, without any EXIF tag."""

    def load(deg: int) -> np.ndarray:
        img = decode_bytes(
            (awkward / f"cai_xukun_pixels_rotated_r{deg}.jpg").read_bytes(), auto_rotate=True
        )
        assert (img.exif_orientation, img.rotated) == (1, 0)
        return img.bgr

    src, dst = load(turned), load(turned + 90)
    assert correlation(dst, rotate_cw(src, 90)) > 0.99
    assert correlation(dst, rotate_cw(src, 270)) < 0.6
