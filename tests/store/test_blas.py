"""The scan's one-BLAS-thread limit: applied while any scan runs, restored after the last."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from store_helpers import unit_vectors

from edge.store import ExactIndex, IndexEntry
from edge.store.blas import OneBlasThread

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}


def test_limit_applies_inside_and_is_restored_after() -> None:
    np.ones(4) @ np.ones(4)  # make sure the BLAS library is loaded
    before = _blas_threads()
    limit = OneBlasThread()
    with limit():
        assert _blas_threads() == {1}
    assert _blas_threads() == before


def test_concurrent_scans_never_leave_the_limit_behind() -> None:
    np.ones(4) @ np.ones(4)
    before = _blas_threads()
    limit = OneBlasThread()
    seen: list[set[int]] = []
    start = threading.Barrier(4)

    def scans() -> None:
        start.wait()
        for _ in range(20):
            with limit():
                seen.append(_blas_threads())

    threads = [threading.Thread(target=scans) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [{1}] * 80
    assert _blas_threads() == before


def test_index_results_do_not_depend_on_the_thread_setting() -> None:
    vecs = unit_vectors(2000, dim=64, seed=61)
    a, b = ExactIndex(), ExactIndex(one_blas_thread=False)
    for idx in (a, b):
        idx.add_many(IndexEntry(f"u{i}", "i", "m", "", "", 10**10, v) for i, v in enumerate(vecs))
    before = _blas_threads()
    for q in unit_vectors(5, dim=64, seed=62):
        ra = a.search("i", "m", q, now=0, limit=5)
        rb = b.search("i", "m", q, now=0, limit=5)
        assert [u for u, _ in ra] == [u for u, _ in rb]
        np.testing.assert_allclose([s for _, s in ra], [s for _, s in rb], atol=1e-6)
    assert _blas_threads() == before
