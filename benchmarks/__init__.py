"""Benchmarks: each prints p50/p95, throughput, peak RSS and a same-run baseline ratio.

Measurement code, not product: this package sits beside `edge/` in a source checkout and is
not in the wheel. Run it as `python -m benchmarks http ...` from the checkout, or as
`edge-face bench http ...`, which dispatches here when a checkout is present.
"""

from __future__ import annotations

from pathlib import Path

#: The source checkout this package lives in: subprocesses (a served copy, a child that
#: reopens a store) run from here so that they import the same `edge` and `benchmarks`.
CHECKOUT = Path(__file__).resolve().parents[1]

#: Marks this package as edge-face's own, so the CLI never dispatches to an unrelated
#: top-level `benchmarks` package that some other distribution may have installed.
EDGE_FACE_BENCHMARKS = True
