"""dlib's serialised ResNet face descriptor (`dlib_face_recognition_resnet_model_v1.dat`) to ONNX.

The .dat file is dlib's own binary serialisation of the network object. What this parser relies
on (dlib's documented `serialize()` formats):

* integers: one header byte (low nibble = number of value bytes, bit 7 = negative) followed by
  the magnitude, little endian; strings: length integer + bytes; floats: mantissa integer and
  exponent integer (value = mantissa * 2**exponent); booleans: one character '0' or '1';
* tensors: version 2, then num_samples, k, nr, nc, then the values as raw little-endian float32;
  alias tensors (views into a layer's parameter tensor): version 1 and the four dimensions;
* the loss layer comes first, then one version integer per wrapper layer (outermost first),
  then the input layer, then each computational layer's record from the input upwards: its
  name, its fields, and the wrapper's state (three booleans and three scratch tensors).

Tag and skip layers leave no record of their own, so the residual wiring is the one of dlib's
ResNet metric network (dnn_face_recognition_ex): every block is
`con, affine, relu, con, affine, [avg_pool,] add_prev, relu`, where add_prev adds the block's
input (average-pooled in a downsampling block) and the sum has the larger of both shapes (the
smaller one zero-padded at the end of each axis). The parser checks the records against that
layout and refuses anything else rather than guessing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from edge.runtime.convert import ConversionError
from edge.runtime.convert.onnx_graph import Graph, serialize

F32 = np.ndarray[Any, np.dtype[np.float32]]


class _Reader:
    """Sequential reads of dlib's primitive encodings, with the offset in every error."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ConversionError(
                f"truncated .dat: {what} at byte {self.pos} needs {n} byte(s), "
                f"the file has {len(self.data)}; download the source again"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int_(self, what: str = "integer") -> int:
        head = self._take(1, what)[0]
        size = head & 0x0F
        if size > 8 or head & 0x70:
            raise ConversionError(f"not a dlib integer at byte {self.pos - 1} ({what})")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if head & 0x80 else value

    def str_(self, what: str = "string") -> str:
        n = self.int_(what)
        if not 0 <= n <= 256:
            raise ConversionError(f"implausible string length {n} at byte {self.pos} ({what})")
        raw = self._take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise ConversionError(f"not a layer name at byte {self.pos - n}: {raw!r}") from None

    def float_(self, what: str = "float") -> float:
        mantissa, exponent = self.int_(what), self.int_(what)
        if abs(exponent) > 1100:  # dlib's codes for inf / nan
            raise ConversionError(f"non-finite {what} at byte {self.pos}")
        return math.ldexp(float(mantissa), exponent)

    def bool_(self, what: str = "flag") -> bool:
        c = self._take(1, what)
        if c not in (b"0", b"1"):
            raise ConversionError(f"expected a '0'/'1' flag at byte {self.pos - 1} ({what})")
        return c == b"1"

    def tensor(self, what: str) -> F32:
        version = self.int_(what)
        if version != 2:
            raise ConversionError(f"{what}: tensor version {version} (only version 2 is known)")
        dims = [self.int_(what) for _ in range(4)]
        if min(dims) < 0:
            raise ConversionError(f"{what}: negative tensor dimension {dims}")
        count = math.prod(dims)
        raw = self._take(4 * count, f"{what} ({count} floats)")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        version = self.int_(what)
        if version != 1:
            raise ConversionError(f"{what}: alias tensor version {version} (only 1 is known)")
        n, k, nr, nc = (self.int_(what) for _ in range(4))
        return n, k, nr, nc


@dataclass(frozen=True)
class Conv:
    weight: F32  # (out, in, kh, kw)
    bias: F32
    stride: tuple[int, int]
    pad: tuple[int, int]


@dataclass(frozen=True)
class Affine:
    gamma: F32
    beta: F32


