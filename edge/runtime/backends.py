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
from collections.abc import Callable, Iterable, Mapping, Sequence
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


def _outputs(req: Any, n: int) -> list[np.ndarray]:
    """The request's outputs as arrays of our own (the request's buffers are reused)."""
    res = req.get_output_tensor  # by index: the same order for every compilation
    return [np.array(res(i).data) for i in range(n)]


class _Shared:
    """One compilation that any number of threads call at once, each through an infer
    request of its own (requests are not thread-safe, compiled models are)."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self._local = threading.local()

    def infer(self, inputs: Mapping[str, np.ndarray], n_out: int) -> list[np.ndarray]:
        req = getattr(self._local, "req", None)
        if req is None:
            req = self._local.req = self.compiled.create_infer_request()
        # share_inputs: the runtime reads the (contiguous) arrays in place, no copy-in.
        req.infer(inputs, share_inputs=True)
        return _outputs(req, n_out)


class _Replicas:
    """Up to `limit` one-stream, one-thread compilations of a model, each used by one caller
    at a time and run on that caller's own thread.

    Why: OpenVINO runs a one-thread, one-stream compilation on the calling thread, with no
    hand-over to a stream's worker thread and back; but one such compilation runs one
    inference at a time (two threads: 716 inferences/s of MobileFaceNet, as many as one;
    with a replica each: 1385/s). On the request path (2 cores, 2 inference threads,
    640x480 searches) one-thread compilations served 262-269 searches/s in-process against
    209/s with two streams of one thread each, and over HTTP 1.12-1.22x the searches/s of
    the two-stream build side by side, at about 10 % less CPU per search (the stream worker
    threads and the hand-overs to them). Two replicas of each model on two cores served as
    many searches over HTTP as one, at 10 % more CPU per search; so the session caps them at
    half the cores (the detector and the embedder run side by side). Replicas are compiled
    when concurrency first needs them (0.1-0.3 s once); one that fails to compile caps them
    at those already made.
    """

    def __init__(self, first: Any, compile_one: Callable[[], Any], limit: int) -> None:
        self._compile = compile_one
        self._limit = max(1, limit)
        self._free = [first.create_infer_request()]
        self._made = 1
        self._cond = threading.Condition()

    @property
    def count(self) -> int:
        """Replicas compiled so far."""
        return self._made

    def infer(self, inputs: Mapping[str, np.ndarray], n_out: int) -> list[np.ndarray]:
        req = self._take()
        try:
            req.infer(inputs, share_inputs=True)
            return _outputs(req, n_out)
        finally:
            self._give(req)

    def _give(self, req: Any) -> None:
        with self._cond:
            self._free.append(req)
            self._cond.notify()

    def _take(self) -> Any:
        with self._cond:
            while not self._free and self._made >= self._limit:
                self._cond.wait()
            if self._free:
                return self._free.pop()
            self._made += 1  # compile outside the lock: other callers keep their replicas
        try:
            return self._compile().create_infer_request()
        except Exception as e:  # out of memory, say: serve with the replicas there are
            log.warning("no further replica of a model (%s); %d serve", e, self._made - 1)
            with self._cond:
                self._made -= 1
                self._limit = self._made
                while not self._free:
                    self._cond.wait()
                return self._free.pop()


#: How a session runs a call: all callers on one compilation, or a replica each.
_Runner = _Shared | _Replicas


class _Variants:
    """The ways one model (at one input size) is compiled: `busy` serves calls made while
    other inference work runs (`_Replicas` for one-thread sessions, else `_Shared`);
    `alone`, when present, serves calls made while nothing else runs (all cores)."""

    def __init__(
        self,
        model: Any,
        device: str,
        config: dict[str, object],
        wide: dict[str, object] | None,
        replicas: int,
        first: Any = None,
    ) -> None:
        core = OpenVinoSession.core()
        if first is None:
            first = core.compile_model(model, device, config)
        self.busy: _Runner = (
            _Replicas(first, lambda: core.compile_model(model, device, config), replicas)
            if replicas
            else _Shared(first)
        )
        self.alone = None if wide is None else _Shared(core.compile_model(model, device, wide))

    def runner(self, others: int) -> _Runner:
        return self.alone if self.alone is not None and others == 0 else self.busy


class _StaticShapes:
    """Static-shape compilations of a dynamic-input model, for the input sizes it meets.

    Why: YuNet and SCRFD take any frame size, and OpenVINO's CPU plugin runs a dynamic
    graph 20-30 % slower than the same graph reshaped to the size at hand (the detector of
    a 640x480 search: about 3.0 -> 2.3 ms of CPU f32 on one thread). A service sees few
    sizes (the camera's frame, 4:3 and 3:4 photos at 320 px), so each size met is compiled
    once (0.1-0.4 s, every variant; the warm-up's frame size is compiled before the first
    request) and used from then on; past `LIMIT` sizes the dynamic compilation serves the
    new ones. Every call of one size runs the same compiled graph, so a result never
    depends on whether the size was new (bf16 rounding differs between the two).
    """

    LIMIT = 8  # sizes compiled per model; further sizes run on the dynamic compilation

    def __init__(self, compile_size: Callable[[Any], _Variants], model: Any) -> None:
        self._compile_size, self._model = compile_size, model
        self._ready: dict[tuple[int, ...], _Variants] = {}
        self._dynamic: set[tuple[int, ...]] = set()
        self._lock = threading.Lock()

    def variants_for(self, inputs: Mapping[str, np.ndarray]) -> _Variants | None:
        """The static compilations for this input size (compiled now if new), or None when
        this size runs on the dynamic compilation."""
        (arr,) = inputs.values()
        shape = tuple(int(d) for d in arr.shape)
        got = self._ready.get(shape)
        if got is None and shape not in self._dynamic:
            with self._lock:  # one compile per size, also when two requests bring it
                got = self._ready.get(shape)
                if got is None and shape not in self._dynamic:
                    got = self._compile(shape)
        return got

    def _compile(self, shape: tuple[int, ...]) -> _Variants | None:
        if len(self._ready) >= self.LIMIT:
            self._dynamic.add(shape)
            return None
        try:
            model = self._model.clone()
            model.reshape(list(shape))
            got = self._compile_size(model)
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
    """OpenVINO compiled model, run by any number of threads at once."""

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
        replicas = 0
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        elif one_thread:
            # One thread, one stream: the inference runs on the caller's thread; concurrent
            # callers take replicas (`_Replicas`). Two such models serve every request (the
            # detector and the embedder), so each gets half the cores.
            config.update(NUM_STREAMS=1, INFERENCE_NUM_THREADS=1)
            replicas = max(1, _cores() // 2)
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
            replicas = 0
        # A call made while no other thread does inference work runs on a second, default
        # compilation (all cores, one stream): the lowest latency when alone, and on a box
        # shared with other programs two threads get twice the share. Same results: the
        # test suite checks both give identical outputs for these models.
        wide: dict[str, object] | None = None
        if replicas:
            wide = {
                k: v for k, v in config.items() if k not in ("NUM_STREAMS", "INFERENCE_NUM_THREADS")
            }

        def compile_size(m: Any) -> _Variants:
            return _Variants(m, use, config, wide, replicas)

        self._variants = _Variants(model, use, config, wide, replicas, first=self._compiled)
        self._shapes = _StaticShapes(compile_size, model) if _dynamic(model) else None
        try:
            self.precision = str(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        except Exception:
            self.precision = "unknown"
        self.role = role
        self._n_out = len(self._compiled.outputs)
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
                for p in self._compiled.outputs
            ],
            fallback=fallback,
            precision=_short_precision(self.precision),
        )

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        with INFERENCE_WORK as others:
            inputs = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
            variants = self._variants
            if self._shapes is not None:
                variants = self._shapes.variants_for(inputs) or variants
            t0 = time.perf_counter()
            out = variants.runner(others).infer(inputs, self._n_out)
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
