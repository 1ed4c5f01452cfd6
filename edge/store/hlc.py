"""Hybrid logical clock: the version stamp of every replicated field group.

A stamp is 48 bits of unix milliseconds, a 16-bit counter and the origin id of the replica
that made it. Stamps order like wall time when clocks agree, never go backwards on one
replica (a write after receiving a remote stamp is stamped after it) and are unique across
replicas (ties break by origin), so last-writer-wins picks the same winner everywhere.

It lives with the store, which stamps its own writes; `edge.sync` merges by it. A remote
stamp too far ahead of the wall clock is refused (`ClockSkewError`): adopting it would pin
every later local write behind a box with a wrong clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

MS_BITS: Final = 48
COUNTER_BITS: Final = 16
MAX_MS: Final = (1 << MS_BITS) - 1
MAX_COUNTER: Final = (1 << COUNTER_BITS) - 1
DEFAULT_MAX_AHEAD_MS: Final = 60_000


class ClockSkewError(ValueError):
    """A remote stamp is further ahead of this replica's wall clock than allowed."""


@dataclass(frozen=True, order=True)
class Hlc:
    """One stamp; fields in comparison order (ms, counter, origin)."""

    ms: int
    counter: int
    origin: str

    def __post_init__(self) -> None:
        if not 0 <= self.ms <= MAX_MS:
            raise ValueError(f"hlc milliseconds {self.ms} outside 48 bits")
        if not 0 <= self.counter <= MAX_COUNTER:
            raise ValueError(f"hlc counter {self.counter} outside 16 bits")
        if not self.origin or ":" in self.origin:
            raise ValueError("hlc origin must be non-empty and contain no ':'")

    @property
    def packed(self) -> int:
        """The 64-bit time part: ms << 16 | counter."""
        return (self.ms << COUNTER_BITS) | self.counter

    def encode(self) -> str:
        """`<16 hex digits>:<origin>`; strings sort exactly like the stamps (fixed width)."""
        return f"{self.packed:016x}:{self.origin}"

    @classmethod
    def decode(cls, text: str) -> Hlc:
        head, sep, origin = text.partition(":")
        if not sep or len(head) != 16:
            raise ValueError(f"not an hlc stamp: {text[:60]!r}")
        packed = int(head, 16)
        return cls(packed >> COUNTER_BITS, packed & MAX_COUNTER, origin)

    @classmethod
    def from_packed(cls, packed: int, origin: str) -> Hlc:
        return cls(packed >> COUNTER_BITS, packed & MAX_COUNTER, origin)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HybridClock:
    """Thread-safe HLC of one replica (`origin`)."""

    def __init__(
        self,
        origin: str,
        *,
        wall: Callable[[], int] = wall_ms,
        max_ahead_ms: int = DEFAULT_MAX_AHEAD_MS,
    ) -> None:
        Hlc(0, 0, origin)  # validates the origin
        self.origin = origin
        self._wall = wall
        self.max_ahead_ms = max_ahead_ms
        self._lock = threading.Lock()
        self._ms = 0
        self._counter = 0
        self.last_skew_ms = 0  # remote ms minus wall ms of the last observed stamp

    def _advance(self, ms: int, counter: int) -> None:
        if counter > MAX_COUNTER:  # 65536 events in one ms: borrow the next millisecond
            ms, counter = ms + 1, 0
        self._ms, self._counter = ms, counter

    def now(self) -> Hlc:
        """A fresh stamp for a local write, after every stamp made or observed before."""
        with self._lock:
            wall = self._wall()
            if wall > self._ms:
                self._advance(wall, 0)
            else:
                self._advance(self._ms, self._counter + 1)
            return Hlc(self._ms, self._counter, self.origin)

    def seed(self, stamp: Hlc) -> None:
        """Start after a stamp this replica already holds (on open), without a skew check."""
        with self._lock:
            if (stamp.ms, stamp.counter) > (self._ms, self._counter):
                self._ms, self._counter = stamp.ms, stamp.counter

    def check(self, remote: Hlc) -> None:
        """ClockSkewError when `remote` is more than `max_ahead_ms` ahead of the wall clock."""
        ahead = remote.ms - self._wall()
        self.last_skew_ms = ahead
        if ahead > self.max_ahead_ms:
            raise ClockSkewError(
                f"remote stamp from {remote.origin!r} is {ahead} ms ahead of this clock "
                f"(limit {self.max_ahead_ms} ms); fix the clock of that replica (NTP)"
            )

    def observe(self, remote: Hlc) -> None:
        """Merge a received stamp so later local stamps sort after it (checked first)."""
        self.check(remote)
        with self._lock:
            if (remote.ms, remote.counter) > (self._ms, self._counter):
                self._ms, self._counter = remote.ms, remote.counter
