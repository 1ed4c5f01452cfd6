"""`edge-face sync status|now|token`: fleet sync seen from the command line.

`status` and `now` ask the running service (its REST port, with an api-key), because the
worker's state lives in that process; `token` makes a box token and the hash the hub keeps.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import secrets
import sys
import urllib.parse
from typing import Any

from edge.commands.enroll import default_url, no_key_message, resolve_key
from edge.config import Settings
from edge.usererror import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    action = p.prog.split()[-1]
    if action == "token":
        return
    p.add_argument("--url", help="service base URL (default: from server.host/port)")
    p.add_argument("--api-key", help="api-key (default: $EDGE_API_KEY or the configured key)")
    p.add_argument("--json", action="store_true", help="print the raw status document")
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for the service")


def _call(settings: Settings, args: argparse.Namespace, method: str, path: str) -> tuple[int, Any]:
    base = (args.url or default_url(settings)).rstrip("/")
    key = resolve_key(settings, args.api_key)
    if key is None:
        raise UserError(no_key_message(f"sync {args._path[-1]}", settings))
    u = urllib.parse.urlsplit(base)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UserError(f"--url {base!r} is not an http(s) URL, e.g. http://127.0.0.1:8080")
    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = cls(u.hostname, u.port, timeout=args.timeout)
    try:
        conn.request(method, path, headers={"api-key": key})
        r = conn.getresponse()
        raw = r.read()
    except OSError as e:
        raise UserError(
            f"cannot reach the service at {base} ({e}); is `edge-face serve` running? "
            "(give --url if it listens elsewhere)"
        ) from None
    finally:
        conn.close()
    if r.status == 404:
        raise UserError(
            "the service at this URL has no fleet sync: set sync.enabled (and sync.upstream "
            "or sync.role: hub) in its config and restart it"
        )
    try:
        body = json.loads(raw)
    except ValueError:
        raise UserError(f"unexpected answer {r.status} from {base}{path}") from None
    if r.status == 401:
        raise UserError(f"api-key refused: {body.get('message')}")
    return r.status, body


def _lines(doc: dict[str, Any]) -> list[str]:
    out = []
    box = doc.get("box")
    if box:
        out += [
            f"box {box['name']} (origin {box['origin']}, instances {', '.join(box['instances'])})",
            f"  pending changes:  {box['pending']} (oldest {box['oldestPendingSeconds']:g} s)",
            f"  pull lag:         {box['pullLag']} (cursor {box['cursor']} of {box['hubHead']})",
            f"  last success:     {box['lastSuccess'] or 'never'}",
            f"  last error:       {box['lastError'] or '-'}",
            f"  pushed/applied:   {box['pushed']}/{box['applied']}, rejected {box['rejected']}",
            f"  clock skew:       {box['clockSkewMs']} ms; gallery stale: {box['galleryStale']}",
        ]
    hub = doc.get("hub")
    if hub:
        out.append(
            f"hub epoch {hub['epoch']}: head {hub['head']}, {hub['records']} records, "
            f"{hub['tombstones']} tombstones"
        )
        for b in hub["boxes"]:
            out.append(
                f"  {b['id']}: lag {b['lag']}, last pull {b['lastPullSecondsAgo']} s ago, "
                f"last push {b['lastPushSecondsAgo']} s ago"
            )
    return out


def run(settings: Settings, args: argparse.Namespace) -> int:
    action = args._path[-1]
    if action == "token":
        token = secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        print(f"token (the box's sync.token):            {token}")
        print(f"sha256 (the hub's sync.boxes[].token_sha256): {digest}")
        return 0
    method, path = ("POST", "/sync/v1/now") if action == "now" else ("GET", "/sync/v1/status")
    status, doc = _call(settings, args, method, path)
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        print()
    else:
        print("\n".join(_lines(doc)) or "sync is configured but not started yet")
        if doc.get("error"):
            print(f"sync now failed: {doc['error']}", file=sys.stderr)
    return 0 if status == 200 else 1
