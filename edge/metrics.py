"""A tiny thread-safe Prometheus text registry (counters and histograms).

Kept dependency-free and at the bottom of the graph so that runtime (per-model inference
time) and api (per-route latency) can both record into it.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(labels: tuple[tuple[str, str], ...], extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Histogram:
    def __init__(self, name: str, help_: str, buckets: tuple[float, ...] = DEFAULT_BUCKETS):
        self.name, self.help, self.buckets = name, help_, buckets
        self._lock = threading.Lock()
        self._series: dict[tuple[tuple[str, str], ...], list[float]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            s = self._series.get(key)
            if s is None:
                s = self._series[key] = [0.0] * (len(self.buckets) + 2)  # buckets, sum, count
            idx = bisect.bisect_left(self.buckets, value)
            if idx < len(self.buckets):
                s[idx] += 1
            s[-2] += value
            s[-1] += 1

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            for key, s in sorted(self._series.items()):
                cum = 0.0
                for i, b in enumerate(self.buckets):
                    cum += s[i]
                    le = f'le="{b:g}"'
                    out.append(f"{self.name}_bucket{_labels(key, le)} {cum:g}")
                inf = 'le="+Inf"'
                out.append(f"{self.name}_bucket{_labels(key, inf)} {s[-1]:g}")
                out.append(f"{self.name}_sum{_labels(key)} {s[-2]:.6f}")
                out.append(f"{self.name}_count{_labels(key)} {s[-1]:g}")
        return out

    def snapshot(self) -> dict[tuple[tuple[str, str], ...], tuple[float, float]]:
        """(sum, count) per label set, for tests and /models."""
        with self._lock:
            return {k: (s[-2], s[-1]) for k, s in self._series.items()}


class Counter:
    def __init__(self, name: str, help_: str):
        self.name, self.help = name, help_
        self._lock = threading.Lock()
        self._values: dict[tuple[tuple[str, str], ...], float] = defaultdict(float)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        with self._lock:
            self._values[tuple(sorted(labels.items()))] += amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            for key, v in sorted(self._values.items()):
                out.append(f"{self.name}{_labels(key)} {v:g}")
        return out


class Gauge:
    """A value that goes up and down (set, not incremented): backlogs, ages, timestamps."""

    def __init__(self, name: str, help_: str):
        self.name, self.help = name, help_
        self._lock = threading.Lock()
        self._values: dict[tuple[tuple[str, str], ...], float] = {}

    def set(self, value: float, **labels: str) -> None:
        with self._lock:
            self._values[tuple(sorted(labels.items()))] = value

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        with self._lock:
            for key, v in sorted(self._values.items()):
                out.append(f"{self.name}{_labels(key)} {v:g}")
        return out


class Registry:
    def __init__(self) -> None:
        self._items: dict[str, Histogram | Counter | Gauge] = {}
        self._lock = threading.Lock()

    def histogram(
        self, name: str, help_: str, buckets: tuple[float, ...] = DEFAULT_BUCKETS
    ) -> Histogram:
        with self._lock:
            item = self._items.setdefault(name, Histogram(name, help_, buckets))
        assert isinstance(item, Histogram)
        return item

    def counter(self, name: str, help_: str) -> Counter:
        with self._lock:
            item = self._items.setdefault(name, Counter(name, help_))
        assert isinstance(item, Counter)
        return item

    def gauge(self, name: str, help_: str) -> Gauge:
        with self._lock:
            item = self._items.setdefault(name, Gauge(name, help_))
        assert isinstance(item, Gauge)
        return item

    def render(self) -> str:
        with self._lock:
            items = list(self._items.values())
        lines: list[str] = []
        for item in items:
            lines.extend(item.render())
        return "\n".join(lines) + "\n"


#: The process-wide registry.
REGISTRY = Registry()
MODEL_INFERENCE = REGISTRY.histogram(
    "edge_model_inference_seconds", "Time of one inference call per model role and backend"
)
