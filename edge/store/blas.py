"""Run the index scan with BLAS pinned to one thread.

The scan is one float32 matrix-vector product, bound by memory bandwidth: a second BLAS
thread gains little on an idle box and loses a lot on a busy one. On a 2-core edge box the
cores are already taken by the inference threads, and OpenBLAS's threaded gemv then waits
for a worker thread the scheduler has parked, turning a sub-millisecond scan into 15 ms
(`edge-face bench gallery` times both ways in the same run).

threadpoolctl switches the limit. OpenBLAS's setting is process-wide and threadpoolctl
lets only the thread that set it change it back, so overlapping scans on different threads
could strand the limit. Limited scans therefore take turns behind one lock: set, scan,
restore, all on one thread. Two scans at once would only share the same memory bandwidth
anyway. Without threadpoolctl the scan runs with the library's default.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class OneBlasThread:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turn = threading.Lock()
        self._controller: Any = None
        self._checked = False

    def _ctl(self) -> Any:
        # Built on first use: the controller lists the BLAS libraries loaded at that moment.
        if not self._checked:
            with self._lock:
                if not self._checked:
                    try:
                        from threadpoolctl import ThreadpoolController

                        self._controller = ThreadpoolController()
                    except Exception:  # not installed, or a runtime it cannot inspect
                        self._controller = None
                    self._checked = True
        return self._controller

    @contextmanager
    def __call__(self) -> Iterator[None]:
        ctl = self._ctl()
        if ctl is None:
            yield
            return
        with self._turn, ctl.limit(limits=1, user_api="blas"):
            yield


ONE_BLAS_THREAD = OneBlasThread()
