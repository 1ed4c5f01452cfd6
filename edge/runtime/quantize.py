"""INT8 variants of models: NNCF post-training quantization, the sidecar, and their selection.

A variant lives next to the pack as `<model_dir>/int8/<stem>.xml/.bin` (OpenVINO IR) with a
`<stem>.json` sidecar. The sidecar ties the variant to the exact FP file it came from (sha256)
and records whether it passed its accuracy gate; the registry only swaps a role to INT8 when
the switch is on AND the sidecar says accepted AND both hashes still match, so a re-fetched or
replaced model can never be silently served through a stale quantized copy.

This module knows nothing about faces: it quantizes from ready-made input feeds. Building the
feeds with the product's preprocessing and measuring the gates is `edge.evaluation.quantization`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.runtime.manifest import ModelFile

__all__ = [
    "QUANTIZABLE_ROLES",
    "GateCheck",
    "Int8Sidecar",
    "Variant",
    "file_sha256",
    "new_sidecar",
    "output_layers",
    "quantize_feeds",
    "read_sidecar",
    "save_ir",
    "select_int8",
    "variant_paths",
    "write_sidecar",
]

log = logging.getLogger(__name__)

#: Roles whose latency matters and whose FP file is an ONNX graph NNCF can quantize.
QUANTIZABLE_ROLES = ("detector_slow", "detector_fast", "embedding", "mask")
SIDECAR_SCHEMA = 1


class GateCheck(BaseModel):
    """One accuracy figure, FP vs INT8. `kind` says how `bound` applies:
    `max_drop`: fp - int8 <= bound; `min_value`: int8 >= bound (agreement rates)."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    fp: float
    int8: float
    bound: float
    kind: str = "max_drop"
    ok: bool

    @classmethod
    def drop(cls, metric: str, fp: float, int8: float, bound: float) -> GateCheck:
        ok = bool(np.isfinite(fp) and np.isfinite(int8) and fp - int8 <= bound + 1e-12)
        return cls(metric=metric, fp=fp, int8=int8, bound=bound, kind="max_drop", ok=ok)

    @classmethod
    def at_least(cls, metric: str, value: float, bound: float) -> GateCheck:
        ok = bool(np.isfinite(value) and value >= bound - 1e-12)
        return cls(metric=metric, fp=1.0, int8=value, bound=bound, kind="min_value", ok=ok)


class Int8Sidecar(BaseModel):
    """What the registry trusts about a variant, and what the gate measured."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SIDECAR_SCHEMA
    role: str
    source_file: str
    source_sha256: str
    int8_sha256: str = Field(description="sha256 of the IR .bin, so a swapped variant is caught")
    accepted: bool
    reason: str = ""
    calibration_images: int
    calibration_samples: int
    nncf_version: str
    openvino_version: str
    created: str
    checks: list[GateCheck] = Field(default_factory=list)
    latency_ms: dict[str, float] = Field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    xml: Path
    bin: Path
    sidecar: Path


def variant_paths(model_dir: Path, source_file: str) -> Variant:
    stem = Path(source_file).stem
    d = Path(model_dir) / "int8"
    return Variant(d / f"{stem}.xml", d / f"{stem}.bin", d / f"{stem}.json")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_sidecar(path: Path) -> Int8Sidecar | None:
    try:
        return Int8Sidecar.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


def select_int8(model_dir: Path, spec: ModelFile) -> tuple[Path | None, str]:
    """(IR path, "") when the INT8 variant of `spec` may be served, else (None, why not)."""
    v = variant_paths(model_dir, spec.file)
    if not v.xml.is_file() or not v.bin.is_file():
        return None, f"no INT8 variant at {v.xml.parent.name}/{v.xml.name}"
    meta = read_sidecar(v.sidecar)
    if meta is None:
        return None, f"sidecar {v.sidecar.name} missing or unreadable"
    if not meta.accepted:
        return None, f"INT8 variant was rejected by its accuracy gate ({meta.reason})"
    if meta.source_sha256 not in {sha for _, sha in spec.accepted()}:
        return None, "INT8 variant was made from another version of the model (sha256 differs)"
    src = Path(model_dir) / spec.file
    if not src.is_file() or file_sha256(src) != meta.source_sha256:
        return None, "installed FP model does not match the variant's source sha256"
    if file_sha256(v.bin) != meta.int8_sha256:
        return None, f"{v.bin.name} does not match the sha256 its sidecar records"
    return v.xml, ""


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """NNCF draws its progress bars on stdout; commands keep stdout for results."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


