"""`edge-face bench NAME`: hands over to the benchmarks of a source checkout.

The benchmarks are measurement code, not product, so the wheel does not carry them. From a
checkout (editable install, or `python -m edge.cli` in it) this finds the top-level
`benchmarks` package and runs it in-process; an installed copy says in one line where the
benchmarks run instead of failing with an import error.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from edge.usererror import UserError

#: (name, help) of every benchmark, so `edge-face bench --help` lists them without a checkout.
BENCHMARKS: list[tuple[str, str]] = [
    ("models", "per-model latency, OpenVINO vs onnxruntime"),
    ("pipeline", "end-to-end analysis path vs InsightFace"),
    ("http", "HTTP load on loopback"),
    ("gallery", "search cost vs gallery size"),
    ("liveness", "liveness stage and endpoint latency"),
    ("camera", "720p25 video: fps, decision latency"),
]


def _checkout_root() -> Path | None:
    """The source checkout holding this `edge` package, if it is one (else None).

    An editable install maps only `edge` and `edge_face`, so `benchmarks` beside them is not
    importable from the `edge-face` script until its folder is on the path.
    """
    root = Path(__file__).resolve().parents[2]
    marker = root / "benchmarks" / "__init__.py"
    return root if marker.is_file() and (root / "pyproject.toml").is_file() else None


def _is_ours(module: ModuleType) -> bool:
    return bool(getattr(module, "EDGE_FACE_BENCHMARKS", False))


def load(name: str) -> ModuleType:
    """The module of benchmark `name`; a one-line `UserError` when there is no checkout."""
    package = sys.modules.get("benchmarks")
    if package is None and importlib.util.find_spec("benchmarks") is None:
        root = _checkout_root()
        if root is not None:
            # First, as a path-based editable install would put it: the benchmarks also use
            # the checkout's tests/support, which an unrelated `tests` must not shadow.
            sys.path.insert(0, str(root))
    try:
        package = importlib.import_module("benchmarks")
    except ModuleNotFoundError as e:
        if e.name != "benchmarks":
            raise
        package = None
    if package is None or not _is_ours(package):
        raise UserError(
            f"bench {name}: the benchmarks are not part of an installed edge-face; run them "
            f"from a source checkout: python -m benchmarks {name} (or edge-face bench {name} "
            "there)",
            exit_code=2,
        )
    return importlib.import_module(f"benchmarks.{name}")
