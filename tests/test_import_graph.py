"""The product's import graph points one way, has no cycle and never reaches the benchmarks.

The check itself lives in tools/import_graph.py (runnable by hand, `--graph` prints it); the
synthetic trees below prove that it does catch each kind of violation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.paths import REPO_ROOT
from tools.import_graph import iter_modules, violations

#: Imports every module named on the command line, then names every module loaded.
IMPORT_ALL = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_the_package_import_graph_points_one_way_without_cycles() -> None:
    assert violations() == []


def test_importing_every_product_module_loads_no_benchmark() -> None:
    # Run from the checkout, where `benchmarks` *is* importable: only an import would load it.
    # Listed from the files (edge.api has no __init__.py, so pkgutil would skip it).
    modules = [name for name, _ in iter_modules()]
    assert {"edge", "edge.cli", "edge.commands.bench", "edge.api.server"} <= set(modules)
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *modules],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(modules) <= set(loaded)
    leaked = [m for m in loaded if m.split(".")[0] in ("benchmarks", "tests", "tools")]
    assert leaked == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for package in ("edge", "edge_face"):
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


def test_the_check_reports_upward_imports_even_inside_functions(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "edge/vision/__init__.py": "",
            "edge/vision/pipeline.py": "def f() -> None:\n    from edge.api import app\n",
            "edge/api/__init__.py": "",
            "edge/api/app.py": "from ..vision import pipeline\n",
            "edge/runtime/__init__.py": "from edge.imaging import decode\n",
            "edge/imaging/__init__.py": "",
            "edge/imaging/decode.py": "import edge.runtime\n",
        },
    )
    found = violations(root)
    text = "\n".join(found)
    assert "edge.vision.pipeline:2 imports edge.api.app: edge.vision may not import edge.api" in (
        text
    )
    assert "edge.imaging.decode:1 imports edge.runtime" in text
    assert "import cycle between units: edge.imaging <-> edge.runtime" in found
    assert "import cycle between modules: edge.api.app <-> edge.vision.pipeline" in found
    # The relative import resolves to edge.vision.pipeline: api -> vision points down, allowed.
    assert not [line for line in found if line.startswith("edge.api.app:")]


def test_the_check_reports_benchmarks_module_cycles_and_unlisted_units(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "edge/evaluation/__init__.py": "",
            "edge/evaluation/faces.py": "from benchmarks.stats import p\n",
            "edge/store/__init__.py": "",
            "edge/store/a.py": "from edge.store import b\n",
            "edge/store/b.py": "from . import a\n",
            "edge/gadget.py": "",
            "edge/api/__init__.py": "from edge import gadget\n",
        },
    )
    found = violations(root)
    assert "edge.evaluation.faces:1 imports benchmarks.stats.p (not part of the product)" in found
    assert "import cycle between modules: edge.store.a <-> edge.store.b" in found
    assert "edge.gadget is in no layer: add it to LAYERS in this file" in found
