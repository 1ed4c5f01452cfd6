"""A stateful simulation: a hub and three boxes exchanging whole records over a network
that drops, duplicates and reorders messages. Whatever happens, once the network delivers
one full exchange every replica holds the same records, each equal to the merge of every
state ever written (the last-writer-wins winner), and nothing deleted is alive anywhere."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from edge.store.hlc import HybridClock
from edge.sync.record import Meta, Record, Vector, Versioned, merge, merge_all, tombstone

BOXES = ("box-a", "box-b", "box-c")
HUB = "hub"
INSTANCE = "inst"
FP = "fp"


class Fleet(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.wall = 1_700_000_000_000
        self.clocks = {
            name: HybridClock(name, wall=self._wall_of(i)) for i, name in enumerate(BOXES)
        }
        self.replicas: dict[str, dict[str, Record]] = {n: {} for n in (*BOXES, HUB)}
        self.network: list[tuple[str, Record]] = []  # (destination, record) in flight
        self.written: dict[str, list[Record]] = {}  # every state any box ever wrote
        self.deleted: set[str] = set()
        self.next_id = 0

    def _wall_of(self, i: int) -> object:
        return lambda: self.wall + 7 * i  # clocks slightly apart

    def _apply(self, where: str, rec: Record) -> None:
        mine = self.replicas[where].get(rec.uuid)
        self.replicas[where][rec.uuid] = rec if mine is None else merge(mine, rec)

    def _write(self, box: str, rec: Record) -> None:
        self._apply(box, rec)
        self.written.setdefault(rec.uuid, []).append(rec)

    @rule(box=st.sampled_from(BOXES), seed=st.integers(0, 3))
    def enrol(self, box: str, seed: int) -> None:
        self.wall += 1
        s = self.clocks[box].now()
        uuid = f"e{self.next_id}"
        self.next_id += 1
        vec = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
        self._write(
            box,
            Record(
                uuid, INSTANCE,
                meta=Versioned(s, Meta("", f"k{seed}", "[]", 1)),
                expiry=Versioned(s, 2_000_000_000),
                vectors=((FP, Versioned(s, Vector.from_float32("M", "M", vec))),),
            ),
        )  # fmt: skip

    def _known(self, box: str) -> list[Record]:
        return [r for r in self.replicas[box].values() if r.deleted is None]

    @rule(box=st.sampled_from(BOXES), pick=st.integers(0, 50), key=st.text("xyz", max_size=2))
    def patch(self, box: str, pick: int, key: str) -> None:
        known = self._known(box)
        if not known:
            return
        cur = known[pick % len(known)]
        assert cur.meta is not None
        self.wall += 1
        s = self.clocks[box].now()
        meta = Meta(cur.meta.value.collection, key, "[]", cur.meta.value.created_at)
        self._write(box, Record(cur.uuid, INSTANCE, meta=Versioned(s, meta)))

    @rule(box=st.sampled_from(BOXES), pick=st.integers(0, 50))
    def delete(self, box: str, pick: int) -> None:
        known = self._known(box)
        if not known:
            return
        cur = known[pick % len(known)]
        self.wall += 1
        self._write(box, tombstone(cur.uuid, INSTANCE, self.clocks[box].now()))
        self.deleted.add(cur.uuid)

    @rule(src=st.sampled_from((*BOXES, HUB)), copies=st.integers(1, 2), data=st.data())
    def send(self, src: str, copies: int, data: st.DataObject) -> None:
        """Put some of `src`'s records on the wire (boxes to the hub, the hub to boxes)."""
        records = sorted(self.replicas[src].values(), key=lambda r: r.uuid)
        if not records:
            return
        chosen = data.draw(st.lists(st.sampled_from(records), max_size=4))
        dests = [HUB] if src != HUB else list(BOXES)
        for rec in chosen:
            for dest in dests:
                self.network.extend([(dest, rec)] * copies)  # duplicates

    @precondition(lambda self: bool(self.network))
    @rule(pick=st.integers(0, 1000), drop=st.booleans())
    def deliver(self, pick: int, drop: bool) -> None:
        dest, rec = self.network.pop(pick % len(self.network))  # any order
        if not drop:
            self._apply(dest, rec)
            if dest != HUB:
                self.clocks[dest].observe(next(iter(rec.stamps())))

    @invariant()
    def nothing_deleted_is_alive_where_the_delete_arrived(self) -> None:
        for replica in self.replicas.values():
            for rec in replica.values():
                if rec.deleted is not None:
                    assert rec.meta is None and rec.vectors == ()

    def teardown(self) -> None:
        # Heal: a reliable full exchange, boxes -> hub then hub -> boxes.
        for box in BOXES:
            for rec in list(self.replicas[box].values()):
                self._apply(HUB, rec)
        for box in BOXES:
            for rec in list(self.replicas[HUB].values()):
                self._apply(box, rec)
        expected = {u: merge_all(states) for u, states in self.written.items()}
        for name, replica in self.replicas.items():
            assert replica == expected, name
        for uuid in self.deleted:
            assert expected[uuid].deleted is not None


TestFleetConvergence = Fleet.TestCase
