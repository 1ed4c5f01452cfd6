"""Percentiles and aligned text tables for the figures `edge-face eval` prints.

They live in the product (not in the benchmarks) because evaluation is a product feature:
an installed box must be able to print its own accuracy table without the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def p(values: np.ndarray, q: float) -> float:
    """The `q`-th percentile of `values`; NaN for an empty sample instead of an error."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, a dashed rule under the header, floats at .2f."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            "  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(r))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return f"{c:.2f}"
    return str(c)
