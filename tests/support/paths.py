"""Where the checkout, the shared test photos and the model mirror are.

Found from this file, not from the product: the installed package knows nothing of the
checkout it was built from (`EDGE_SHARED_DIR` overrides the shared folder).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The source checkout (the folder holding `edge/`, `tests/`, `pyproject.toml`).
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EDGE_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
TESTDATA = SHARED / "testdata"
MODEL_MIRROR = SHARED / "models"
