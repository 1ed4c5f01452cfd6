#!/usr/bin/env bash
# Set up (if needed) and run the edge-face service on its embedded defaults
# (127.0.0.1:8080; an api-key is generated and printed on the first start).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/tools/setup.sh"
exec "$ROOT/.venv/bin/edge-face" serve "$@"
