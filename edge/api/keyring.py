"""api-keys: each key belongs to an instance (tenant).

With no key configured, the first start generates one, keeps it in a 0600 file and prints
it once to stdout, so a fresh box is never open to the LAN and the operator still sees the
key; later starts reuse the file silently. Plain classes, no aiohttp: the middleware that
reads the header is `edge.api.auth`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from edge.config import Settings


@dataclass(frozen=True)
class ApiKey:
    secret: bytes
    instance: str

    @cached_property
    def key_id(self) -> str:
        """A non-secret handle for logs and rate-limit buckets (hashed once, not per request)."""
        return hashlib.sha256(self.secret).hexdigest()[:12]


class KeyRing:
    def __init__(self, keys: list[ApiKey], generated: str | None = None, where: str = "") -> None:
        if not keys:
            raise ValueError("at least one api-key is required")
        self.keys = keys
        #: the key created by this start, if any (printed once by `load_keyring`)
        self.generated = generated
        #: where the operator finds the key, for the 401 message (never the key itself)
        self.where = where or "the key configured in server.api_keys of the service's config"

    def lookup(self, presented: str) -> ApiKey | None:
        """Constant-time in the key contents: every configured key is compared."""
        given = presented.encode("utf-8", "surrogateescape")
        found = None
        for key in self.keys:
            if hmac.compare_digest(given, key.secret):
                found = key
        return found


def _read_or_create_key(path: Path) -> tuple[str, bool]:
    """(key, created). The file is created exclusively with mode 0600."""
    try:
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key, False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the data dir: face data
    key = secrets.token_urlsafe(32)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return key, True


def load_keyring(settings: Settings, announce: Callable[[str], None] = print) -> KeyRing:
    """Configured keys, or the generated one (created and announced on the first start)."""
    configured = settings.server.api_keys
    if configured:
        return KeyRing([ApiKey(k.key.get_secret_value().encode(), k.instance) for k in configured])
    path = settings.api_key_path
    key, created = _read_or_create_key(path)
    if created:
        announce(f"edge-face: generated api-key (kept in {path}, mode 0600; shown only now): {key}")
    return KeyRing(
        [ApiKey(key.encode(), "default")],
        generated=key if created else None,
        where=f"the key kept in {path} on the server",
    )
