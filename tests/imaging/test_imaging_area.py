"""`image.area`: types (110/111), values (112), overlap and clipping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.api.wire import image_error
from edge.errors import EdgeError
from edge.imaging import Area, parse_area
from edge.imaging.errors import ImageInputError

W, H = 100, 80


def _error(obj: object, field: str = "image") -> EdgeError:
    """The contract error the API answers for `obj` as the `area` of request field `field`."""
    with pytest.raises(ImageInputError) as err:
        parse_area(obj, W, H)
    return image_error(err.value, field)


def _area(top: object = 0, left: object = 0, width: object = 10, height: object = 10) -> dict:
    return {"top": top, "left": left, "width": width, "height": height}


def test_absent_is_none() -> None:
    assert parse_area(None, W, H) is None


@pytest.mark.parametrize("obj", [[], [1, 2, 3, 4], "0,0,10,10", 5, 1.5, True])
def test_not_an_object_is_111(obj: object) -> None:
    err = _error(obj, field="imageTwo")
    assert err.code == 111 and "imageTwo.area" in err.message


@pytest.mark.parametrize("key", ["top", "left", "width", "height"])
@pytest.mark.parametrize("bad", [1.0, 2.5, "5", True, False, [1], {"v": 1}])
def test_non_integer_is_111(key: str, bad: object) -> None:
    err = _error({**_area(), key: bad})
    assert err.code == 111 and f"image.area.{key}" in err.message


@pytest.mark.parametrize("key", ["top", "left", "width", "height"])
def test_missing_or_null_key_is_110(key: str) -> None:
    without = {k: v for k, v in _area().items() if k != key}
    for obj in (without, {**_area(), key: None}):
        err = _error(obj)
        assert err.code == 110 and f"image.area.{key}" in err.message


@pytest.mark.parametrize("key", ["width", "height"])
@pytest.mark.parametrize("value", [0, -1, -500])
def test_non_positive_size_is_112(key: str, value: int) -> None:
    err = _error({**_area(), key: value})
    assert err.code == 112 and err.message == f"image.area.{key} must be > 0"


@pytest.mark.parametrize(
    "obj",
    [
        _area(left=W),
        _area(top=H),
        _area(left=-10, width=10),
        _area(top=-10, height=10),
        _area(left=10**12, top=10**12),
    ],
)
def test_no_overlap_is_112(obj: dict) -> None:
    err = _error(obj)
    assert err.code == 112 and "image.area" in err.message


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_area(top=5, left=7, width=20, height=30), Area(left=7, top=5, width=20, height=30)),
        (_area(top=-10, left=-10, width=50, height=50), Area(left=0, top=0, width=40, height=40)),
        (_area(top=70, left=90, width=50, height=50), Area(left=90, top=70, width=10, height=10)),
        (_area(top=-1, left=-1, width=10**9, height=10**9), Area(left=0, top=0, width=W, height=H)),
        (
            _area(top=H - 1, left=W - 1, width=1, height=1),
            Area(left=W - 1, top=H - 1, width=1, height=1),
        ),
        (
            {**_area(top=1, left=2, width=3, height=4), "class": "x"},
            Area(left=2, top=1, width=3, height=4),
        ),
    ],
)
def test_clipped_to_the_image(obj: dict, expected: Area) -> None:
    assert parse_area(obj, W, H) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
coords = st.integers(min_value=-300, max_value=300) | json_values
areas = st.fixed_dictionaries(
    {}, optional={"top": coords, "left": coords, "width": coords, "height": coords}
)


@settings(max_examples=200, deadline=None)
@given(obj=json_values | areas, w=st.integers(1, 200), h=st.integers(1, 200))
def test_any_json_value_gives_area_none_or_a_field_error(obj: object, w: int, h: int) -> None:
    try:
        area = parse_area(obj, w, h)
    except ImageInputError as e:
        err = image_error(e, "image")
        assert err.code in (110, 111, 112) and "image.area" in err.message
        return
    if area is None:
        assert obj is None
        return
    assert isinstance(obj, dict)
    assert 0 <= area.left < w and 0 <= area.top < h
    assert 1 <= area.width <= w - area.left and 1 <= area.height <= h - area.top
    # the result is exactly the intersection of the request with the image
    assert area.left == max(obj["left"], 0) and area.top == max(obj["top"], 0)
    assert area.left + area.width == min(obj["left"] + obj["width"], w)
    assert area.top + area.height == min(obj["top"] + obj["height"], h)