@dataclass(frozen=True)
class Pool:
    kind: str  # "max" | "avg"
    size: tuple[int, int]  # (0, 0): the whole plane
    stride: tuple[int, int]
    pad: tuple[int, int]


@dataclass(frozen=True)
class Fc:
    weight: F32  # (inputs, outputs): y = x @ weight


@dataclass(frozen=True)
class Simple:
    kind: str  # "relu" | "add_prev"


Layer = Conv | Affine | Pool | Fc | Simple


@dataclass
class DlibNet:
    """The records of a dlib network, input first."""

    loss: str
    means: tuple[float, float, float]
    size: tuple[int, int]
    layers: list[Layer] = field(default_factory=list)


def _conv(r: _Reader) -> Conv:
    params = r.tensor("con_ params").reshape(-1)
    n_filters, nr, nc, sy, sx, py, px = (r.int_("con_ field") for _ in range(7))
    fdims, bdims = r.alias("con_ filters"), r.alias("con_ bias")
    for _ in range(4):
        r.float_("con_ learning-rate multiplier")
    fsize, bsize = math.prod(fdims), math.prod(bdims)
    if fdims[0] != n_filters or fdims[2:] != (nr, nc) or fsize + bsize != params.size:
        raise ConversionError(f"con_ layer at byte {r.pos}: shapes do not add up {fdims}")
    if bsize != n_filters:
        raise ConversionError(f"con_ layer at byte {r.pos}: no bias (unsupported)")
    return Conv(params[:fsize].reshape(fdims), params[fsize:], (sy, sx), (py, px))


def _affine(r: _Reader) -> Affine:
    params = r.tensor("affine_ params").reshape(-1)
    g, b = r.alias("affine_ gamma"), r.alias("affine_ beta")
    mode = r.int_("affine_ mode")
    channels = g[1]
    if mode != 0 or g != (1, channels, 1, 1) or b != g or params.size != 2 * channels:
        raise ConversionError(f"affine_ at byte {r.pos}: only per-channel (conv mode) affine")
    return Affine(params[:channels].copy(), params[channels:].copy())


def _pool(r: _Reader, kind: str) -> Pool:
    nr, nc, sy, sx, py, px = (r.int_(f"{kind}_pool field") for _ in range(6))
    return Pool(kind, (nr, nc), (sy, sx), (py, px))


def _fc(r: _Reader) -> Fc:
    n_out, n_in = r.int_("fc_ outputs"), r.int_("fc_ inputs")
    params = r.tensor("fc_ params").reshape(-1)
    w, bias = r.alias("fc_ weights"), r.alias("fc_ biases")
    bias_mode = r.int_("fc_ bias mode")
    for _ in range(4):
        r.float_("fc_ learning-rate multiplier")
    shapes_ok = w[:2] == (n_in, n_out) and params.size == n_in * n_out
    if not shapes_ok or math.prod(bias) != 0 or bias_mode != 1:
        raise ConversionError("fc_ layer: only fc_no_bias with num_inputs x num_outputs weights")
    return Fc(params.reshape(n_in, n_out))


