"""`edge-face people list|show|delete`: the gallery seen as people (keys), not uuids.

An integrator enrols several photos per person under one `key`; the API, like the cloud it
mirrors, only knows single entities. These commands group by key, through the running
service's API (so the index and the store stay in step), paging through every result.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edge.client import ApiError, Client, Entity, ServiceUnreachable
from edge.commands.enroll import RETRIES, default_url, no_key_message, resolve_key
from edge.config import Settings

NO_KEY = "(no key)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    action = p.prog.split()[-1]
    if action in ("show", "delete"):
        p.add_argument("key", metavar="KEY", help="the person's key (as given at enrolment)")
    p.add_argument("--url", help="service base URL (default: from server.host/port)")
    p.add_argument(
        "--api-key",
        help="api-key (default: $EDGE_API_KEY, the first configured key, or the generated "
        "key file of the configured data dir)",
    )
    p.add_argument("--collection", help="only enrolments in this collection")
    p.add_argument("--model", help="only enrolments of this face model")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    if action == "delete":
        p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


@dataclass
class Person:
    key: str
    enrolments: list[Entity] = field(default_factory=list)

    @property
    def collections(self) -> list[str]:
        return sorted({e.collection for e in self.enrolments})

    @property
    def created(self) -> datetime | None:
        return min((e.created_at for e in self.enrolments if e.created_at), default=None)

    @property
    def updated(self) -> datetime | None:
        return max((e.updated_at for e in self.enrolments if e.updated_at), default=None)

    def summary(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "enrolments": len(self.enrolments),
            "collections": self.collections,
            "createdAt": _iso(self.created),
            "updatedAt": _iso(self.updated),
        }


def group(entities: Iterable[Entity]) -> list[Person]:
    """Entities → people, sorted by key (entities keep their creation order inside)."""
    people: dict[str, Person] = {}
    for e in entities:
        people.setdefault(e.key, Person(e.key)).enrolments.append(e)
    return [people[k] for k in sorted(people)]


def _iso(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else ""


def _expiry(e: Entity) -> str:
    return "never" if e.never_expires else _iso(e.expires_at)


def _enrolment(e: Entity) -> dict[str, Any]:
    return {
        "uuid": e.uuid,
        "model": e.model,
        "collection": e.collection,
        "metadata": e.metadata,
        "createdAt": _iso(e.created_at),
        "updatedAt": _iso(e.updated_at),
        "expiresAt": _iso(e.expires_at),
    }


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def of_key(client: Client, key: str, args: argparse.Namespace) -> list[Entity]:
    """Every enrolment of exactly this key (the server filter, re-checked: it is exact)."""
    return [
        e
        for e in client.entities(model=args.model, collection=args.collection or None, key=key)
        if e.key == key and (not args.collection or e.collection == args.collection)
    ]


def do_list(client: Client, args: argparse.Namespace) -> int:
    people = group(client.entities(model=args.model, collection=args.collection or None))
    if args.json:
        print(json.dumps({"people": [p.summary() for p in people]}, indent=2))
        return 0
    if not people:
        print("no enrolments" + (f" in collection {args.collection!r}" if args.collection else ""))
        return 0
    rows = [["KEY", "ENROLMENTS", "COLLECTIONS", "CREATED", "UPDATED"]]
    for p in people:
        s = p.summary()
        cols = ",".join(c or '""' for c in s["collections"])
        rows.append([p.key or NO_KEY, str(len(p.enrolments)), cols, s["createdAt"], s["updatedAt"]])
    _table(rows)
    total = sum(len(p.enrolments) for p in people)
    print(f"{len(people)} people, {total} enrolments")
    return 0


def do_show(client: Client, args: argparse.Namespace) -> int:
    found = of_key(client, args.key, args)
    if args.json:
        print(json.dumps({"key": args.key, "enrolments": [_enrolment(e) for e in found]}, indent=2))
        return 0 if found else 1
    if not found:
        print(f"edge-face people show: no enrolments with key {args.key!r}", file=sys.stderr)
        return 1
    print(f"{args.key}: {len(found)} enrolment(s)")
    rows = [["UUID", "COLLECTION", "CREATED", "EXPIRES", "METADATA"]]
    for e in found:
        meta = ", ".join(f"{k}={v!r}" for k, v in e.metadata.items())
        rows.append([e.uuid, e.collection or '""', _iso(e.created_at), _expiry(e), meta])
    _table(rows)
    return 0


def _confirm(prompt: str) -> bool:
    try:
        answer = input(prompt)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def do_delete(client: Client, args: argparse.Namespace) -> int:
    found = of_key(client, args.key, args)
    if not found:
        if args.json:
            print(json.dumps({"key": args.key, "deleted": 0}))
        else:
            print(f"edge-face people delete: no enrolments with key {args.key!r}", file=sys.stderr)
        return 1
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"edge-face people delete: {len(found)} enrolment(s) of {args.key!r} would be "
                "deleted; not a terminal, so give --yes to confirm",
                file=sys.stderr,
            )
            return 2
        cols = ", ".join(repr(c) for c in sorted({e.collection for e in found}))
        if not _confirm(
            f"delete {len(found)} enrolment(s) of {args.key!r} (collections {cols})? [y/N] "
        ):
            print("nothing deleted", file=sys.stderr)
            return 1
    deleted = 0
    for e in found:
        try:
            client.delete(e.uuid)
        except ApiError as err:
            if err.status != 404:  # gone meanwhile (expired, another client): not an error
                raise
            continue
        deleted += 1
    if args.json:
        print(json.dumps({"key": args.key, "deleted": deleted}))
    else:
        print(f"deleted {deleted} enrolment(s) of {args.key!r}")
    return 0


ACTIONS = {"list": do_list, "show": do_show, "delete": do_delete}


def run(settings: Settings, args: argparse.Namespace) -> int:
    action = args._path[-1]
    if action in ("show", "delete") and not args.key:
        # The API reads an empty key filter as "no filter": it would select everybody.
        print(f"edge-face people {action}: KEY must not be empty", file=sys.stderr)
        return 2
    api_key = resolve_key(settings, args.api_key)
    if not api_key:
        print(no_key_message(f"people {action}", settings), file=sys.stderr)
        return 2
    try:
        client = Client(args.url or default_url(settings), api_key, retries=RETRIES)
        return ACTIONS[action](client, args)
    except ValueError as e:  # a malformed --url
        print(f"edge-face people {action}: {e}", file=sys.stderr)
        return 2
    except ServiceUnreachable as e:
        print(f"edge-face people {action}: {e.message}", file=sys.stderr)
        return 2
    except ApiError as e:
        hint = " (check --api-key)" if e.status == 401 else ""
        print(f"edge-face people {action}: the service answered {e}{hint}", file=sys.stderr)
        return 2
