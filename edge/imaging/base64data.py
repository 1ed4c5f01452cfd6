"""The JSON `data` string of an image -> raw file bytes (api.md §2.1).

Kept apart from pixel decoding so the contract's first checks (missing, wrong type, not
base64) are settled before any image library sees the bytes. Errors name the part and the
problem only, never any of the data.
"""

from __future__ import annotations

import base64
import binascii
import re

from edge.imaging.errors import MissingValue, NotAnImage, WrongType

# `data:<anything>;base64,` as browsers and the cloud's sample clients send it. The declared
# media type is ignored: the format is judged from the bytes.
_DATA_URL = re.compile(rb"\s*data:[^,]*;base64,", re.IGNORECASE)
_WHITESPACE = b" \t\r\n\f\v"
PART = "data"  # where in the image object the base64 string sits


def decode_base64_field(data: object) -> bytes:
    """Validate the raw JSON value and return the bytes it encodes.

    Whitespace anywhere (line-wrapped MIME base64) and missing `=` padding are accepted;
    any other character outside the standard alphabet is `NotAnImage`.
    """
    if data is None:
        raise MissingValue(PART, "is required")
    if not isinstance(data, str):
        raise WrongType(PART, "must be a base64 string")
    try:
        text = data.encode("ascii")
    except UnicodeEncodeError:
        raise NotAnImage(PART, "is not valid base64") from None
    prefix = _DATA_URL.match(text)
    if prefix is not None:
        text = text[prefix.end() :]
    elif text.lstrip()[:5].lower() == b"data:":
        raise NotAnImage(PART, "is a data URL without ';base64,'")
    text = text.translate(None, _WHITESPACE)
    if not text:
        raise MissingValue(PART, "is empty")
    if not text.endswith(b"="):
        rem = len(text) % 4
        if rem == 1:
            raise NotAnImage(PART, "is not valid base64 (bad length)")
        if rem:
            text += b"=" * (4 - rem)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NotAnImage(PART, "is not valid base64") from None
