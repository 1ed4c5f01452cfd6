"""Execution backends: *which runtime runs a model*, kept apart from *what the model is*.

Both backends expose the same `InferenceSession`: named float inputs in, a list of output
arrays out (in the model's output order). The backend and device/provider actually in use
are recorded on the session so that `/models` and the logs can show them: a silent fallback
to CPU is the complaint users of similar products raise most.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.metrics import MODEL_INFERENCE

log = logging.getLogger(__name__)

ORT_PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | str | None, ...]


@dataclass
class SessionInfo:
    backend: str  # "openvino" | "onnxruntime"
    device: str  # OpenVINO device, or the onnxruntime provider that runs the graph
    requested: str  # what the config asked for
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    fallback: bool = False  # True when the device in use is not the first preference
    precision: str = "f32"  # numeric precision the device computes in


class InferenceSession(Protocol):
    info: SessionInfo
    role: str

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...


class BackendError(Exception):
    """A model cannot be loaded by the requested backend."""


class _Timed:
    role: str
    info: SessionInfo

    def _observe(self, t0: float) -> None:
        MODEL_INFERENCE.observe(time.perf_counter() - t0, role=self.role, backend=self.info.backend)


class _Busy:
    """How many threads are doing inference work right now (a thread's nested entries count
    once). Entering returns how many *other* threads are busy: the signal that the cores
    are taken and an inference should stay on one thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0
        self._local = threading.local()

    def __enter__(self) -> int:
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        with self._lock:
            if depth == 0:
                self._n += 1
            return self._n - 1

    def __exit__(self, *exc: object) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            with self._lock:
                self._n -= 1


#: Wrap a request's whole inference work in `with INFERENCE_WORK:` (the pipeline does) so
#: that `one_thread` sessions see the other requests between their inferences too.
INFERENCE_WORK = _Busy()


def _dynamic(model: Any) -> bool:
    """Does the (one-input) model take inputs of any size?"""
    inputs = model.inputs
    return len(inputs) == 1 and inputs[0].get_partial_shape().is_dynamic


class _StaticShapes:
    """Static-shape compilations of a dynamic-input model, for the input sizes it meets.

    Why: YuNet and SCRFD take any frame size, and OpenVINO's CPU plugin runs a dynamic
    graph 20-30 % slower than the same graph reshaped to the size at hand (the detector of
    a 640x480 search: about 3.0 -> 2.3 ms of CPU f32 on one thread). A service sees few
    sizes (the camera's frame, 4:3 and 3:4 photos at 320 px), so each size met is compiled
    once (0.1-0.4 s, both thread variants; the warm-up's frame size is compiled before the
    first request) and used from then on; past `LIMIT` sizes the dynamic compilation
    serves the new ones. Every call of one size runs the same compilation, so a result
    never depends on whether the size was new (bf16 rounding differs between the two).
    """

    LIMIT = 8  # sizes compiled per model; further sizes run on the dynamic compilation

    def __init__(
        self, model: Any, device: str, config: dict[str, object], wide: dict[str, object] | None
    ) -> None:
        self._model, self._device = model, device
        self._configs = {False: config, True: wide}
        self._ready: dict[tuple[int, ...], dict[bool, Any]] = {}
        self._dynamic: set[tuple[int, ...]] = set()
        self._lock = threading.Lock()

    def compiled_for(self, inputs: Mapping[str, np.ndarray], wide: bool) -> Any:
        """The static compilation for this input size (compiled now if new), or None when
        this size runs on the dynamic compilation."""
        (arr,) = inputs.values()
        shape = tuple(int(d) for d in arr.shape)
        got = self._ready.get(shape)
        if got is None and shape not in self._dynamic:
            with self._lock:  # one compile per size, also when two requests bring it
                got = self._ready.get(shape)
                if got is None and shape not in self._dynamic:
                    got = self._compile(shape)
        return None if got is None else got.get(wide)

    def _compile(self, shape: tuple[int, ...]) -> dict[bool, Any] | None:
        if len(self._ready) >= self.LIMIT:
            self._dynamic.add(shape)
            return None
        core = OpenVinoSession.core()
        try:
            model = self._model.clone()
            model.reshape(list(shape))
            got = {
                variant: core.compile_model(model, self._device, config)
                for variant, config in self._configs.items()
                if config is not None
            }
        except Exception as e:  # the dynamic compilation keeps serving this size
            log.debug("no static compilation for input %s: %s", shape, e)
            self._dynamic.add(shape)
            return None
        self._ready[shape] = got
        return got

    @property
    def sizes(self) -> list[tuple[int, ...]]:
        """The input sizes served by a static compilation."""
        return sorted(self._ready)


