"""The `data` string: missing/blank (110), wrong JSON type (111), not base64 (214), and the
accepted spellings (data-URL prefix, wrapped lines, missing padding)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from edge.api.wire import image_error
from edge.errors import EdgeError
from edge.imaging import decode_image
from edge.imaging.errors import ImageInputError
from tests.imaging.imaging_helpers import b64

FIELD = "images[0].data"


@pytest.fixture(scope="module")
def jpeg_raw(awkward: Path) -> bytes:
    return (awkward / "hopper_reference_upright.jpg").read_bytes()


def _error(data: object) -> EdgeError:
    """The contract error the API answers for `data` as the image of request field images[0]."""
    with pytest.raises(ImageInputError) as err:
        decode_image(data)
    answered = image_error(err.value, "images[0]")
    assert FIELD in answered.message
    return answered


@pytest.mark.parametrize(
    "spelling",
    [
        lambda raw: "data:image/jpeg;base64," + b64(raw),
        lambda raw: "DATA:image/JPEG;BASE64," + b64(raw),
        lambda raw: "data:image/png;base64," + b64(raw),  # declared type ignored
        lambda raw: "  data:image/jpeg;charset=utf-8;base64," + b64(raw),
        lambda raw: base64.encodebytes(raw).decode(),  # 76-column lines, \n
        lambda raw: base64.encodebytes(raw).decode().replace("\n", "\r\n"),
        lambda raw: "\n " + " \t".join(b64(raw)[i : i + 10] for i in range(0, 9999, 10)) + "\n",
        lambda raw: b64(raw).rstrip("="),
    ],
)
def test_accepted_spellings_decode_to_the_same_pixels(jpeg_raw: bytes, spelling) -> None:
    plain = decode_image(b64(jpeg_raw))
    other = decode_image(spelling(jpeg_raw))
    assert other.format == "jpeg"
    assert np.array_equal(plain.bgr, other.bgr)


def test_unpadded_lengths_2_and_3_are_accepted(jpeg_raw: bytes) -> None:
    for rem in (1, 2):  # raw length % 3 == 1 -> "==", == 2 -> "="
        raw = jpeg_raw + b"\0" * ((rem - len(jpeg_raw)) % 3)
        text = b64(raw)
        assert text.endswith("=" * (3 - rem))
        assert decode_image(text.rstrip("=")).width == 128


@pytest.mark.parametrize(
    "data", [None, "", "   ", "\n\t\r\n", "data:image/png;base64,", "data:image/png;base64,\n"]
)
def test_missing_or_blank_is_110(data: object) -> None:
    assert _error(data).code == 110


@pytest.mark.parametrize("data", [0, 12, 1.5, True, False, [], ["aGk="], {"data": "aGk="}, b"aGk="])
def test_non_string_is_111(data: object) -> None:
    assert _error(data).code == 111


@pytest.mark.parametrize(
    "data",
    [
        "not base64!",
        "aGVsbG8=d29ybGQ=",  # padding in the middle
        "abcde",  # length 5 cannot be base64
        "aGk=====",
        "aGVsbG8-d29ybGQ_",  # URL-safe alphabet is not the standard one
        "aGVsbG8\u00e9",
        "data:image/png,aGVsbG8=",  # data URL that is not base64
    ],
)
def test_not_base64_is_214(data: str) -> None:
    assert _error(data).code == 214


def test_valid_base64_of_no_image_is_214() -> None:
    assert _error(b64(b"hello, this is a text file\n")).code == 214


def test_messages_never_echo_the_payload(jpeg_raw: bytes) -> None:
    payloads = [
        b64(jpeg_raw[:4000]),  # truncated JPEG
        "secret-token-" * 20,
        b64(b"GIF89a" + b"x" * 300),
    ]
    for data in payloads:
        err = _error(data)
        assert data[:12] not in err.message and len(err.message) < 200
