"""Admission control: bounded inference off the event loop, fast 429 instead of queueing.

Why threads and not processes: onnxruntime and OpenVINO release the GIL while a graph runs,
so a few threads use the cores fully; the models then live once in memory, shared by every
worker (a process pool would load each model per process, multiplying RSS on a small box);
and decoded images (numpy arrays) go to a worker by reference instead of being pickled.

Why a counter and not a queue: a request past `queue_limit` is answered 429 at once, so
latency stays bounded under overload and the client decides when to retry.

Plain classes, no aiohttp: the per-request glue (`run_inference`, `admitted`) lives in
`edge.api.inference`, so the app keys in `edge.api.state` can name `Admission` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from edge.errors import EdgeError
from edge.runtime.backends import INFERENCE_WORK

T = TypeVar("T")


class TokenBucket:
    """`rate` tokens per second, burst of max(1, rate); thread-safe."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


class Admission:
    """Owns the inference thread pool, the in-flight counter and the per-key rate limits."""

    def __init__(self, threads: int, queue_limit: int, rate_limit_per_key: float = 0) -> None:
        self.threads = threads
        self.queue_limit = queue_limit
        self.rate_limit_per_key = rate_limit_per_key
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="edge-infer")
        self.in_flight = 0  # touched only on the event loop thread
        self._buckets: dict[str, TokenBucket] = {}

    # Rate limit (per api-key, per request) --------------------------------------------
    def check_rate(self, key_id: str) -> None:
        """Raise 429 when `key_id` exceeded its rate; a rate of 0 disables the limit."""
        if self.rate_limit_per_key <= 0:
            return
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = TokenBucket(self.rate_limit_per_key)
        if not bucket.take():
            raise EdgeError(
                429, f"rate limit of {self.rate_limit_per_key:g} requests/s for this api-key"
            )

    # Admission ------------------------------------------------------------------------
    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if self.in_flight >= self.queue_limit:
            raise EdgeError(
                429, f"server busy: {self.in_flight} requests in progress; retry shortly"
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(_work, fn, *args))

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _work(fn: Callable[..., T], *args: Any) -> T:
    """One admitted call, marked as inference work for its whole length (decode and store
    included), so the small models run on one thread while another request is in the pool
    and on every core when this is the only one (`edge.runtime.backends.INFERENCE_WORK`)."""
    with INFERENCE_WORK:
        return fn(*args)
