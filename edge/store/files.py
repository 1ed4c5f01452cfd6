"""Owner-only permissions for the gallery: face vectors are biometric data.

The data directory is created 0700 and the database file 0600 *before* SQLite opens it:
SQLite gives its `-wal`/`-shm` companions the main file's mode, so creating the main file
private keeps every file of the gallery private, whatever the process umask.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
#: Files SQLite keeps beside a database (WAL mode uses the first two).
COMPANION_SUFFIXES: Final = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) with the last component 0700.

    An existing directory is not changed (it may be shared, e.g. a configured store path in
    /srv), but a warning says how to close it if others can read it.
    """
    try:
        path.mkdir(parents=True, mode=DIR_MODE)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning(
                "data directory %s is accessible to other users (mode %04o); it holds face "
                "data: run 'chmod 700 %s'",
                path,
                mode,
                path,
            )
        return
    os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask; make it exact


def _tighten(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & ~FILE_MODE:
        os.chmod(path, FILE_MODE)
        log.warning(
            "%s had mode %04o (readable beyond the service user); tightened to 0600",
            path,
            mode,
        )


def private_database(path: Path) -> None:
    """Create the SQLite file 0600 if missing; tighten it and its companions if looser."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        pass
    else:
        os.close(fd)  # an empty file is a valid, empty SQLite database
        os.chmod(path, FILE_MODE)
    for p in (path, *(path.with_name(path.name + s) for s in COMPANION_SUFFIXES)):
        _tighten(p)
