"""The hub's storage interface: one Protocol, several engines (SQLite embedded, PostgreSQL).

The hub holds, per entity, the merge (`edge.sync.record.merge`) of every state any box
pushed, tombstones included and kept for ever, and a *feed sequence*: a number that grows
every time an entity's merged state changes. Boxes pull "everything with a sequence above
my cursor" and save the last sequence they applied as their new cursor.

Contract every engine must keep (the shared test suite checks each):

1. `push` is atomic and idempotent: every change is merged into the stored records and
   the origin's acked seq (the highest seen) is saved in the SAME transaction. A resent
   batch changes nothing and moves no feed sequence; neither does any state that merges
   to what is stored (e.g. a box's own state coming back). Changes at or below the acked
   seq are still merged, not dropped (a box restored from a backup reuses sequence
   numbers); they are counted as `skipped`. Seq 0 marks a full re-push (first contact, or
   a hub with a new epoch): merged, never acked.
2. Feed sequences are unique, positive and grow with commit order as readers see it: once
   any reader has been handed a page ending at sequence N, no record may later become
   visible with a sequence <= N. (SQLite gets this by serialised writers. PostgreSQL with
   several hub processes must not hand out sequences that a slower transaction commits
   after a faster one's larger sequence: e.g. take `pg_advisory_xact_lock` around the
   sequence assignment and commit, or let `feed` return only sequences below the oldest
   in-flight writer's, `pg_snapshot_xmin`.)
3. Each entity appears at most once in the feed, at its latest sequence: a reader that is
   behind sees the newest state directly (earlier states are never needed: states merge).
4. `feed(instances, fingerprint, ...)` returns, in sequence order, tombstones of those
   instances (deletes reach every box whatever its model) and live records that hold a
   vector of `fingerprint`, projected to that one vector (`for_fingerprint`). Records
   without such a vector are skipped; `next` still moves past them, so a box on another
   model does not re-read them.
5. A delete is final: a stored tombstone stays a tombstone whatever is pushed later.
6. `epoch` identifies this hub's data; a hub restored from a backup, or a new database,
   has a new epoch, and boxes then reset their cursor and push what they hold again.
7. Engines are called from worker threads (`asyncio.to_thread`); each method is one
   transaction and thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from edge.sync.codec import FeedPage, decode_record, unpack_any
from edge.sync.record import Record, for_fingerprint


@dataclass(frozen=True)
class PushResult:
    acked: int  # the origin's highest seq now held durably (the box prunes up to it)
    applied: int  # records whose merged state changed (each got a new feed sequence)
    unchanged: int  # merged to the same state (duplicates, echoes, older states)
    skipped: int  # seq at or below the previous acked (a resend, or a restored box)
    conflicts: int = 0  # merges where the stored and the pushed state each won something


@dataclass(frozen=True)
class SnapshotPage:
    """Live records of a bootstrap, in uuid order; tail the feed from `head` afterwards."""

    records: Sequence[Record]
    next_uuid: str | None  # None: the snapshot is complete
    head: int  # the feed sequence the snapshot started at (pass the first page's value on)


@dataclass(frozen=True)
class HubCounts:
    records: int
    tombstones: int
    head: int
    origins: int


@runtime_checkable
class HubStore(Protocol):
    """Storage of one hub (see the module docstring for the contract)."""

    @property
    def epoch(self) -> str:
        """Random id of this hub's data, fixed at creation."""

    def push(self, origin: str, changes: Sequence[tuple[int, Record]]) -> PushResult:
        """Merge a box's outbox batch (already authorised and clock-checked by the caller)."""

    def acked(self, origin: str) -> int:
        """The highest origin seq held for `origin` (0 if none)."""

    def feed(self, instances: Sequence[str], fingerprint: str, after: int, limit: int) -> FeedPage:
        """Records with a feed sequence > `after`, oldest first, at most `limit`."""

    def head(self) -> int:
        """The highest feed sequence handed out (0 when empty)."""

    def snapshot(
        self,
        instances: Sequence[str],
        fingerprint: str,
        after_uuid: str,
        limit: int,
        head: int | None = None,
    ) -> SnapshotPage:
        """Live `fingerprint` records with uuid > `after_uuid` (tombstones are not needed:
        a box bootstrapping holds nothing to erase)."""

    def scan(
        self, instances: Sequence[str], after_uuid: str, limit: int, bucket: str | None = None
    ) -> list[Record]:
        """Every record (tombstones included) of `instances` with uuid > `after_uuid`, in
        uuid order; with `bucket`, only uuids ending in those hex digits (digest repair)."""

    def get(self, uuid: str) -> Record | None:
        """The merged record (tombstone included) of one entity."""

    def counts(self) -> HubCounts:
        """Sizes for status and metrics."""

    def close(self) -> None: ...


# Shared by the engines: what they do after their own SQL, so both answer alike ------------
def decode_body(body: bytes | memoryview) -> Record:
    """A stored record (the msgpack body both engines keep)."""
    return decode_record(unpack_any(bytes(body)))


def feed_page(
    epoch: str,
    rows: Sequence[tuple[int, bytes]],
    fingerprint: str,
    after: int,
    head: int,
    limit: int,
) -> FeedPage:
    """A feed page from (seq, body) rows read in one snapshot with `head` (rule 4)."""
    out: list[tuple[int, Record]] = []
    for seq, body in rows:
        view = for_fingerprint(decode_body(body), fingerprint)
        if view is not None:
            out.append((int(seq), view))
    # A page shorter than `limit` read everything up to `head` in the same snapshot (other
    # instances' rows included), so the cursor may skip to it.
    nxt = int(rows[-1][0]) if len(rows) == limit else max(head, after)
    return FeedPage(epoch, out, nxt, head)


def snapshot_page(
    rows: Sequence[tuple[str, bytes]], fingerprint: str, start: int, limit: int
) -> SnapshotPage:
    """A bootstrap page from (uuid, body) rows of live records in uuid order."""
    out = [v for _, b in rows if (v := for_fingerprint(decode_body(b), fingerprint)) is not None]
    next_uuid = str(rows[-1][0]) if len(rows) == limit else None
    return SnapshotPage(out, next_uuid, start)
