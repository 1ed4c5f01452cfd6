"""`edge-face models reenrol-report`: what of the gallery a move to another face model needs.

A stored vector cannot be converted to another recognizer: the images it came from are
never stored. Moving a box from V1 (`default` pack) to V2 (`v2`) or CC0 (`cc0`) therefore
means enrolling those people again from their photos. This report reads the gallery file
(read-only, safe while the service runs) and lists, per instance / collection / key, the
live enrolments whose vectors were made by another pack than the target one: exactly the
rows the target pack will keep but not search (its fingerprint differs).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge.config import PACK_FACE_NAMES, Settings
from edge.evaluation.report import table
from edge.runtime.manifest import Manifest
from edge.runtime.registry import pack_fingerprint
from edge.usererror import UserError

__all__ = ["Report", "add_arguments", "reenrol_report", "run"]

V1_NAME = "EDGE_FACE_V1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pack",
        default="v2",
        help="the pack to move to (default: v2; cc0 = dlib only; default = V1)",
    )
    p.add_argument("--store", type=Path, help="gallery file (default: the configured store)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


@dataclass
class Group:
    instance: str
    collection: str
    key: str
    enrolments: int
    made_by: str  # pack name(s) of the stored vectors, or their fingerprint


@dataclass
class Report:
    target_pack: str
    target_model: str
    target_fingerprint: str
    live: int
    ready: int  # already made by the target pack
    to_reenrol: int
    groups: list[Group]


def _pack_names(manifest: Manifest) -> dict[str, str]:
    by_fp: dict[str, list[str]] = {}
    for name in manifest.packs:
        by_fp.setdefault(pack_fingerprint(manifest, name), []).append(name)
    return {fp: "/".join(names) for fp, names in by_fp.items()}


def reenrol_report(store: Path, manifest: Manifest, target: str) -> Report:
    """Live enrolments whose vectors the `target` pack cannot search, grouped by key."""
    if target not in manifest.packs:
        raise UserError(f"unknown model pack {target!r}; use one of {sorted(manifest.packs)}")
    if not store.is_file():
        raise UserError(f"no gallery at {store}: check data_dir / store.path, or use --store")
    fp = pack_fingerprint(manifest, target)
    names = _pack_names(manifest)
    conn = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT instance, collection, key, pack_fingerprint FROM entities WHERE expires_at > ?",
            (int(time.time()),),
        ).fetchall()
    except sqlite3.DatabaseError as e:
        raise UserError(f"{store} is not an edge-face gallery ({e})") from None
    finally:
        conn.close()
    stale = Counter((i, c, k, names.get(f, f)) for i, c, k, f in rows if f != fp)
    groups = [Group(i, c, k, n, by) for (i, c, k, by), n in sorted(stale.items())]
    return Report(
        target_pack=target,
        target_model=PACK_FACE_NAMES.get(target, V1_NAME),
        target_fingerprint=fp,
        live=len(rows),
        ready=len(rows) - sum(stale.values()),
        to_reenrol=sum(stale.values()),
        groups=groups,
    )


def format_report(r: Report) -> str:
    out = [
        f"moving to pack {r.target_pack} ({r.target_model}, fingerprint {r.target_fingerprint})"
        f": {r.live} live enrolments, {r.ready} already made by it, {r.to_reenrol} to re-enrol",
    ]
    if r.groups:
        out.append(
            table(
                ["instance", "collection", "key", "enrolments", "vectors made by pack"],
                [[g.instance, g.collection, g.key, g.enrolments, g.made_by] for g in r.groups],
            )
        )
        out.append(
            "Vectors cannot be converted (the photos are not stored): enrol these people again "
            "from their photos with the new pack running (`edge-face enroll`); the old rows "
            "stay listed but unsearched until deleted by uuid (`edge-face people show KEY`)."
        )
    return "\n".join(out)


def run(settings: Settings, args: argparse.Namespace) -> int:
    manifest = Manifest.load(settings.models.manifest)
    report = reenrol_report(args.store or settings.store_path, manifest, args.pack)
    if args.json:
        data: dict[str, Any] = asdict(report)
        print(json.dumps(data, indent=1))
    else:
        print(format_report(report))
    return 0
