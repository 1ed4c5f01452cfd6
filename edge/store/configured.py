"""The product's entity store as `Settings` configure it, for every process that serves it.

The server, the camera command and the benchmarks must open the same file with the same
pack fingerprint, or vectors of one pack would be searched with another's: one helper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.config import Settings
from edge.store.entities import EntityStore

if TYPE_CHECKING:
    from edge.runtime.registry import ModelRegistry


def open_store(settings: Settings, registry: ModelRegistry) -> EntityStore:
    """The store at `settings.store_path`, stamping vectors with the pack's fingerprint.

    With fleet sync the sync worker prunes the change log once the hub has acknowledged;
    without it nothing reads the log back, so the store keeps only a short window of it.
    """
    sync = settings.sync.enabled
    return EntityStore(
        settings.store_path,
        pack_fingerprint=registry.fingerprint,
        change_log_keep_s=None if sync else settings.store.change_log_keep_s,
        change_log_keep_rows=None if sync else settings.store.change_log_keep_rows,
    )
