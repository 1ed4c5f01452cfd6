"""Type-check the project with mypy (config: `[tool.mypy]` in pyproject.toml); tools/test.sh
runs it before pytest so that a type error fails CI.

Usage: python tools/typecheck.py [--known FILE]

Why a wrapper and not plain `mypy`: while a package is being rewritten its open errors can be
listed in tools/mypy-known.txt (one `path: error: message  [code]` per line, no line numbers,
so unrelated edits do not invalidate it). Any error not on the list fails the run, and so does
a listed error that no longer occurs, so the list can only shrink. With no list file this is
exactly `mypy`: every error fails.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_KNOWN = ROOT / "tools" / "mypy-known.txt"
#: `path:line: error: message  [code]` (notes and summary lines are not errors)
_ERROR = re.compile(r"^(?P<path>[^:\n]+):\d+(?::\d+)?: error: (?P<rest>.*)$")


def errors_of(report: str) -> Counter[str]:
    """mypy's error lines without their line numbers, counted (one message may repeat)."""
    found: Counter[str] = Counter()
    for line in report.splitlines():
        m = _ERROR.match(line)
        if m:
            found[f"{m['path']}: error: {m['rest']}"] += 1
    return found


def read_known(path: Path) -> Counter[str]:
    if not path.is_file():
        return Counter()
    lines = (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines())
    return Counter(ln for ln in lines if ln and not ln.startswith("#"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument(
        "--known",
        type=Path,
        default=DEFAULT_KNOWN,
        help="list of accepted open errors (default: tools/mypy-known.txt, if present)",
    )
    args = ap.parse_args(argv)
    from mypy import api  # the test extra installs it; imported late so --help works without

    os.chdir(ROOT)  # mypy reads its files, strictness and plugins from ./pyproject.toml
    stdout, stderr, status = api.run([])
    found = errors_of(stdout)
    if status not in (0, 1) or (status == 1 and not found):  # a crash or a config error
        sys.stderr.write(stdout + stderr)
        print(f"typecheck: mypy failed to run (exit status {status})", file=sys.stderr)
        return 2
    known = read_known(args.known)
    new, fixed = found - known, known - found
    if new:
        print(stdout, end="")
        print(
            f"typecheck: {sum(new.values())} type error(s) not in {args.known.name}; "
            "fix them (the lines above give file and line):",
            file=sys.stderr,
        )
        for err in sorted(new.elements()):
            print(f"  {err}", file=sys.stderr)
    if fixed:
        print(
            f"typecheck: fixed, so delete from {args.known}: {sum(fixed.values())} line(s):",
            file=sys.stderr,
        )
        for err in sorted(fixed.elements()):
            print(f"  {err}", file=sys.stderr)
    if new or fixed:
        return 1
    tail = f" ({sum(known.values())} known open error(s) in {args.known.name})" if known else ""
    print(f"typecheck: ok{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
