"""TensorFlow.js graph models (model.json + weight shards) to ONNX.

A TFJS graph model is a TensorFlow GraphDef in JSON (`modelTopology.node`: name, op, inputs,
attributes) whose Const values live in binary shards described by `weightsManifest` (each
weight: name, shape, dtype, optional quantisation: float16, or uint8/uint16 with scale and
min). This converter covers the ops of the MobileNet-style graphs the product installs
(HSE FaceRes, MediaPipe face mesh): convolutions (plain, depthwise, fused with bias / ReLU /
PReLU), element-wise arithmetic, ReLU/clip, PReLU, max pooling, padding, mean, fused matmul,
sigmoid, softmax, reshape and identity. Any other op is refused by name.

The graph keeps the model's NHWC input and output layouts; inside, 4-D activations are NCHW
(one Transpose after the input and before each Reshape/output of a 4-D tensor), so every
convolution maps to a standard ONNX Conv that onnxruntime and OpenVINO both run.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from edge.runtime.convert import ConversionError
from edge.runtime.convert.onnx_graph import Graph, serialize

Array = np.ndarray[Any, Any]
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]
_AXIS_NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}

_DTYPES: dict[str, tuple[str, int]] = {
    "float32": ("<f4", 4), "int32": ("<i4", 4), "bool": ("|b1", 1),
    "float16": ("<f2", 2), "uint8": ("|u1", 1), "uint16": ("<u2", 2),
}  # fmt: skip


def decode_weights(
    manifest: list[dict[str, Any]], read: Callable[[str], bytes]
) -> dict[str, Array]:
    """Every weight of a weightsManifest, de-quantised to its original dtype.

    `read(path)` returns the bytes of one shard (path as written in the manifest).
    """
    out: dict[str, Array] = {}
    for group in manifest:
        blob = b"".join(read(p) for p in group["paths"])
        pos = 0
        for w in group["weights"]:
            name, shape, dtype = w["name"], [int(d) for d in w["shape"]], w["dtype"]
            quant = w.get("quantization")
            stored = quant["dtype"] if quant else dtype
            if stored not in _DTYPES or dtype not in ("float32", "int32", "bool"):
                raise ConversionError(f"weight {name}: unsupported dtype {stored}/{dtype}")
            code, size = _DTYPES[stored]
            count = math.prod(shape)
            if pos + count * size > len(blob):
                raise ConversionError(
                    f"weight {name}: the weight files end at byte {len(blob)}, the manifest "
                    f"needs {pos + count * size}; the download is truncated"
                )
            raw = np.frombuffer(blob, dtype=code, count=count, offset=pos).reshape(shape)
            pos += count * size
            if quant and stored in ("uint8", "uint16"):
                value: Array = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(
                    quant["min"]
                )
            else:
                value = raw.astype(np.float32 if dtype == "float32" else dtype)
            out[name] = value
        if pos != len(blob):
            raise ConversionError(f"weight files {group['paths']}: {len(blob) - pos} bytes unused")
    return out


@dataclass
class _Tensor:
    name: str  # ONNX value name
    nchw: bool  # a 4-D activation kept in NCHW inside the graph


def _attr_list(node: dict[str, Any], key: str) -> list[int]:
    return [int(v) for v in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]


def _attr_str(node: dict[str, Any], key: str, default: str = "") -> str:
    raw = node.get("attr", {}).get(key, {}).get("s")
    return base64.b64decode(raw).decode() if raw else default


def _attr_strs(node: dict[str, Any], key: str) -> list[str]:
    raw = node.get("attr", {}).get(key, {}).get("list", {}).get("s", [])
    return [base64.b64decode(s).decode() for s in raw]


def _attr_bool(node: dict[str, Any], key: str) -> bool:
    return bool(node.get("attr", {}).get(key, {}).get("b", False))


def _src(ref: str) -> str:
    """The producing node of an input reference ('name', 'name:0')."""
    name, _, port = ref.partition(":")
    if port not in ("", "0"):
        raise ConversionError(f"input {ref}: multi-output nodes are not supported")
    return name


class _Converter:
    def __init__(self, model: dict[str, Any], weights: dict[str, Array]) -> None:
        self.g = Graph()
        self.nodes = {n["name"]: n for n in model["modelTopology"]["node"]}
        self.weights = weights
        self.values: dict[str, _Tensor] = {}
        self.inputs: list[tuple[str, list[int | str]]] = []

    def const(self, name: str) -> Array | None:
        node = self.nodes.get(name)
        if node is None or node["op"] != "Const":
            return None
        if name not in self.weights:
            raise ConversionError(f"Const {name} has no value in the weights manifest")
        return self.weights[name]

    def tensor(self, name: str) -> _Tensor:
        if name not in self.values:
            value = self.const(name)
            if value is None:
                raise ConversionError(f"node {name} used before it is computed")
            self.values[name] = _Tensor(self.g.const("c", value), False)
        return self.values[name]

    def per_channel(self, value: Array) -> Array:
        """A constant broadcast against NHWC activations, reshaped for NCHW ones."""
        if value.ndim == 0 or value.size == 1:
            return value.reshape(())
        channels = value.shape[-1]
        if value.size != channels:
            raise ConversionError(f"constant of shape {value.shape} is not per-channel")
        return value.reshape(channels, 1, 1)

    def run(self, order: Sequence[str]) -> None:
        for name in order:
            node = self.nodes[name]
            op = node["op"]
            if op == "Const":
                continue
            handler = getattr(self, f"op_{op.lstrip('_')}", None)
            if handler is None:
                raise ConversionError(f"TFJS op {op} ({name}) is not supported by this converter")
            self.values[name] = handler(node, [_src(i) for i in node.get("input", [])
                                               if not i.startswith("^")])  # fmt: skip

    # ---- ops ---------------------------------------------------------------------------
    def op_Placeholder(self, node: dict[str, Any], _inputs: list[str]) -> _Tensor:
        dims = node["attr"]["shape"]["shape"]["dim"]
        shape: list[int | str] = [max(int(d["size"]), 1) for d in dims]
        self.inputs.append((node["name"], shape))
        if len(shape) == 4:
            return _Tensor(self.g.op("Transpose", [node["name"]], perm=NHWC_TO_NCHW), True)
        return _Tensor(node["name"], False)

    def _conv(self, node: dict[str, Any], x: str, kernel: Array, depthwise: bool) -> str:
        if _attr_str(node, "data_format", "NHWC") != "NHWC":
            raise ConversionError(f"{node['name']}: only NHWC convolutions are supported")
        kh, kw, cin, cout = kernel.shape
        if depthwise:
            w = kernel.transpose(2, 3, 0, 1).reshape(cin * cout, 1, kh, kw)
            group = cin
        else:
            w = kernel.transpose(3, 2, 0, 1)
            group = 1
        strides = _attr_list(node, "strides")[1:3] or [1, 1]
        dil = _attr_list(node, "dilations")[1:3] or [1, 1]
        pad = _attr_str(node, "padding", "VALID")
        attrs: dict[str, Any] = {"kernel_shape": [kh, kw], "strides": strides,
                                 "dilations": dil, "group": group}  # fmt: skip
        if pad == "SAME":
            attrs["auto_pad"] = "SAME_UPPER"
        elif pad == "VALID":
            attrs["pads"] = [0, 0, 0, 0]
        elif pad == "EXPLICIT":
            e = _attr_list(node, "explicit_paddings")
            attrs["pads"] = [e[2], e[4], e[3], e[5]]
        else:
            raise ConversionError(f"{node['name']}: padding {pad!r} is not supported")
        return self.g.op("Conv", [x, self.g.const("w", w)], **attrs)

    def _conv_node(self, node: dict[str, Any], inputs: list[str], depthwise: bool) -> _Tensor:
        x = self.tensor(inputs[0])
        kernel = self.const(inputs[1])
        if not x.nchw or kernel is None or kernel.ndim != 4:
            raise ConversionError(f"{node['name']}: needs a 4-D activation and constant kernel")
        y = self._conv(node, x.name, kernel, depthwise)
        args = inputs[2:]
        for fused in _attr_strs(node, "fused_ops"):
            if fused == "BiasAdd" and args:
                y = self.g.op("Add", [y, self.g.const("b", self.per_channel(self._arg(args, 0)))])
            elif fused == "Relu":
                y = self.g.op("Relu", [y])
            elif fused == "Relu6":
                y = self.g.op("Clip", [y, self.g.const("lo", np.float32(0)),
                                       self.g.const("hi", np.float32(6))])  # fmt: skip
            elif fused == "Prelu" and len(args) > 1:
                y = self.g.op("PRelu", [y, self.g.const("a", self.per_channel(self._arg(args, 1)))])
            else:
                raise ConversionError(f"{node['name']}: fused op {fused} is not supported")
        return _Tensor(y, True)

    def _arg(self, args: list[str], i: int) -> Array:
        value = self.const(args[i])
        if value is None:
            raise ConversionError(f"fused argument {args[i]} is not a constant")
        return value

    def op_Conv2D(self, node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._conv_node(node, inputs, depthwise=False)

    def op_FusedConv2D(self, node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._conv_node(node, inputs, depthwise=False)

    def op_DepthwiseConv2dNative(self, node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._conv_node(node, inputs, depthwise=True)

    def op_FusedDepthwiseConv2dNative(self, node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._conv_node(node, inputs, depthwise=True)

    def _binary(self, onnx_op: str, inputs: list[str]) -> _Tensor:
        if len(inputs) != 2:
            raise ConversionError(f"{onnx_op} needs two inputs")
        tensors = []
        nchw = any(n in self.values and self.values[n].nchw for n in inputs)
        for n in inputs:
            value = self.const(n)
            if value is not None and nchw:
                tensors.append(self.g.const("k", self.per_channel(value)))
            else:
                tensors.append(self.tensor(n).name)
        return _Tensor(self.g.op(onnx_op, tensors), nchw)

    def op_Add(self, _node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._binary("Add", inputs)

    def op_AddV2(self, _node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._binary("Add", inputs)

    def op_Sub(self, _node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._binary("Sub", inputs)

    def op_Mul(self, _node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._binary("Mul", inputs)

    def op_Minimum(self, _node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._binary("Min", inputs)

    def op_Maximum(self, _node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._binary("Max", inputs)

    def _unary(self, onnx_op: str, inputs: list[str], **attrs: Any) -> _Tensor:
        x = self.tensor(inputs[0])
        return _Tensor(self.g.op(onnx_op, [x.name], **attrs), x.nchw)

    def op_Relu(self, _node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._unary("Relu", inputs)

    def op_Sigmoid(self, _node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self._unary("Sigmoid", inputs)

    def op_Identity(self, _node: dict[str, Any], inputs: list[str]) -> _Tensor:
        return self.tensor(inputs[0])

    def op_Softmax(self, _node: dict[str, Any], inputs: list[str]) -> _Tensor:
        x = self.tensor(inputs[0])
        if x.nchw:
            raise ConversionError("Softmax over a 4-D activation is not supported")
        return _Tensor(self.g.op("Softmax", [x.name], axis=-1), False)

    def op_Prelu(self, node: dict[str, Any], inputs: list[str]) -> _Tensor:
        x, alpha = self.tensor(inputs[0]), self.const(inputs[1])
        if alpha is None:
            raise ConversionError(f"{node['name']}: PReLU slope must be a constant")
        slope = self.per_channel(alpha) if x.nchw else alpha
        return _Tensor(self.g.op("PRelu", [x.name, self.g.const("a", slope)]), x.nchw)

    def op_MaxPool(self, node: dict[str, Any], inputs: list[str]) -> _Tensor:
        x = self.tensor(inputs[0])
        ksize, strides = _attr_list(node, "ksize")[1:3], _attr_list(node, "strides")[1:3]
        pad = _attr_str(node, "padding", "VALID")
        if not x.nchw or pad not in ("SAME", "VALID"):
            raise ConversionError(f"{node['name']}: MaxPool needs a 4-D input, SAME or VALID")
        attrs: dict[str, Any] = {"kernel_shape": ksize, "strides": strides}
        if pad == "SAME":
            attrs["auto_pad"] = "SAME_UPPER"
        else:
            attrs["pads"] = [0, 0, 0, 0]
        return _Tensor(self.g.op("MaxPool", [x.name], **attrs), True)

    def op_Pad(self, node: dict[str, Any], inputs: list[str]) -> _Tensor:
        x, paddings = self.tensor(inputs[0]), self.const(inputs[1])
        if paddings is None or paddings.shape != (4, 2) or not x.nchw:
            raise ConversionError(f"{node['name']}: Pad needs a 4-D input and constant paddings")
        p = paddings.astype(np.int64)[NHWC_TO_NCHW]
        pads = np.concatenate([p[:, 0], p[:, 1]])
        out = self.g.op("Pad", [x.name, self.g.const("pads", pads)], mode="constant")
        return _Tensor(out, True)

    def op_Mean(self, node: dict[str, Any], inputs: list[str]) -> _Tensor:
        x, axes_value = self.tensor(inputs[0]), self.const(inputs[1])
        if axes_value is None:
            raise ConversionError(f"{node['name']}: Mean needs constant axes")
        keep = _attr_bool(node, "keep_dims")
        axes = sorted(int(a) % 4 if x.nchw else int(a) for a in axes_value.reshape(-1))
        name = x.name
        if x.nchw and (keep or axes == [1, 2]):
            axes = sorted(_AXIS_NHWC_TO_NCHW[a] for a in axes)
            out = self.g.op("ReduceMean", [name], axes=axes, keepdims=int(keep))
            return _Tensor(out, keep)
        if x.nchw:
            name = self.g.op("Transpose", [name], perm=NCHW_TO_NHWC)
        return _Tensor(self.g.op("ReduceMean", [name], axes=axes, keepdims=int(keep)), False)

    def op_FusedMatMul(self, node: dict[str, Any], inputs: list[str]) -> _Tensor:
        a, b = self.tensor(inputs[0]), self.const(inputs[1])
        if a.nchw or b is None or b.ndim != 2:
            raise ConversionError(f"{node['name']}: needs a 2-D input and a constant matrix")
        if _attr_bool(node, "transpose_a"):
            raise ConversionError(f"{node['name']}: transpose_a is not supported")
        if _attr_bool(node, "transpose_b"):
            b = b.T
        y = self.g.op("MatMul", [a.name, self.g.const("w", b)])
        args = inputs[2:]
        for fused in _attr_strs(node, "fused_ops"):
            if fused == "BiasAdd" and args:
                y = self.g.op("Add", [y, self.g.const("b", self._arg(args, 0))])
            elif fused == "Relu":
                y = self.g.op("Relu", [y])
            else:
                raise ConversionError(f"{node['name']}: fused op {fused} is not supported")
        return _Tensor(y, False)

    def op_Reshape(self, node: dict[str, Any], inputs: list[str]) -> _Tensor:
        x, shape = self.tensor(inputs[0]), self.const(inputs[1])
        if shape is None:
            raise ConversionError(f"{node['name']}: Reshape needs a constant shape")
        name = x.name
        if x.nchw:  # TF's element order is NHWC
            name = self.g.op("Transpose", [name], perm=NCHW_TO_NHWC)
        target = self.g.const("shape", shape.astype(np.int64).reshape(-1))
        return _Tensor(self.g.op("Reshape", [name, target]), False)


def _topological(nodes: dict[str, dict[str, Any]], outputs: Sequence[str]) -> list[str]:
    """The nodes the outputs need, each after its inputs (graph-model JSON is unordered)."""
    order: list[str] = []
    state: dict[str, int] = {}
    for root in outputs:
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            name, done = stack.pop()
            if done:
                state[name] = 2
                order.append(name)
                continue
            if state.get(name):
                if state[name] == 1:
                    raise ConversionError(f"the graph has a cycle through {name}")
                continue
            if name not in nodes:
                raise ConversionError(f"node {name} is referenced but not defined")
            state[name] = 1
            stack.append((name, True))
            for ref in reversed(nodes[name].get("input", [])):
                if not ref.startswith("^") and state.get(_src(ref)) != 2:
                    stack.append((_src(ref), False))
    return order


def to_onnx(model: dict[str, Any], weights: dict[str, Array], doc: str = "",
            metadata: dict[str, str] | None = None) -> onnx.ModelProto:  # fmt: skip
    """ONNX for a parsed graph model: inputs and outputs named and laid out as in TFJS
    (output names without the ':0' port, in the signature's order)."""
    try:
        signature = model["signature"]
        nodes = model["modelTopology"]["node"]
    except (KeyError, TypeError):
        raise ConversionError("not a TFJS graph model (no signature/modelTopology)") from None
    if model.get("format") != "graph-model" or not nodes:
        raise ConversionError("not a TFJS graph model (format is not graph-model)")
    out_names = [_src(o["name"]) for o in signature["outputs"].values()]
    conv = _Converter(model, weights)
    conv.run(_topological(conv.nodes, out_names))
    outputs: list[tuple[str, Sequence[int | str]]] = []
    for name in out_names:
        t = conv.values[name]
        src = conv.g.op("Transpose", [t.name], perm=NCHW_TO_NHWC) if t.nchw else t.name
        conv.g.op("Identity", [src], output=name)
        spec = next(o for o in signature["outputs"].values() if _src(o["name"]) == name)
        dims = spec.get("tensorShape", {}).get("dim", [])
        outputs.append((name, [max(int(d["size"]), 1) for d in dims]))
    return conv.g.model(conv.inputs, outputs, "tfjs_graph", doc, metadata or {})


def convert(model_json: bytes, read: Callable[[str], bytes], source: str, doc: str = "") -> bytes:
    """ONNX bytes for a graph model; `read(path)` returns a weight shard named in the JSON."""
    try:
        model = json.loads(model_json)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConversionError(f"model.json is not JSON ({e}); download the source again") from None
    if not isinstance(model, dict) or "weightsManifest" not in model:
        raise ConversionError("not a TFJS graph model (no weightsManifest)")
    weights = decode_weights(model["weightsManifest"], read)
    meta = {"source": source, "converter": "edge.runtime.convert.tfjs_graph"}
    return serialize(to_onnx(model, weights, doc, meta))


__all__ = ["convert", "decode_weights", "to_onnx"]
