"""Every command answers --help (a user's first move on a box they don't know)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import COMMANDS, main
from tests.support.paths import REPO_ROOT


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


def test_bench_finds_the_checkouts_benchmarks_from_any_folder(tmp_path: Path) -> None:
    """`benchmarks/` is outside the package; from a checkout `bench` still reaches it, even
    when started elsewhere (the installed-copy message: tests/test_packaging.py)."""
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "bench", "models", "--help"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--runs" in proc.stdout  # the benchmark's own arguments, loaded from benchmarks/


def test_python_m_benchmarks_is_the_bench_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "gallery", "--help"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: edge-face bench gallery")
