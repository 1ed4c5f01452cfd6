"""INT8 variants of the heavy models (thin wrapper over `edge-face models quantize`).

Usage: python tools/quantize.py [--roles ROLE ...] [--calib DIR ...] [--max-images N]
                                [--dir MODEL_DIR] [--data TESTDATA] [--runs N]

Same arguments and output as the command; kept in tools/ because design.md names a tool
that produces the INT8 variants from calibration images.
"""

from __future__ import annotations

import sys

from edge.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["models", "quantize", *sys.argv[1:]]))
