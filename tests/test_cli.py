"""Every command answers --help (a user's first move on a box they don't know)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge.cli import COMMANDS, main


@pytest.mark.parametrize("path", sorted({c[0] for c in COMMANDS}))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", *path, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: edge-face " + " ".join(path) in proc.stdout


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
