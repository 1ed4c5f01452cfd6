#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: lint, type check (mypy), then pytest against
# real models, real images from ../shared/testdata, a real mosquitto broker and real HTTP on
# loopback.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/tools/setup.sh" test
cd "$ROOT"
.venv/bin/ruff check edge benchmarks tests tools
.venv/bin/python tools/typecheck.py   # mypy, strict (pyproject.toml [tool.mypy])
HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}" .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