_COMPUTE = {"Convolution", "GroupConvolution", "MatMul"}
_PASS_THROUGH = {
    "Add",
    "Multiply",
    "Reshape",
    "Transpose",
    "Concat",
    "Sigmoid",
    "Softmax",
    "Squeeze",
    "Unsqueeze",
    "Convert",
    "Clamp",
    "Relu",
    "Flatten",
}


def output_layers(model: Any) -> list[str]:
    """Names of the layers that compute the model's outputs: the last Convolution/MatMul on
    every path back from an output (through reshapes, concats, bias adds, activations), plus
    the bias adds on the way."""
    names: set[str] = set()
    seen: set[str] = set()
    stack = [o.get_node().input_value(0).get_node() for o in model.outputs]
    while stack:
        n = stack.pop()
        if n.get_name() in seen:
            continue
        seen.add(n.get_name())
        kind = n.get_type_name()
        if kind in _COMPUTE:
            names.add(n.get_friendly_name())
        elif kind in _PASS_THROUGH:
            if kind in ("Add", "Multiply"):
                names.add(n.get_friendly_name())
            stack.extend(v.get_node() for v in n.input_values())
    return sorted(names)


def quantize_feeds(
    source: Path,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    keep_outputs_fp: bool = True,
    fast_bias_correction: bool = True,
) -> Any:
    """NNCF post-training quantization of `source` (ONNX read by OpenVINO) on `feeds`.

    Returns the quantized `openvino.Model`. Feeds are exactly what the product's wrapper
    gives the session, so activation ranges are those seen in service. The mixed preset
    (symmetric weights, asymmetric activations) suits the ReLU/PReLU-heavy networks here.
    The output layers stay FP by default: they regress box offsets, scores and the
    embedding itself, where 8-bit steps are visible (measured: YuNet with INT8 heads lost
    2/3 of its recall on small faces; with FP heads its boxes and counts matched FP exactly).
    """
    import nncf
    import openvino as ov

    if not feeds:
        raise ValueError("no calibration samples")
    model = ov.Core().read_model(str(source))
    nncf.set_log_level(logging.ERROR)
    data = nncf.Dataset(list(feeds), lambda f: dict(f))
    kw: dict[str, Any] = {}
    if keep_outputs_fp:
        kw["ignored_scope"] = nncf.IgnoredScope(names=output_layers(model), validate=False)
    with _stdout_to_stderr():
        return nncf.quantize(
            model,
            data,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(feeds),
            fast_bias_correction=fast_bias_correction,
            **kw,
        )


def save_ir(model: Any, model_dir: Path, source_file: str) -> Variant:
    """Save the quantized IR (INT8 weights stay INT8) after removing any old sidecar.

    Until `write_sidecar` runs, the variant has no sidecar and the registry ignores it, so a
    crash while gating never leaves a selectable, unchecked model.
    """
    import openvino as ov

    v = variant_paths(model_dir, source_file)
    v.xml.parent.mkdir(parents=True, exist_ok=True)
    v.sidecar.unlink(missing_ok=True)
    ov.save_model(model, str(v.xml), compress_to_fp16=False)
    return v


def write_sidecar(v: Variant, sidecar: Int8Sidecar) -> Int8Sidecar:
    """Record the gate's verdict; `int8_sha256` is taken from the saved .bin."""
    meta = sidecar.model_copy(update={"int8_sha256": file_sha256(v.bin)})
    tmp = v.sidecar.with_suffix(".json.part")
    tmp.write_text(meta.model_dump_json(indent=1) + "\n", encoding="utf-8")
    tmp.replace(v.sidecar)
    return meta


def new_sidecar(
    spec: ModelFile,
    role: str,
    *,
    accepted: bool,
    reason: str,
    calibration_images: int,
    calibration_samples: int,
    checks: list[GateCheck],
    latency_ms: dict[str, float] | None = None,
    source_sha256: str | None = None,
) -> Int8Sidecar:
    """The sidecar of a new variant; `source_sha256` is the installed FP file's hash (for a
    converted source it is the conversion's, not the published file's)."""
    import nncf
    import openvino as ov

    return Int8Sidecar(
        role=role,
        source_file=spec.file,
        source_sha256=source_sha256 or spec.sha256,
        int8_sha256="",
        accepted=accepted,
        reason=reason,
        calibration_images=calibration_images,
        calibration_samples=calibration_samples,
        nncf_version=str(nncf.__version__),
        openvino_version=str(ov.get_version()),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        checks=checks,
        latency_ms=latency_ms or {},
    )
