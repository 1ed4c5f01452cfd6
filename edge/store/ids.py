"""Time-ordered entity ids in the UUIDv7 layout (RFC 9562).

Clients page with `after=<uuid>` and expect string order to be creation order (api.md §2.3),
so ids must sort as strings exactly like they were made. A plain UUIDv7 only orders by
millisecond; within one millisecond its random bits would shuffle the order. Here the 74 bits
after the timestamp act as a counter seeded with random bits each new millisecond and
incremented within it (RFC 9562 §6.2, "monotonic random"), and the timestamp never goes
backwards even if the wall clock does.
"""

from __future__ import annotations

import secrets
import threading
import uuid as _uuid

_COUNTER_BITS = 74  # 12 bits rand_a + 62 bits rand_b
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
# A fresh millisecond seeds the counter with its top bit clear, leaving at least 2**73
# increments before it would overflow into the next millisecond.
_SEED_BITS = _COUNTER_BITS - 1


class UuidV7Generator:
    """Thread-safe, strictly increasing UUIDv7 strings; the caller supplies the time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def next(self, now_ms: int) -> str:
        """A new id for `now_ms` (unix milliseconds), greater than every id made before."""
        with self._lock:
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = secrets.randbits(_SEED_BITS)
            else:  # same millisecond, or the clock stepped back: count on from the last id
                self._counter += 1
                if self._counter > _COUNTER_MAX:
                    self._last_ms += 1
                    self._counter = secrets.randbits(_SEED_BITS)
            return format_uuid7(self._last_ms, self._counter)


def format_uuid7(unix_ms: int, counter: int) -> str:
    """Lay out a 48-bit millisecond timestamp and a 74-bit counter as a UUIDv7 string."""
    if not 0 <= unix_ms < 1 << 48:
        raise ValueError("timestamp out of the 48-bit UUIDv7 range")
    rand_a = (counter >> 62) & 0xFFF
    rand_b = counter & ((1 << 62) - 1)
    value = (unix_ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(_uuid.UUID(int=value))


def uuid7_unix_ms(value: str) -> int:
    """The creation millisecond encoded in a UUIDv7 string."""
    return _uuid.UUID(value).int >> 80
