"""`edge-face backup|restore` and `edge-face keys list|rotate|prune`: a box's upkeep.

Backup uses SQLite's online backup API, which copies a consistent snapshot page by page
while the service keeps reading and writing (WAL readers never block it), so a nightly
cron job needs no downtime. Restore goes the other way through the same API, into the
live database file: SQLite takes the write lock, so the file is never half-replaced and
the WAL stays consistent. It refuses while a process has the gallery open, because the
running service would keep serving its in-memory index of the old gallery.

Keys: the generated key file (`<data_dir>/api-key`) may hold several keys; rotation adds a
new one first and keeps the old ones valid until `prune`, and the running service picks
up each change within a second (see `edge.api.keyring`). Keys written in the config
(`server.api_keys`) are the operator's to edit; the commands say so rather than guess.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import secrets
import sqlite3
import time
from pathlib import Path

from edge.api.keyring import read_key_file, write_key_file
from edge.config import Settings
from edge.store.schema import MIGRATIONS
from edge.usererror import UserError

#: Tables every gallery file of a supported schema has.
REQUIRED_TABLES = frozenset({"entities", "changes"})


class AdminError(UserError):
    """A backup, restore or key operation cannot go ahead; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


# Arguments -----------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    words = p.prog.split()[1:]
    if words == ["backup"]:
        p.add_argument("file", type=Path, help="backup file to write (mode 0600)")
        p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    elif words == ["restore"]:
        p.add_argument("file", type=Path, help="a file written by `edge-face backup`")
        p.add_argument(
            "--force",
            action="store_true",
            help="restore even while a process has the gallery open (restart it afterwards)",
        )
    elif words == ["keys", "prune"]:
        p.add_argument(
            "--keep", type=int, default=1, help="how many of the newest keys stay valid (1)"
        )


def run(settings: Settings, args: argparse.Namespace) -> int:
    """AdminError reaches the CLI, which prints its one line and exits 1."""
    match tuple(args._path):
        case ("backup",):
            return _backup_cmd(settings, args)
        case ("restore",):
            return _restore_cmd(settings, args)
        case ("keys", "list"):
            return _keys_list(settings)
        case ("keys", "rotate"):
            return _keys_rotate(settings)
        case ("keys", "prune"):
            return _keys_prune(settings, args.keep)
    raise AssertionError(f"unhandled command {args._path}")


# Files -----------------------------------------------------------------------------------------
def _owner_like(path: Path, reference: Path) -> None:
    """Give `path` the owner of `reference` (root restoring for the service user)."""
    if os.geteuid() != 0:
        return
    st = reference.stat()
    os.chown(path, st.st_uid, st.st_gid)


