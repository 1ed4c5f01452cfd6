"""Store fixtures: real SQLite files in tmp_path and a clock the test moves by hand.

The store tests are unit tests of `EntityStore`: they build it directly (elsewhere only
`edge.engine.open_store` does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_helpers import FINGERPRINT, ManualClock

from edge.store import EntityStore


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "entities.sqlite3"


@pytest.fixture
def open_store(db_path: Path, clock: ManualClock) -> Iterator[Callable[..., EntityStore]]:
    """Open (or reopen) the store on the test's file; every store is closed at teardown."""
    opened: list[EntityStore] = []

    def _open(**kw: Any) -> EntityStore:
        kw.setdefault("pack_fingerprint", FINGERPRINT)
        kw.setdefault("clock", clock)
        s = EntityStore(kw.pop("path", db_path), **kw)
        opened.append(s)
        return s

    yield _open
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store: Callable[..., EntityStore]) -> EntityStore:
    return open_store()
