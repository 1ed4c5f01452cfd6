"""The API owns the wire: typed vision values -> contract JSON, vision errors -> codes."""

from __future__ import annotations

import numpy as np
import pytest

from edge.api.wire import details_json, face_error, request_error
from edge.imaging.errors import (
    ImageInputError,
    InvalidValue,
    MissingValue,
    NotAnImage,
    NotColour,
    TooManyPixels,
    UnsupportedFormat,
    WrongType,
)
from edge.vision.errors import FaceTooSmall, NoFaceFound
from edge.vision.geometry import PixelBox
from edge.vision.types import (
    Age,
    Completeness,
    FaceAttributes,
    FaceDetails,
    FaceQuality,
    HeadAngle,
    Label,
)


@pytest.mark.parametrize("field", ["image", "imageTwo", "images[0]"])
def test_no_face_is_223_naming_the_requests_field(field: str) -> None:
    err = face_error(NoFaceFound(), field)
    assert (err.code, err.name, err.message) == (223, "image_entity_not_found",
                                                 f"{field}: no face found")  # fmt: skip
    inside = face_error(NoFaceFound(in_area=True), field)
    assert inside.message == f"{field}: no face found inside {field}.area"


@pytest.mark.parametrize("field", ["image", "imageOne"])
def test_too_small_is_224_with_the_measured_size(field: str) -> None:
    px = FaceTooSmall(width=20, height=25, min_px=32, min_ratio=0.1, image_size=(640, 480),
                      by_ratio=False)  # fmt: skip
    err = face_error(px, field)
    assert err.code == 224 and err.http_status == 400
    assert err.message == f"{field}: the face found is 20x25 px, under 32"
    ratio = FaceTooSmall(width=60, height=70, min_px=32, min_ratio=0.1, image_size=(1400, 1400),
                         by_ratio=True)  # fmt: skip
    assert face_error(ratio, field).message == (
        f"{field}: the face found (60x70 px) is under 10% of the image width or height (1400x1400)"
    )


def test_details_render_with_the_contracts_names() -> None:
    pts = np.array([[1.4, 2.6]] * 106, np.float32)
    d = FaceDetails(
        position=PixelBox(left=1, top=2, width=30, height=40),
        angle=HeadAngle(pitch=1.5, yaw=-2.0, roll=0.25, center_x=16, center_y=22),
        landmarks=pts,
        quality=FaceQuality(0.1, 0.2, 0.3, 0.4, 0.5, 0.6,
                            Completeness(0.9, 1.0, 1.0, 0.5, 0.75, 1.0, 0.0, 1.0)),
        attributes=FaceAttributes(age=Age(30, 35, 25), gender=Label("male", 0.9),
                                  emotions=(Label("calm", 0.7), Label("happy", 0.3)),
                                  mask=None),
    )  # fmt: skip
    out = details_json(d)
    assert list(out) == ["position", "angle", "landmarks", "quality", "attributes"]
    assert out["position"] == {"top": 2, "left": 1, "width": 30, "height": 40}
    assert out["angle"] == {"pitch": 1.5, "yaw": -2.0, "roll": 0.25, "centerX": 16, "centerY": 22}
    assert out["landmarks"] == [{"x": 1, "y": 3}] * 106
    assert out["quality"] == {
        "brightness": 0.1, "sharpness": 0.2, "mouthClosed": 0.3, "centered": 0.4, "size": 0.5,
        "integrity": 0.6,
        "completeness": {"total": 0.9, "leftEyeBrow": 1.0, "rightEyeBrow": 1.0, "leftEye": 0.5,
                         "rightEye": 0.75, "nose": 1.0, "mouth": 0.0, "faceContour": 1.0},
    }  # fmt: skip
    # An attribute the pack cannot estimate (or a mask with no match) is omitted, not null.
    assert out["attributes"] == {
        "age": {"value": 30, "upperLimit": 35, "lowerLimit": 25},
        "gender": {"value": "male", "certainty": 0.9},
        "emotions": [{"value": "calm", "certainty": 0.7}, {"value": "happy", "certainty": 0.3}],
    }
    assert details_json(FaceDetails()) == {}
    assert details_json(FaceDetails(attributes=FaceAttributes())) == {"attributes": {}}


@pytest.mark.parametrize(
    ("error", "code"),
    [(MissingValue, 110), (WrongType, 111), (InvalidValue, 112), (NotAnImage, 214),
     (UnsupportedFormat, 215), (NotColour, 216), (TooManyPixels, 217)],
)  # fmt: skip
def test_each_image_problem_has_its_contract_code(error: type[ImageInputError], code: int) -> None:
    err = request_error(error("area.top", "is wrong"), "imageTwo")
    assert (err.code, err.message) == (code, "imageTwo.area.top is wrong")
    assert err.body() == {"code": code, "name": err.name, "message": err.message}


def test_an_unmapped_error_type_is_a_bug_not_a_client_error() -> None:
    class Unknown(ImageInputError):
        pass

    with pytest.raises(TypeError):
        request_error(Unknown("data", "is odd"), "image")
