"""api-keys: each key belongs to an instance (tenant).

With no key configured, the first start generates one, keeps it in a 0600 file and prints
it once to stdout, so a fresh box is never open to the LAN and the operator still sees the
key; later starts reuse the file silently.

The key file may hold several keys, one per line (newest first, `#` comments allowed), so a
key can be rotated without downtime: `edge-face keys rotate` adds a new key, clients move
over, `edge-face keys prune` drops the old ones. A running service re-reads the file when it
changes (checked at most once a second), so neither step needs a restart.

Plain classes, no aiohttp: the middleware that reads the header is `edge.api.auth`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from edge.config import Settings

#: How often (seconds) a running service looks at the key file for a rotation.
RELOAD_INTERVAL_S = 1.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiKey:
    secret: bytes
    instance: str

    @cached_property
    def key_id(self) -> str:
        """A non-secret handle for logs and rate-limit buckets (hashed once, not per request)."""
        return hashlib.sha256(self.secret).hexdigest()[:12]


class KeyRing:
    def __init__(
        self,
        keys: list[ApiKey],
        generated: str | None = None,
        where: str = "",
        source: Path | None = None,
    ) -> None:
        if not keys:
            raise ValueError("at least one api-key is required")
        self.keys = keys
        #: the key created by this start, if any (printed once by `load_keyring`)
        self.generated = generated
        #: where the operator finds the key, for the 401 message (never the key itself)
        self.where = where or "the key configured in server.api_keys of the service's config"
        #: the key file watched for rotations (None: keys come from the config)
        self.source = source
        self._stamp = _file_stamp(source) if source else None
        self._checked = time.monotonic()

    def lookup(self, presented: str) -> ApiKey | None:
        """Constant-time in the key contents: every configured key is compared."""
        self._maybe_reload()
        given = presented.encode("utf-8", "surrogateescape")
        found = None
        for key in self.keys:
            if hmac.compare_digest(given, key.secret):
                found = key
        return found

    def _maybe_reload(self) -> None:
        """Pick up a rotated key file (a stat at most once per RELOAD_INTERVAL_S)."""
        if self.source is None:
            return
        now = time.monotonic()
        if now - self._checked < RELOAD_INTERVAL_S:
            return
        self._checked = now
        stamp = _file_stamp(self.source)
        if stamp == self._stamp:
            return
        try:
            keys = read_key_file(self.source)
        except OSError as e:
            log.warning("api-key file %s unreadable (%s); keeping the loaded keys", self.source, e)
            return
        if not keys:
            log.warning("api-key file %s holds no key; keeping the loaded keys", self.source)
            return
        self.keys = [ApiKey(k.encode(), "default") for k in keys]
        self._stamp = stamp
        log.info("api-key file %s changed: %d key(s) now valid", self.source, len(keys))


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_key_file(path: Path) -> list[str]:
    """The keys of a key file, newest first: one per line, blank and `#` lines skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def write_key_file(path: Path, keys: list[str]) -> None:
    """Replace the key file atomically; the new file is created with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the data dir: face data
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("".join(k + "\n" for k in keys))
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _read_or_create_key(path: Path) -> tuple[list[str], bool]:
    """(keys, created). A new file is created with mode 0600 holding one fresh key."""
    try:
        keys = read_key_file(path)
        if keys:
            return keys, False
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(32)
    write_key_file(path, [key])
    return [key], True


def load_keyring(settings: Settings, announce: Callable[[str], None] = print) -> KeyRing:
    """Configured keys, or the generated one (created and announced on the first start)."""
    configured = settings.server.api_keys
    if configured:
        return KeyRing([ApiKey(k.key.get_secret_value().encode(), k.instance) for k in configured])
    path = settings.api_key_path
    keys, created = _read_or_create_key(path)
    if created:
        announce(
            f"edge-face: generated api-key (kept in {path}, mode 0600; shown only now): {keys[0]}"
        )
    return KeyRing(
        [ApiKey(k.encode(), "default") for k in keys],
        generated=keys[0] if created else None,
        where=f"the key kept in {path} on the server",
        source=path,
    )
