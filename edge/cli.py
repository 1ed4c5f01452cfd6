"""`edge-face` command line: one entry point, one module per command.

The parser only: commands live in `edge.commands` (and the feature modules they name), the
benchmarks in a source checkout's `benchmarks/` package. Each command module exposes
`add_arguments(parser)` and `run(settings, args) -> int`, so a command's code lives next to
what it drives and this file only wires names to modules.

Errors: a mistake the operator can fix (`UserError`, a missing file, a missing optional
package) prints one line saying what to do and exits non-zero; anything else is a bug,
shown as one line too unless `-v` asks for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from edge import __version__
from edge.commands import bench
from edge.commands.bench import BENCHMARKS
from edge.config import Settings, load_settings
from edge.logsetup import configure_logging
from edge.usererror import UserError

log = logging.getLogger("edge.cli")

#: Module names under this prefix are benchmarks, loaded through `edge.commands.bench`.
BENCH_PREFIX = "benchmarks."

#: (command words, module, help). Modules are imported only when the command runs, so
#: `--help` stays fast and a broken optional extra cannot break unrelated commands.
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("serve",), "edge.commands.serve", "run the REST service (and configured cameras/MQTT)"),
    (("camera",), "edge.commands.camera", "watch one camera and publish recognitions"),
    (
        ("enroll",),
        "edge.commands.enroll",
        "enrol photos (a file, or a folder of per-person folders) through the API",
    ),
    (
        ("people", "list"),
        "edge.commands.people",
        "enrolled people: keys, enrolment counts, collections",
    ),
    (
        ("people", "show"),
        "edge.commands.people",
        "one person's enrolments (uuid, collection, expiry)",
    ),
    (("people", "delete"), "edge.commands.people", "delete every enrolment of one key"),
    (("models", "fetch"), "edge.commands.models", "install the model pack (verified)"),
    (("models", "list"), "edge.commands.models", "list the pack's files, roles, licences"),
    (("models", "verify"), "edge.commands.models", "check installed files against sha256"),
    (
        ("models", "quantize"),
        "edge.commands.models",
        "INT8 variants of the heavy models, accuracy-gated",
    ),
    (
        ("models", "reenrol-report"),
        "edge.commands.reenrol",
        "which enrolments a move to another face model (v2, cc0) must re-enrol",
    ),
    (("config", "show"), "edge.commands.config", "print the effective config (secrets masked)"),
    (("backup",), "edge.commands.admin", "copy the gallery to a file while the service runs"),
    (("restore",), "edge.commands.admin", "replace the gallery with a backup (service stopped)"),
    (("keys", "list"), "edge.commands.admin", "ids of the valid generated api-keys"),
    (("keys", "rotate"), "edge.commands.admin", "add an api-key; old ones stay valid till pruned"),
    (("keys", "prune"), "edge.commands.admin", "revoke all but the newest api-key(s)"),
    (("eval", "faces"), "edge.evaluation.faces", "verification / 1:N / detection / attributes"),
    (("eval", "liveness"), "edge.evaluation.liveness", "liveness APCER / BPCER / ACER / AUC"),
    # Benchmarks live outside the package (a source checkout's `benchmarks/`).
    *((("bench", name), f"{BENCH_PREFIX}{name}", help_) for name, help_ in BENCHMARKS),
]


class _LazyCommand:
    """Defers the import of a command module until its parser is really needed."""

    def __init__(self, module: str) -> None:
        self.module_name = module
        self._module: ModuleType | None = None

    @property
    def module(self) -> ModuleType:
        if self._module is None:
            if self.module_name.startswith(BENCH_PREFIX):
                self._module = bench.load(self.module_name.removeprefix(BENCH_PREFIX))
            else:
                self._module = importlib.import_module(self.module_name)
        return self._module


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="YAML config file (also EDGE_CONFIG)")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, tracebacks on errors"
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as text or one JSON object per line (default: logging.format)",
    )


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-face",
        description="On-device face recognition and liveness with an AnySee-compatible API.",
    )
    parser.add_argument("--version", action="version", version=f"edge-face {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    words = list(argv or [])
    for path, module, help_ in COMMANDS:
        if len(path) == 1:
            p = sub.add_parser(path[0], help=help_, description=help_)
        else:
            if path[0] not in groups:
                g = sub.add_parser(path[0], help=f"{path[0]} commands")
                groups[path[0]] = g.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
            p = groups[path[0]].add_parser(path[1], help=help_, description=help_)
        lazy = _LazyCommand(module)
        p.set_defaults(_command=lazy, _path=path)
        _add_common(p)
        # Only the command being run needs its own arguments (avoids importing every module).
        if list(path) == words[: len(path)]:
            lazy.module.add_arguments(p)
    # `edge-face eval` alone means `eval faces`.
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"] and (len(argv) == 1 or argv[1].startswith("-")):
        argv.insert(1, "faces")
    verbose = "-v" in argv or "--verbose" in argv
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if not getattr(args, "_command", None):
            parser.print_help()
            return 2
        configure_logging(
            logging.DEBUG if args.verbose else logging.INFO, args.log_format or "text"
        )
        settings: Settings = load_settings(args.config)
        configure_logging(
            logging.DEBUG if args.verbose else settings.log_level,
            args.log_format or settings.logging.format,
        )
        return int(args._command.module.run(settings, args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # SystemExit (argparse, --help) passes through untouched
        return report_error(e, verbose)


def report_error(e: Exception, verbose: bool) -> int:
    """One line on stderr for `e` (what to do next); the traceback only with -v."""
    code = 1
    if isinstance(e, UserError):
        msg, code = str(e), e.exit_code
    elif isinstance(e, ModuleNotFoundError) and e.name:
        package = e.name.split(".")[0]
        msg = (
            f"this command needs the Python package {package!r}, which is not installed: "
            f"pip install {package}"
        )
    elif isinstance(e, OSError) and e.filename:
        msg, code = f"{e.strerror or e}: {e.filename}", 2
    elif isinstance(e, (FileNotFoundError, PermissionError, NotADirectoryError)):
        msg, code = str(e), 2  # raised by a command with its own message (no filename)
    else:
        msg = (
            f"unexpected error: {type(e).__name__}: {e} "
            "(run again with -v for the traceback; please report it)"
        )
    if verbose:
        log.error("%s", msg, exc_info=None if isinstance(e, UserError) else e)
    else:
        print(f"edge-face: {msg}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
