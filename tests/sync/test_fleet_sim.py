"""CI's short seed of the fault-injection run (tools/fleet_sim.py): real node processes,
SIGKILLs of boxes and the hub, partitions, then the checker (exit 0 = nothing lost,
nothing resurrected, no duplicates, equal replicas, last writer wins)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def test_a_short_seeded_fault_run_loses_and_resurrects_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "tools/fleet_sim.py", "--seed", "3", "--boxes", "3", "--ops", "300",
         "--kills", "6", "--hub-kills", "2", "--partitions", "5", "--dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for line in ("lost: 0", "resurrected: 0", "duplicated: 0", "digest mismatches: 0",
                 "not the LWW winner: 0"):  # fmt: skip
        assert line in out, out[-3000:]
    assert "SIGKILLs (2 of the hub)" in out
