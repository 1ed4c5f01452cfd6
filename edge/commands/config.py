"""`edge-face config show`: the effective configuration, secrets masked."""

from __future__ import annotations

import argparse
import json

import yaml

from edge.config import Settings, masked_dump


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")


def run(settings: Settings, args: argparse.Namespace) -> int:
    data = masked_dump(settings)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0
