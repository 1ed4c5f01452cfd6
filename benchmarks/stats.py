"""Shared helpers for benchmarks: call timing and peak memory.

Percentiles and tables come from the product's evaluation report module, so a benchmark
and `edge-face eval` print figures the same way.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.evaluation.report import p, table

__all__ = ["p", "peak_rss_mb", "table", "time_calls", "vm_hwm_mb"]


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 5) -> np.ndarray:
    """Milliseconds per call over `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t0) * 1000.0
    return out


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def vm_hwm_mb(pid: int | None = None) -> float:
    """High-water RSS (MiB) of process `pid` (default: this one), from its own VmHWM.

    Unlike ru_maxrss, VmHWM belongs to the current address space only: it is right in a
    child started by fork+exec and readable for another process. Where /proc is missing
    the current RSS is the best available figure.
    """
    try:
        status = Path(f"/proc/{pid or 'self'}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20
