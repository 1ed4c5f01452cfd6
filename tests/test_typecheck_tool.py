"""tools/typecheck.py: the type-check gate of tools/test.sh (mypy plus a list of known errors).

The gate must fail on an error that is not listed and on a listed error that is gone; the
end-to-end case runs the real mypy over the real tree with a doctored list.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tools.typecheck import DEFAULT_KNOWN, ROOT, errors_of, read_known

REPORT = """\
edge/a.py:12: error: Returning Any from function declared to return "int"  [no-any-return]
edge/a.py:40: error: Returning Any from function declared to return "int"  [no-any-return]
edge/a.py:40: note: See https://mypy.readthedocs.io/
edge/b.py:3:7: error: Name "x" is not defined  [name-defined]
Found 3 errors in 2 files (checked 2 source files)
"""


def test_errors_drop_line_numbers_keep_repeats_and_skip_notes() -> None:
    found = errors_of(REPORT)
    assert found == {
        'edge/a.py: error: Returning Any from function declared to return "int"  '
        "[no-any-return]": 2,
        'edge/b.py: error: Name "x" is not defined  [name-defined]': 1,
    }


def test_known_list_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    known = tmp_path / "known.txt"
    known.write_text("# why\n\nedge/b.py: error: x  [c]\nedge/b.py: error: x  [c]\n")
    assert read_known(known) == {"edge/b.py: error: x  [c]": 2}
    assert read_known(tmp_path / "absent.txt") == {}


def test_gate_fails_on_unlisted_and_on_fixed_errors(tmp_path: Path) -> None:
    """With one real open error left off the list and a stale line added, both are named."""
    listed = sorted(read_known(DEFAULT_KNOWN).elements())
    stale = "edge/nowhere.py: error: this error does not occur  [misc]"
    doctored = tmp_path / "known.txt"
    doctored.write_text("\n".join([*listed[1:], stale]) + "\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "typecheck.py"), "--known", str(doctored)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "delete from" in done.stderr and stale in done.stderr
    if listed:  # once every error is fixed there is none to leave off
        assert "not in known.txt" in done.stderr and listed[0] in done.stderr
