"""Run a manifest's conversion recipe and check the result numerically.

The numeric check runs the converted model on a fixed probe input (a deterministic pattern,
no random generator whose stream could change) and compares every output with the reference
values recorded in `edge/data/convert_reference.json`, which were computed from the published
ONNX file (the mirror's copy) with onnxruntime. It catches a converter that produces a valid
but wrong network, which a sha256 alone can only report as "different".
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np

from edge.runtime.convert import ConversionError, dlib_dat, tfjs_graph

REFERENCE = "convert_reference.json"
CONVERTERS = ("dlib-dat", "tfjs-graph")


def run(converter: str, member: str, read: Callable[[str], bytes], source: str) -> bytes:
    """Convert `member` (and the files it names) read through `read(path)`; ONNX bytes."""
    if converter == "dlib-dat":
        return dlib_dat.convert(read(member), source)
    if converter == "tfjs-graph":
        folder = posixpath.dirname(member)
        return tfjs_graph.convert(read(member), lambda p: read(posixpath.join(folder, p)), source)
    raise ConversionError(f"unknown converter {converter!r}; known: {', '.join(CONVERTERS)}")


def probe(shape: list[int], low: float, high: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A deterministic input covering [low, high]: a smooth pattern, the same on every box."""
    idx = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    wave = 0.5 + 0.25 * np.sin(idx * 0.0137 + 0.3) + 0.25 * np.sin(idx * 0.00071)
    return (low + (high - low) * wave).astype(np.float32)


def reference_entry(model: bytes, input_name: str, shape: list[int], low: float, high: float,
                    atol: float, rtol: float, why: str) -> dict[str, Any]:  # fmt: skip
    """The reference record of one published model (how convert_reference.json is made)."""
    outputs = _run(model, input_name, probe(shape, low, high))
    return {
        "input": input_name, "shape": shape, "low": low, "high": high,
        "outputs": {k: [float(x) for x in v.reshape(-1)] for k, v in outputs.items()},
        "atol": atol, "rtol": rtol, "why": why,
    }  # fmt: skip


def _run(model: bytes, input_name: str, x: np.ndarray[Any, Any]) -> dict[str, np.ndarray[Any, Any]]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {input_name: x}), strict=True))


def load_references() -> dict[str, dict[str, Any]]:
    text = (resources.files("edge") / "data" / REFERENCE).read_text(encoding="utf-8")
    files: dict[str, dict[str, Any]] = json.loads(text)["files"]
    return files


def check(file: str, model: bytes) -> float:
    """Largest output error of `model` on the probe, as a fraction of its tolerance.

    Raises ConversionError when any output is missing, mis-shaped or outside the tolerance.
    """
    ref = load_references().get(file)
    if ref is None:
        raise ConversionError(f"{file}: no reference outputs to check a conversion against")
    try:
        got = _run(model, ref["input"], probe(ref["shape"], ref["low"], ref["high"]))
    except Exception as e:  # onnxruntime raises its own exception types
        raise ConversionError(f"{file}: the converted model does not run ({e})") from None
    worst = 0.0
    for name, values in ref["outputs"].items():
        want = np.asarray(values, dtype=np.float64)
        if name not in got or got[name].size != want.size:
            raise ConversionError(f"{file}: converted model lacks output {name!r} of {want.size}")
        diff = float(np.abs(got[name].reshape(-1).astype(np.float64) - want).max())
        tol = ref["atol"] + ref["rtol"] * float(np.abs(want).max())
        if diff > tol:
            raise ConversionError(
                f"{file}: converted output {name!r} differs from the published model by "
                f"{diff:.3g} (tolerance {tol:.3g}); the conversion is wrong, so nothing was "
                "installed: install the published file from a mirror folder (--from DIR)"
            )
        worst = max(worst, diff / tol)
    return worst


__all__ = ["CONVERTERS", "check", "load_references", "probe", "reference_entry", "run"]