def _sidecars_like_store(store: Path) -> None:
    """Hand SQLite's -wal/-shm files that root just created to the gallery's owner.

    Otherwise a service running as its own user could not open them on its next start.
    """
    if os.geteuid() != 0 or not store.exists():
        return
    for extra in (Path(f"{store}-wal"), Path(f"{store}-shm")):
        with contextlib.suppress(FileNotFoundError):
            _owner_like(extra, store)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_private(path: Path) -> None:
    """Create an empty file with mode 0600 before SQLite opens it (no umask window)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def check_gallery_file(path: Path) -> tuple[int, int]:
    """(schema version, entity count) of a gallery file, or AdminError saying what is wrong."""
    if not path.is_file():
        raise AdminError(f"{path}: no such file")
    latest = MIGRATIONS[-1].version
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise AdminError(f"{path}: cannot open as SQLite ({e})") from None
    try:
        result = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if result != ["ok"]:
            raise AdminError(f"{path}: integrity_check failed: {'; '.join(result[:5])}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version < 1 or not tables >= REQUIRED_TABLES:
            raise AdminError(
                f"{path}: not an edge-face gallery (schema {version}, tables {sorted(tables)})"
            )
        if version > latest:
            raise AdminError(
                f"{path}: gallery schema {version} is newer than this release supports "
                f"({latest}); install the release that wrote it, or a newer one"
            )
        count = int(conn.execute("SELECT count(*) FROM entities").fetchone()[0])
    except sqlite3.DatabaseError as e:
        raise AdminError(f"{path}: not a readable SQLite database ({e})") from None
    finally:
        conn.close()
    return version, count


def backup_gallery(store: Path, dest: Path, *, overwrite: bool = False) -> tuple[int, int]:
    """Copy the live gallery to `dest` (0600, self-contained, verified); (schema, entities)."""
    if not store.is_file():
        raise AdminError(
            f"no gallery at {store}; check data_dir/store.path in the config (-c FILE)"
        )
    dest = dest.expanduser().absolute()
    if dest.exists() and not overwrite:
        raise AdminError(f"{dest} exists; pass --overwrite or choose another file")
    if not dest.parent.is_dir():
        raise AdminError(f"{dest.parent}: no such directory")
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    _create_private(tmp)
    try:
        # Read-write but query-only: the last connection to close removes the -wal/-shm files
        # (a read-only one would leave them behind, owned by whoever ran the backup).
        src = sqlite3.connect(store, timeout=30.0)
        out = sqlite3.connect(tmp, isolation_level=None)
        try:
            src.execute("PRAGMA busy_timeout=30000")
            src.execute("PRAGMA query_only=ON")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            _sidecars_like_store(store)
            # One step inside one read transaction: a consistent snapshot that WAL lets the
            # service keep writing past (a stepwise copy would restart on every commit).
            src.backup(out)
            # One self-contained file: no -wal beside it to lose when the file is copied.
            out.execute("PRAGMA journal_mode=DELETE")
        finally:
            out.close()
            src.close()
            _sidecars_like_store(store)
        version, count = check_gallery_file(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return version, count


def gallery_holders(store: Path) -> list[int]:
    """PIDs (other than ours) with the gallery or its WAL open, read from /proc.

    Only processes this user may inspect are seen: run as root (or the service user) for a
    complete answer.
    """
    targets = {str(store.resolve()), f"{store.resolve()}-wal"}
    holders: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(fd) in targets:
                    holders.add(int(proc.name))
                    break
    return sorted(holders)


def restore_gallery(store: Path, source: Path, *, force: bool = False) -> tuple[int, int, Path]:
    """Replace the gallery with a backup; (schema, entities, copy of the previous gallery).

    The previous gallery is kept beside it as `<store>.before-restore-<time>` (0600).
    """
    version, count = check_gallery_file(source)
    holders = gallery_holders(store) if store.exists() else []
    if holders and not force:
        raise AdminError(
            f"the gallery {store} is open by process(es) {', '.join(map(str, holders))} "
            "(the service?). Stop it first (systemctl stop edge-face), or pass --force and "
            "restart it right after"
        )
    store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    previous = store.with_name(f"{store.name}.before-restore-{time.strftime('%Y%m%dT%H%M%S')}")
    if store.exists():
        try:
            backup_gallery(store, previous)
            _owner_like(previous, store.parent)
        except (AdminError, sqlite3.Error):
            if holders:
                raise
            # A damaged gallery cannot be copied by SQLite: move its files aside as they are.
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{store}{suffix}", f"{previous}{suffix}")
    created = not store.exists()
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    if created:
        _create_private(store)
    dst = sqlite3.connect(store, isolation_level=None, timeout=30.0)
    try:
        dst.execute("PRAGMA busy_timeout=30000")
        _owner_like(store, store.parent)
        dst.execute("SELECT count(*) FROM sqlite_master").fetchone()
        _sidecars_like_store(store)
        # Page by page under the destination's write lock: readers see old or new, not a mix.
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")
        ok = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            raise AdminError(f"{store}: integrity_check failed after the restore ({ok})")
    finally:
        dst.close()
        src.close()
    os.chmod(store, 0o600)
    _sidecars_like_store(store)
    return version, count, previous


def _backup_cmd(settings: Settings, args: argparse.Namespace) -> int:
    version, count = backup_gallery(settings.store_path, args.file, overwrite=args.overwrite)
    print(
        f"backed up {count} face entities (schema {version}) from {settings.store_path} "
        f"to {args.file} (mode 0600, integrity ok)"
    )
    return 0


def _restore_cmd(settings: Settings, args: argparse.Namespace) -> int:
    version, count, previous = restore_gallery(settings.store_path, args.file, force=args.force)
    print(f"restored {count} face entities (schema {version}) into {settings.store_path}")
    if previous.exists():
        print(f"the previous gallery is kept in {previous}")
    if args.force:
        print("restart the service now so it loads the restored gallery")
    return 0


# Keys -----------------------------------------------------------------------------------------
def key_id(key: str) -> str:
    """The non-secret handle logs and rate limits use for a key (see edge.api.keyring.ApiKey)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _key_file(settings: Settings) -> Path:
    if settings.server.api_keys:
        raise AdminError(
            "keys are set in the config (server.api_keys): rotate by adding the new "
            "{key, instance} entry there, restarting, moving clients, then deleting the old entry"
        )
    return settings.api_key_path


def _read_keys(path: Path) -> list[str]:
    try:
        return read_key_file(path)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise AdminError(f"{path}: {e.strerror}; run as root or as the service user") from None


def _write_keys(path: Path, keys: list[str]) -> None:
    try:
        write_key_file(path, keys)
    except OSError as e:
        raise AdminError(f"{path}: {e.strerror}; run as root or as the service user") from None
    _owner_like(path, path.parent)


def _keys_list(settings: Settings) -> int:
    path = _key_file(settings)
    keys = _read_keys(path)
    if not keys:
        print(f"no key file at {path}: the service generates one on its first start")
        return 0
    print(f"{len(keys)} valid key(s) in {path} (newest first; ids as in the logs):")
    for i, k in enumerate(keys):
        print(f"  {key_id(k)}{'  (newest)' if i == 0 else ''}")
    return 0


def _keys_rotate(settings: Settings) -> int:
    path = _key_file(settings)
    old = _read_keys(path)
    new = secrets.token_urlsafe(32)
    _write_keys(path, [new, *old])
    print(f"new api-key (id {key_id(new)}), shown only now: {new}")
    print(
        f"{len(old)} older key(s) stay valid. Move every client to the new key, then run "
        "`edge-face keys prune` to revoke the old ones. The running service picks up both "
        "changes within a second."
    )
    return 0


def _keys_prune(settings: Settings, keep: int) -> int:
    if keep < 1:
        raise AdminError("--keep must be at least 1 (the service needs a key)")
    path = _key_file(settings)
    keys = _read_keys(path)
    if not keys:
        raise AdminError(f"no key file at {path}; nothing to prune")
    dropped = keys[keep:]
    if dropped:
        _write_keys(path, keys[:keep])
    print(
        f"revoked {len(dropped)} key(s) ({', '.join(map(key_id, dropped)) or 'none'}); "
        f"{min(keep, len(keys))} stay valid"
    )
    return 0
