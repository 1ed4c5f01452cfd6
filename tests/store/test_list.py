"""Listing: ascending uuid pages, the `after` cursor, totals and filters."""

from __future__ import annotations

from store_helpers import ManualClock, make

from edge.store import EntityStore


def test_pages_walk_every_entity_once_in_creation_order(
    store: EntityStore, clock: ManualClock
) -> None:
    made = []
    for i in range(23):
        made.append(make(store).uuid)
        if i % 5 == 0:
            clock.advance(0.0004)  # several per millisecond and several per second
    seen: list[str] = []
    after = ""
    totals = set()
    while True:
        total, page = store.list("inst-a", limit=5, after=after)
        totals.add(total)
        seen += [e.uuid for e in page]
        if len(page) < 5:
            break
        after = page[-1].uuid
    assert seen == made
    assert totals == {23}  # total counts the whole filtered set, whatever the cursor


def test_full_last_page_then_empty_page(store: EntityStore) -> None:
    uuids = [make(store).uuid for _ in range(4)]
    total, page = store.list("inst-a", limit=2, after=uuids[1])
    assert (total, [e.uuid for e in page]) == (4, uuids[2:])
    assert store.list("inst-a", limit=2, after=uuids[3]) == (4, [])
    assert store.list("inst-a", limit=0)[1] == []


def test_after_need_not_be_an_existing_uuid(store: EntityStore) -> None:
    uuids = [make(store).uuid for _ in range(3)]
    # A deleted uuid still works as a cursor: strictly-greater comparison on strings.
    store.delete("inst-a", uuids[1])
    assert [e.uuid for e in store.list("inst-a", after=uuids[1])[1]] == [uuids[2]]
    assert [e.uuid for e in store.list("inst-a", after=uuids[0][:8])[1]] == [uuids[0], uuids[2]]


def test_filters_combine_and_totals_follow_them(store: EntityStore) -> None:
    rows = [
        ("EDGE_FACE_V1", "staff", "alice"),
        ("EDGE_FACE_V1", "staff", "bob"),
        ("EDGE_FACE_V1", "visitors", "alice"),
        ("EDGE_FACE_V1", "", ""),
        ("OTHER_MODEL", "staff", "alice"),
    ]
    ids = {row: make(store, model=row[0], collection=row[1], key=row[2]).uuid for row in rows}
    make(store, instance="inst-b", collection="staff", key="alice")

    def listed(**kw: str) -> tuple[int, set[str]]:
        total, page = store.list("inst-a", limit=100, **kw)
        return total, {e.uuid for e in page}

    def expect(pred) -> tuple[int, set[str]]:  # type: ignore[no-untyped-def]
        chosen = {u for row, u in ids.items() if pred(*row)}
        return len(chosen), chosen

    assert listed() == expect(lambda m, c, k: True)
    assert listed(model="EDGE_FACE_V1") == expect(lambda m, c, k: m == "EDGE_FACE_V1")
    assert listed(collection="staff") == expect(lambda m, c, k: c == "staff")
    assert listed(key="alice") == expect(lambda m, c, k: k == "alice")
    assert listed(collection="staff", key="alice") == expect(
        lambda m, c, k: c == "staff" and k == "alice"
    )
    assert listed(model="EDGE_FACE_V1", collection="staff", key="alice") == expect(
        lambda m, c, k: (m, c, k) == ("EDGE_FACE_V1", "staff", "alice")
    )
    # "" is a real value (no collection), distinct from "no filter".
    assert listed(collection="") == expect(lambda m, c, k: c == "")
    assert listed(collection="nobody") == (0, set())


def test_paging_with_a_filter(store: EntityStore) -> None:
    wanted = []
    for i in range(12):
        e = make(store, collection="even" if i % 2 == 0 else "odd")
        if i % 2 == 0:
            wanted.append(e.uuid)
    total, p1 = store.list("inst-a", collection="even", limit=4)
    total2, p2 = store.list("inst-a", collection="even", limit=4, after=p1[-1].uuid)
    assert total == total2 == 6
    assert [e.uuid for e in p1 + p2] == wanted