def parse_dat(data: bytes) -> DlibNet:
    """Read a serialised dlib `loss_metric` network (raises ConversionError if it is not one)."""
    r = _Reader(data)
    if r.int_("loss layer version") != 1:
        raise ConversionError("not a dlib network file (unexpected loss layer version)")
    loss = r.str_("loss layer name")
    if not loss.startswith("loss_metric_"):
        raise ConversionError(f"not a dlib metric network: the loss layer is {loss!r}")
    r.float_("margin")
    r.float_("distance threshold")
    wrappers = 0  # layers with a record (version 2) and tag/skip layers (version 1)
    while (v := r.int_("layer version")) in (1, 2):
        wrappers += v == 2
    if v != 3:  # the layer right on top of the input (it also holds the input layer)
        raise ConversionError(f"unexpected layer version {v} at byte {r.pos}")
    wrappers += 1
    name = r.str_("input layer name")
    if name != "input_rgb_image_sized":
        raise ConversionError(f"input layer {name!r}: only input_rgb_image_sized is supported")
    means = (r.float_("mean red"), r.float_("mean green"), r.float_("mean blue"))
    size = (r.int_("input rows"), r.int_("input columns"))
    net = DlibNet(loss, means, size)
    readers: dict[str, Callable[[_Reader], Layer]] = {
        "con_4": _conv, "affine_": _affine, "fc_2": _fc,
        "max_pool_2": lambda rr: _pool(rr, "max"), "avg_pool_2": lambda rr: _pool(rr, "avg"),
        "relu_": lambda _rr: Simple("relu"), "add_prev_": lambda _rr: Simple("add_prev"),
    }  # fmt: skip
    while r.pos < len(data):
        kind = r.str_("layer name")
        if kind not in readers:
            raise ConversionError(f"unsupported dlib layer {kind!r} at byte {r.pos}")
        net.layers.append(readers[kind](r))
        for _ in range(3):
            r.bool_("layer state flag")
        for _ in range(3):
            r.tensor("layer scratch tensor")
        if len(net.layers) == 1:
            r.int_("sample expansion factor")
    if len(net.layers) != wrappers or not isinstance(net.layers[-1], Fc):
        raise ConversionError(
            f"truncated or incomplete .dat: {len(net.layers)} layer records for {wrappers} "
            "layers; download the source again"
        )
    return net


def _pool_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _pooled(shape: tuple[int, int, int], p: Pool) -> tuple[int, int, int]:
    rows = _pool_out(shape[1], p.size[0], p.stride[0], p.pad[0])
    return shape[0], rows, _pool_out(shape[2], p.size[1], p.stride[1], p.pad[1])


def _pads(pad: tuple[int, int]) -> list[int]:
    return [pad[0], pad[1], pad[0], pad[1]]


