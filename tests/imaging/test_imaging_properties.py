"""Property tests: whatever arrives, intake answers with pixels or a contract error in
{110, 111, 214, 215, 216, 217}, never another exception, and never echoes the data."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.api.wire import image_error
from edge.errors import EdgeError
from edge.imaging import DecodedImage, decode_bytes, decode_image
from edge.imaging.errors import ImageInputError
from tests.imaging.imaging_helpers import encode, png_with_exif

CONTRACT_CODES = {110, 111, 214, 215, 216, 217}
FUZZ_MAX_PIXELS = 2_000_000  # keeps mutated headers from decoding huge canvases
SETTINGS = settings(max_examples=200, deadline=None)


@pytest.fixture(scope="module")
def seeds(awkward: Path, hopper_bgr: np.ndarray) -> list[bytes]:
    """Small real files of each accepted format (one with EXIF, one PNG with eXIf/alpha)."""
    rgba = cv2.cvtColor(hopper_bgr, cv2.COLOR_BGR2BGRA)
    return [
        (awkward / "hopper_reference_upright.jpg").read_bytes(),
        (awkward / "exif_orientation_7_hopper.jpg").read_bytes(),
        (awkward / "hopper_static.gif").read_bytes(),
        (awkward / "hopper_64px.gif").read_bytes(),
        png_with_exif(encode(rgba, ".png"), 6),
    ]


def _check(outcome: DecodedImage | EdgeError) -> None:
    if isinstance(outcome, EdgeError):
        assert outcome.code in CONTRACT_CODES, outcome
        return
    img = outcome.bgr
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    assert img.flags.c_contiguous and img.shape[0] * img.shape[1] <= FUZZ_MAX_PIXELS
    assert outcome.format in ("jpeg", "png", "gif")
    assert 1 <= outcome.exif_orientation <= 8 and outcome.rotated in (0, 90, 180, 270)


def _run_bytes(raw: bytes, auto_rotate: bool) -> DecodedImage | EdgeError:
    try:
        return decode_bytes(raw, auto_rotate=auto_rotate, max_pixels=FUZZ_MAX_PIXELS)
    except ImageInputError as err:
        return image_error(err, "image")


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    raw = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "delete", "insert", "header"]))
        n = len(raw)
        if n == 0:
            break
        at = draw(st.integers(0, n - 1))
        if op == "flip":
            raw[at] ^= draw(st.integers(1, 255))
        elif op == "header":  # concentrate damage where the parsers look
            raw[min(at, 63) % n] = draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[at:]
        elif op == "delete":
            del raw[at : at + draw(st.integers(1, 64))]
        else:
            raw[at:at] = draw(st.binary(min_size=1, max_size=32))
    return bytes(raw)


@SETTINGS
@given(raw=st.binary(max_size=2048), auto_rotate=st.booleans())
def test_random_bytes(raw: bytes, auto_rotate: bool) -> None:
    _check(_run_bytes(raw, auto_rotate))


@SETTINGS
@given(data=st.data(), auto_rotate=st.booleans())
def test_mutated_real_files(seeds: list[bytes], data: st.DataObject, auto_rotate: bool) -> None:
    _check(_run_bytes(data.draw(mutated(seeds)), auto_rotate))


@SETTINGS
@given(text=st.text(max_size=300), prefix=st.sampled_from(["", "data:image/png;base64,"]))
def test_random_strings(text: str, prefix: str) -> None:
    data = prefix + text
    try:
        outcome: DecodedImage | EdgeError = decode_image(data, max_pixels=FUZZ_MAX_PIXELS)
    except ImageInputError as e:
        outcome = err = image_error(e, "image")
        assert "image.data" in err.message
        if len(text) >= 12:
            assert text not in err.message
    _check(outcome)


@SETTINGS
@given(data=st.data(), wrap=st.sampled_from([0, 60, 76]))
def test_base64_of_mutated_files(seeds: list[bytes], data: st.DataObject, wrap: int) -> None:
    text = base64.b64encode(data.draw(mutated(seeds))).decode()
    if wrap:
        text = "\n".join(text[i : i + wrap] for i in range(0, len(text), wrap))
    try:
        outcome: DecodedImage | EdgeError = decode_image(text, max_pixels=FUZZ_MAX_PIXELS)
    except ImageInputError as err:
        outcome = image_error(err, "image")
    _check(outcome)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@SETTINGS
@given(value=json_values)
def test_non_string_json_values(value: object) -> None:
    with pytest.raises(ImageInputError) as err:
        decode_image(value)
    assert image_error(err.value, "image").code == (110 if value is None else 111)
