"""A small deterministic ONNX graph builder shared by the converters.

Names come from counters, initialisers are stored in creation order and the model header is
fixed (IR version, opset, producer), so a conversion is byte-for-byte reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: IR 8 / opset 13: old enough for every onnxruntime (>= 1.16) and OpenVINO the product
#: supports, new enough for everything the converters emit.
IR_VERSION = 8
OPSET = 13
PRODUCER = "edge-face"


class Graph:
    """Nodes and initialisers of one graph under construction."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, value: np.ndarray[Any, Any]) -> str:
        """An initialiser holding `value` (float arrays are stored as float32)."""
        arr = np.ascontiguousarray(value)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], output: str | None = None,
           **attrs: Any) -> str:  # fmt: skip
        """Append a node; return its (single) output name."""
        out = output or self._name(op_type)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def model(
        self,
        inputs: Sequence[tuple[str, Sequence[int | str]]],
        outputs: Sequence[tuple[str, Sequence[int | str]]],
        name: str,
        doc: str,
        metadata: dict[str, str],
    ) -> onnx.ModelProto:
        """The finished model (float32 inputs/outputs), checked by onnx's checker."""

        def info(n: str, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
            return helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape))

        graph = helper.make_graph(
            self.nodes, name, [info(n, s) for n, s in inputs], [info(n, s) for n, s in outputs],
            initializer=self.initializers,
        )  # fmt: skip
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
            producer_name=PRODUCER, producer_version="1", doc_string=doc,
        )  # fmt: skip
        for key in sorted(metadata):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, metadata[key]
        onnx.checker.check_model(model)
        return model


def serialize(model: onnx.ModelProto) -> bytes:
    """The model's bytes (protobuf serialisation of one message is deterministic)."""
    return bytes(model.SerializeToString())
