"""Child process for test_crash: writes entities until killed, acknowledging each on stdout.

A line is printed only after the store call returned, i.e. after the commit — exactly the
moment the API would answer 2xx. Part of a unit test of `EntityStore`, so it builds the class
directly (elsewhere only `edge.engine.open_store` does).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edge.store import EntityStore

DIM = 128


def main(path: str, seed: int) -> None:
    store = EntityStore(Path(path), pack_fingerprint="crash-pack")
    rng = np.random.default_rng(seed)
    made: list[str] = []
    i = 0
    while True:
        i += 1
        vec = rng.standard_normal(DIM).astype(np.float32)
        meta = [{"name": "n", "type": "integer", "value": i}]
        e = store.create(
            instance="crash",
            model="EDGE_FACE_V1",
            model_name="EDGE_FACE_V1",
            collection="c",
            key=f"k{i}",
            metadata=meta,
            ttl=-1,
            vector=vec,
        )
        print(f"create {e.uuid}", flush=True)
        made.append(e.uuid)
        if i % 5 == 0:
            victim = made.pop(int(rng.integers(len(made))))
            if store.delete("crash", victim):
                print(f"delete {victim}", flush=True)
        if i % 7 == 0 and made:
            target = made[int(rng.integers(len(made)))]
            if store.update("crash", target, key=f"u{i}") is not None:
                print(f"update {target} u{i}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
