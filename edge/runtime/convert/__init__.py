"""The product's own converters from public source formats to ONNX (numpy + onnx only).

Each module reads one source format and writes a deterministic ONNX file: the same source
bytes always give the same output bytes, so an installed conversion can be checked by sha256
like any downloaded file (`FileSource.converted_sha256`).
"""

from __future__ import annotations


class ConversionError(ValueError):
    """The source is not in the format (or layout) the converter understands."""


__all__ = ["ConversionError"]
