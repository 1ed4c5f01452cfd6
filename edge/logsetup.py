"""Process-wide logging: `text` for people at a console, `json` for log shippers.

The JSON form writes one object per line (`ts`, `level`, `logger`, `msg`, plus the request
fields of access lines), so journald/Loki/Elastic can index it without a parser per
message. Nothing here ever sees a request body: handlers do not log images or keys.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import TYPE_CHECKING, Any, Literal, TextIO

from edge.timefmt import iso_utc_ms

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: attribute of a LogRecord holding structured fields (set with `extra={FIELDS: {...}}`)
FIELDS = "edge_fields"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; structured fields go to the top level."""

    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
        out: dict[str, Any] = {
            "ts": iso_utc_ms(ts),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


if TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[TextIO]
else:  # subscriptable at run time only from Python 3.11
    _StreamHandler = logging.StreamHandler


class StderrHandler(_StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time (it may be replaced, e.g. by tests
    calling the CLI in-process), never to a stream closed since configuration."""

    #: marks the handler configure_logging installed, so a second call reuses it
    _edge_handler = True

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: int | str, fmt: LogFormat = "text") -> None:
    """(Re)configure the root logger: one stderr handler, the chosen format and level.

    Called twice by the CLI: once before the config is read (so config warnings are
    visible) and once after, with the configured level and format.
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_edge_handler", False)), None)
    if handler is None:
        handler = StderrHandler()
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.setLevel(level)
