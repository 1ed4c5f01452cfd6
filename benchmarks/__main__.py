"""`python -m benchmarks NAME [options]`: the same as `edge-face bench NAME [options]`."""

from __future__ import annotations

import sys

from edge.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
