"""The contract's error: code, name, HTTP status and a message that names the field.

Raised where a client is answered (the API, the MQTT command router, camera commands).
Imaging and vision raise their own domain errors instead (`edge.imaging.errors`,
`edge.vision.errors`) and `edge.api.wire.request_error` maps them here, once, with the
request's field name. It stays at the bottom of the dependency graph so that every
answering layer shares one catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

#: code -> (HTTP status, snake_case name), from api.md §1.
ERROR_CATALOGUE: dict[int, tuple[int, str]] = {
    110: (400, "body_parameter_missing"),
    111: (400, "body_parameter_invalid_type"),
    112: (400, "body_parameter_invalid_value"),
    113: (400, "body_parameter_not_found"),
    116: (400, "body_parameter_duplicated"),
    214: (400, "image_data_invalid"),
    215: (400, "image_data_not_supported"),
    216: (400, "image_data_not_colored"),
    217: (400, "image_data_too_large"),
    219: (400, "image_data_too_few"),
    223: (400, "image_entity_not_found"),
    224: (400, "image_entity_too_small"),
    401: (401, "unauthorized"),
    404: (404, "entity_not_found"),
    405: (405, "method_not_allowed"),
    408: (408, "request_timeout"),
    413: (413, "payload_too_large"),
    414: (414, "uri_too_long"),
    415: (415, "unsupported_media_type"),
    417: (417, "expectation_failed"),
    429: (429, "too_many_requests"),
    431: (431, "headers_too_large"),
    500: (500, "internal_error"),
    503: (503, "service_unavailable"),
    505: (505, "http_version_not_supported"),
}


class ErrorDict(TypedDict):
    """The contract's error body (api.md §1), as every answering layer sends it."""

    code: int
    name: str
    message: str


@dataclass
class EdgeError(Exception):
    """A failure with a contract error code; `message` names the field and the problem."""

    code: int
    message: str
    name: str | None = None

    def __post_init__(self) -> None:
        if self.code not in ERROR_CATALOGUE:
            raise ValueError(f"unknown error code {self.code}")
        if self.name is None:
            self.name = ERROR_CATALOGUE[self.code][1]
        super().__init__(self.message)

    @property
    def http_status(self) -> int:
        return ERROR_CATALOGUE[self.code][0]

    def body(self) -> ErrorDict:
        name = self.name if self.name is not None else ERROR_CATALOGUE[self.code][1]
        return {"code": self.code, "name": name, "message": self.message}