def to_onnx(net: DlibNet, doc: str = "", metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """The ONNX graph of a parsed ResNet metric network: N x 3 x H x W RGB 0..255 -> 'embedding'.

    affine_ layers are folded into the convolution before them; shapes are static (dlib's input
    size is fixed), so every zero-padding of a residual sum is a constant Pad.
    """
    g = Graph()
    layers = list(net.layers)
    mean = np.array(net.means, np.float32).reshape(1, 3, 1, 1)
    x = g.op("Sub", ["input", g.const("mean", mean)])
    x = g.op("Div", [x, g.const("scale", np.array(256.0, np.float32))])
    shape = (3, *net.size)  # (channels, rows, cols) of x
    i = 0

    def take(kind: type[Any]) -> Any:
        nonlocal i
        if i >= len(layers) or not isinstance(layers[i], kind):
            got = type(layers[i]).__name__ if i < len(layers) else "end of file"
            raise ConversionError(
                f"layer {i}: expected {kind.__name__}, found {got}; this converter reads dlib's "
                "ResNet face descriptor layout only"
            )
        i += 1
        return layers[i - 1]

    def conv_affine(inp: str, cshape: tuple[int, int, int]) -> tuple[str, tuple[int, int, int]]:
        c: Conv = take(Conv)
        a: Affine = take(Affine)
        if c.weight.shape[1] != cshape[0] or a.gamma.size != c.weight.shape[0]:
            raise ConversionError(f"layer {i}: channel counts do not chain")
        w = c.weight * a.gamma.reshape(-1, 1, 1, 1)
        b = c.bias * a.gamma + a.beta
        kh, kw = c.weight.shape[2:]
        out = g.op(
            "Conv", [inp, g.const("w", w), g.const("b", b)], kernel_shape=[kh, kw],
            strides=list(c.stride), pads=[c.pad[0], c.pad[1], c.pad[0], c.pad[1]],
        )  # fmt: skip
        rows = _pool_out(cshape[1], kh, c.stride[0], c.pad[0])
        cols = _pool_out(cshape[2], kw, c.stride[1], c.pad[1])
        return out, (c.weight.shape[0], rows, cols)

    def relu() -> None:
        s: Simple = take(Simple)
        if s.kind != "relu":
            raise ConversionError(f"layer {i - 1}: expected relu_, found {s.kind}")

    def pad_to(t: str, have: tuple[int, int, int], want: tuple[int, ...]) -> str:
        extra = [w - h for h, w in zip(have, want, strict=True)]
        if not any(extra):
            return t
        pads = np.array([0, 0, 0, 0, 0, *extra], np.int64)
        return g.op("Pad", [t, g.const("pads", pads)], mode="constant")

    # stem: con 7x7/2, affine, relu, max_pool 3x3/2
    x, shape = conv_affine(x, shape)
    relu()
    x = g.op("Relu", [x])
    p: Pool = take(Pool)
    if p.kind != "max":
        raise ConversionError("the stem must end in max_pool_")
    x = g.op("MaxPool", [x], kernel_shape=list(p.size), strides=list(p.stride), pads=_pads(p.pad))
    shape = _pooled(shape, p)
    blocks = 0
    while i < len(layers) and isinstance(layers[i], Conv):
        block_in, in_shape = x, shape
        y, yshape = conv_affine(x, shape)
        relu()
        y = g.op("Relu", [y])
        y, yshape = conv_affine(y, yshape)
        skip, sshape = block_in, in_shape
        if isinstance(layers[i], Pool):
            p = take(Pool)
            if p.kind != "avg":
                raise ConversionError(f"layer {i - 1}: a residual shortcut must be avg_pool_")
            skip = g.op("AveragePool", [block_in], kernel_shape=list(p.size),
                        strides=list(p.stride), pads=_pads(p.pad))  # fmt: skip
            sshape = _pooled(sshape, p)
        s = take(Simple)
        if s.kind != "add_prev":
            raise ConversionError(f"layer {i - 1}: expected add_prev_, found {s.kind}")
        out_shape = (max(yshape[0], sshape[0]), max(yshape[1], sshape[1]),
                     max(yshape[2], sshape[2]))  # fmt: skip
        x = g.op("Add", [pad_to(y, yshape, out_shape), pad_to(skip, sshape, out_shape)])
        relu()
        x = g.op("Relu", [x])
        shape = out_shape
        blocks += 1
    p = take(Pool)
    if p.kind != "avg" or p.size != (0, 0):
        raise ConversionError("the blocks must end in avg_pool_everything")
    x = g.op("ReduceMean", [x], axes=[2, 3], keepdims=0)
    fc: Fc = take(Fc)
    if fc.weight.shape[0] != shape[0] or i != len(layers) or blocks == 0:
        raise ConversionError("the network must end in one fc_ layer after the residual blocks")
    g.op("MatMul", [x, g.const("fc", fc.weight)], output="embedding")
    return g.model(
        [("input", ["N", 3, *net.size])], [("embedding", ["N", fc.weight.shape[1]])],
        "dlib_resnet_metric", doc, metadata or {},
    )  # fmt: skip


def convert(data: bytes, source: str) -> bytes:
    """ONNX bytes for the .dat bytes `data` (`source` is recorded in the model's metadata)."""
    net = parse_dat(data)
    doc = (
        f"dlib ResNet metric network ({net.loss}) converted by edge-face from dlib's .dat "
        f"serialisation. Input RGB 0..255, {net.size[0]}x{net.size[1]} dlib face chip (channel "
        "means and /256 inside the graph); output 128-d descriptor."
    )
    meta = {"source": source, "converter": "edge.runtime.convert.dlib_dat"}
    return serialize(to_onnx(net, doc, meta))


__all__ = ["DlibNet", "convert", "parse_dat", "to_onnx"]