class OpenVinoSession(_Timed):
    """OpenVINO compiled model; one infer request per calling thread (requests are not
    thread-safe, compiled models are)."""

    _core: Any = None  # an openvino.Core; openvino ships no type information
    _core_lock = threading.Lock()

    @classmethod
    def core(cls) -> Any:
        with cls._core_lock:
            if cls._core is None:
                import openvino as ov

                cls._core = ov.Core()
            return cls._core

    def __init__(
        self,
        path: Path,
        role: str,
        device: str = "CPU",
        threads: int = 0,
        precision: str = "auto",
        one_thread: bool = False,
    ) -> None:
        core = self.core()
        try:
            model = core.read_model(str(path))
        except Exception as e:  # OpenVINO raises RuntimeError subclasses
            raise BackendError(f"OpenVINO cannot read {path.name}: {e}") from e
        # No pinning: the cores are shared with the inference pool, OpenCV and the event
        # loop, and pinning cost a sched_setaffinity per inference (10 % of a loaded
        # server's samples in a py-spy profile).
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        elif one_thread:
            # One stream per core, one thread per stream: concurrent requests each get a
            # core instead of queueing for the one shared stream, and a small model alone
            # is as fast on one thread. (Separate single-stream compilations do not help:
            # they still run one inference at a time between them.)
            cores = _cores()
            config.update(NUM_STREAMS=cores, INFERENCE_NUM_THREADS=cores)
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        available = core.available_devices
        use = device
        fallback = False
        if device not in ("AUTO",) and not any(d.startswith(device) for d in available):
            log.warning(
                "OpenVINO device %s not present (have %s); %s runs on CPU", device, available, role
            )
            use, fallback = "CPU", True
        try:
            self._compiled = core.compile_model(model, use, config)
        except Exception:
            config.pop("INFERENCE_NUM_THREADS", None)
            config.pop("NUM_STREAMS", None)
            config.pop("INFERENCE_PRECISION_HINT", None)
            self._compiled = core.compile_model(model, use, config)
        # A call made while no other thread does inference work runs on a second, default
        # compilation (all cores, one stream): the lowest latency when alone, and on a box
        # shared with other programs two threads get twice the share. Same results: the
        # test suite checks both give identical outputs for these models.
        self._wide = None
        wide: dict[str, object] | None = None
        if one_thread and not threads and "NUM_STREAMS" in config:
            wide = {
                k: v for k, v in config.items() if k not in ("NUM_STREAMS", "INFERENCE_NUM_THREADS")
            }
            self._wide = core.compile_model(model, use, wide)
        self._shapes = _StaticShapes(model, use, config, wide) if _dynamic(model) else None
        try:
            self.precision = str(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        except Exception:
            self.precision = "unknown"
        self.role = role
        self._local = threading.local()
        self._out_ports = list(self._compiled.outputs)
        self.info = SessionInfo(
            backend="openvino",
            device=use,
            requested=device,
            inputs=[
                TensorInfo(p.get_any_name(), _ov_shape(p.get_partial_shape()))
                for p in self._compiled.inputs
            ],
            outputs=[
                TensorInfo(p.get_any_name(), _ov_shape(p.get_partial_shape()))
                for p in self._out_ports
            ],
            fallback=fallback,
            precision=_short_precision(self.precision),
        )

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        with INFERENCE_WORK as others:
            wide = self._wide is not None and others == 0
            # share_inputs: the runtime reads the (contiguous) arrays in place, no copy-in.
            inputs = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
            compiled = self._wide if wide and self._wide is not None else self._compiled
            if self._shapes is not None:
                compiled = self._shapes.compiled_for(inputs, wide) or compiled
            reqs: dict[int, Any] = self._local.__dict__.setdefault("reqs", {})
            req = reqs.get(id(compiled))
            if req is None:
                req = reqs[id(compiled)] = compiled.create_infer_request()
            t0 = time.perf_counter()
            res = req.infer(inputs, share_inputs=True)
            out = [np.array(res[i]) for i in range(len(self._out_ports))]  # either compilation
        self._observe(t0)
        return out


def _cores() -> int:
    """CPUs this process may run on (an affinity mask or cpuset counts, not the host's)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _short_precision(p: str) -> str:
    p = p.lower()
    for long, short in (("bfloat16", "bf16"), ("float16", "f16"), ("float32", "f32")):
        if long in p:
            return short
    return p


def _ov_shape(ps: Iterable[Any]) -> tuple[int | str | None, ...]:
    """The static dims of an openvino PartialShape (its Dimension objects are untyped)."""
    return tuple(d.get_length() if d.is_static else None for d in ps)


class OnnxRuntimeSession(_Timed):
    """onnxruntime session with providers tried in the configured order."""

    def __init__(
        self,
        path: Path,
        role: str,
        providers: Sequence[str] = ("tensorrt", "cuda", "openvino", "cpu"),
        threads: int = 0,
        one_thread: bool = False,
    ) -> None:
        import onnxruntime as ort

        if path.suffix.lower() != ".onnx":
            raise BackendError(f"onnxruntime cannot load {path.name} (not an ONNX file)")
        available = set(ort.get_available_providers())
        wanted = [ORT_PROVIDER_NAMES[p] for p in providers if p in ORT_PROVIDER_NAMES]
        chosen = [p for p in wanted if p in available]
        if "CPUExecutionProvider" not in chosen:
            chosen.append("CPUExecutionProvider")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads or one_thread:
            # One thread runs the graph on the calling thread: no pool to hand over to.
            opts.intra_op_num_threads = threads or 1
            opts.inter_op_num_threads = 1
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
        except Exception as e:
            raise BackendError(f"onnxruntime cannot load {path.name}: {e}") from e
        active = self._sess.get_providers()
        self.role = role
        self._out_names = [o.name for o in self._sess.get_outputs()]
        self.info = SessionInfo(
            backend="onnxruntime",
            device=active[0] if active else "CPUExecutionProvider",
            requested=",".join(wanted) or "CPUExecutionProvider",
            inputs=[TensorInfo(i.name, tuple(i.shape)) for i in self._sess.get_inputs()],
            outputs=[TensorInfo(o.name, tuple(o.shape)) for o in self._sess.get_outputs()],
            # A fallback is an installed, allowed provider that did not take the graph.
            fallback=not active or active[0] != chosen[0],
        )

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        t0 = time.perf_counter()
        out = self._sess.run(self._out_names, dict(feeds))
        self._observe(t0)
        return list(out)


def open_session(
    path: Path,
    role: str,
    backend: str = "openvino",
    *,
    providers: Sequence[str] = ("tensorrt", "cuda", "openvino", "cpu"),
    device: str = "CPU",
    threads: int = 0,
    precision: str = "auto",
    one_thread: bool = False,
) -> InferenceSession:
    """Open a model file with the requested backend.

    Formats onnxruntime cannot read (OpenVINO IR, TFLite) always go to OpenVINO; that is
    logged, never silent. `one_thread` (used when `threads` is 0) runs each inference on one
    thread, as many at once as there are cores: right for models too small to gain from
    splitting one inference, which the request pool already runs side by side. Only for
    models checked to give the same results that way: OpenVINO 2026.4 returns zeros for the
    quantized TFLite emotion model when it has more than one stream.
    """
    path = Path(path)
    if backend == "onnxruntime" and path.suffix.lower() != ".onnx":
        log.info("%s: %s is not ONNX; using OpenVINO for it", role, path.name)
        backend = "openvino"
    if backend == "openvino":
        sess: InferenceSession = OpenVinoSession(
            path, role, device=device, threads=threads, precision=precision, one_thread=one_thread
        )
    elif backend == "onnxruntime":
        sess = OnnxRuntimeSession(
            path, role, providers=providers, threads=threads, one_thread=one_thread
        )
    else:
        raise BackendError(f"unknown backend {backend!r} (use openvino or onnxruntime)")
    # DEBUG: the service logs one summary line per model after warm-up (INFO, or WARNING
    # for a fallback); tools that open sessions directly can raise the level to see this.
    log.debug(
        "model %s (%s) runs on %s/%s%s",
        role,
        path.name,
        sess.info.backend,
        sess.info.device,
        " [FALLBACK]" if sess.info.fallback else "",
    )
    return sess
