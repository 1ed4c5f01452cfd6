#!/usr/bin/env bash
# Set up edge-face in ./.venv on a fresh Debian/Ubuntu machine (Python >= 3.10) and install
# the default model pack. Called by run.sh and test.sh; safe to run again (idempotent): a
# second run calls neither pip nor the network, and models already verified are kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EXTRA="${1:-}"   # "test" adds the test dependencies and mosquitto

need_apt=()
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' || {
  echo "edge-face needs Python >= 3.10 (found $(python3 --version 2>&1))" >&2; exit 1; }
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ "$EXTRA" = "test" ] && ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  need_apt+=(mosquitto)
fi
# the /docs test drives Debian's chromium (Selenium); without root to install it, it skips
if [ "$EXTRA" = "test" ] && ! { command -v chromium && command -v chromedriver; } >/dev/null; then
  if [ "$(id -u)" = 0 ]; then need_apt+=(chromium chromium-driver)
  else echo "note: the /docs browser test skips: sudo apt-get install chromium chromium-driver" >&2
  fi
fi
# the outbound-connection audit also watches the process tree with strace when it exists
if [ "$EXTRA" = "test" ] && ! command -v strace >/dev/null && [ "$(id -u)" = 0 ]; then
  need_apt+=(strace)
fi
# the PostgreSQL hub tests start a private cluster of their own (the system service stays off)
if [ "$EXTRA" = "test" ] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  need_apt+=(postgresql)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${need_apt[*]}"
    # no package may start its service on install (postgresql's would take port 5432)
    rc_guard=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      rc_guard=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    [ -z "$rc_guard" ] || rm -f /usr/sbin/policy-rc.d
  else
    echo "please install: sudo apt-get install ${need_apt[*]}" >&2; exit 1
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# pip runs only when pyproject.toml (dependencies, entry points) or the interpreter changed
# since the last successful setup, so a restart of run.sh needs no package index (offline
# boxes). The package itself is installed editable: code changes need no reinstall.
STAMP=.venv/.edge-face-setup
WANT="$( (cat pyproject.toml; .venv/bin/python -VV) | sha256sum | cut -c1-64)"
HAVE="$(cat "$STAMP" 2>/dev/null || true)"
if [ -x .venv/bin/edge-face ] && { [ "$HAVE" = "$WANT ${EXTRA:-base}" ] || [ "$HAVE" = "$WANT test" ]; }; then
  :  # already set up for these dependencies
else
  rm -f "$STAMP"
  if [ "$EXTRA" = "test" ]; then
    .venv/bin/python -m pip install -q -e ".[test]"
  else
    .venv/bin/python -m pip install -q -e .
  fi
  echo "$WANT ${EXTRA:-base}" >"$STAMP"
fi

# Models: from the local mirror when there is one (offline sites, CI), else the public sources.
MIRROR="${EDGE_MODELS__MIRROR:-$ROOT/../shared/models}"
if [ -d "$MIRROR" ]; then
  .venv/bin/edge-face models fetch --from "$MIRROR"
else
  .venv/bin/edge-face models fetch
fi
