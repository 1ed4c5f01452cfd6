"""Many request threads at once: writers serialise, readers run alongside, nothing is lost."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from store_helpers import unit_vectors

from edge.store import EntityStore


def test_concurrent_writers_and_readers_stay_consistent(
    open_store: Callable[..., EntityStore],
) -> None:
    store = open_store(clock=None)  # real time: threads interleave for real
    n_threads, per_thread = 6, 40
    vecs = unit_vectors(n_threads * per_thread, seed=51)
    kept: list[list[str]] = [[] for _ in range(n_threads)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)
    heard: list[str] = []
    store.add_listener(lambda c: heard.append(c.op))

    def work(t: int) -> None:
        try:
            barrier.wait()
            for j in range(per_thread):
                v = vecs[t * per_thread + j]
                e = store.create(
                    instance=f"inst-{t % 2}",
                    model="EDGE_FACE_V1",
                    model_name="EDGE_FACE_V1",
                    collection=f"t{t}",
                    key=str(j),
                    metadata=[],
                    ttl=-1,
                    vector=v,
                )
                # Read-your-write from this thread's own read connection.
                assert store.get(f"inst-{t % 2}", e.uuid) is not None
                (hit, score), *_ = store.search(f"inst-{t % 2}", "EDGE_FACE_V1", v, limit=1)
                assert hit.uuid == e.uuid and score > 0.999
                if j % 4 == 3:
                    assert store.delete(f"inst-{t % 2}", e.uuid)
                else:
                    kept[t].append(e.uuid)
                store.list(f"inst-{t % 2}", limit=5)
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []

    expected = {u for part in kept for u in part}
    listed = set()
    for inst in ("inst-0", "inst-1"):
        total, page = store.list(inst, limit=1000)
        assert total == len(page)
        listed |= {e.uuid for e in page}
    assert listed == expected
    assert len(store.index) == len(expected)
    changes = store.changes_since(0, limit=10_000)
    assert len(heard) == n_threads * per_thread + n_threads * per_thread // 4
    assert heard.count("delete") == n_threads * per_thread // 4
    # The log keeps each entity's latest change: a create if kept, else its tombstone.
    assert len(changes) == n_threads * per_thread
    assert {c.entity_uuid for c in changes if c.op == "create"} == expected
    assert sum(c.op == "delete" for c in changes) == n_threads * per_thread // 4
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    # Per-thread creation order survives in the uuid order.
    for t, part in enumerate(kept):
        total, page = store.list(f"inst-{t % 2}", collection=f"t{t}", limit=1000)
        assert [e.uuid for e in page] == part
        assert [int(e.key) for e in page] == sorted(int(e.key) for e in page)
    np.testing.assert_equal(len(expected), store.count())
