"""`edge-face enroll`: bulk enrolment of photos for integrators.

Photos go to the RUNNING service through `POST /api/v1/entities/faces`, never straight into
its SQLite file: the service's in-memory search index stays in step with the store, and every
photo meets exactly the contract's validation (the same error codes a REST client would get).
Only the stdlib HTTP client is used, so the command adds no dependency. Image bytes are read,
base64-encoded into the request body and dropped; they are never printed or logged.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.config import Settings

FACES_PATH = "/api/v1/entities/faces"
#: Suffixes picked up when scanning a folder (a file named on the command line is always sent:
#: the service, not the suffix, decides whether it is an image).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
IN_FLIGHT = 2  # the service's default inference pool is 2 threads: more would only queue
RETRIES = 3  # for 429 (queue full) and 503 (warming up), which are transient


class Fatal(Exception):
    """The whole run cannot go on: service unreachable or api-key refused (exit 2)."""


@dataclass(frozen=True)
class Job:
    path: Path
    key: str


@dataclass
class Outcome:
    job: Job
    uuid: str | None = None
    code: int | None = None
    name: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.uuid is not None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": str(self.job.path), "key": self.job.key}
        if self.ok:
            d["uuid"] = self.uuid
        else:
            d.update(code=self.code, name=self.name, message=self.message)
        return d


@dataclass
class Report:
    url: str
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None

    @property
    def enrolled(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        type=Path,
        help="a photo, or a folder: its subfolders are people (key = subfolder name), "
        "its photos use their file name (without suffix) as key unless --key is given",
    )
    parser.add_argument("--url", help="service base URL (default: from server.host/port)")
    parser.add_argument(
        "--api-key",
        help="api-key (default: $EDGE_API_KEY, the first configured key, or the generated key)",
    )
    parser.add_argument("--model", help="face model name (default: names.face)")
    parser.add_argument("--collection", default="", help="collection of every entity")
    parser.add_argument("--key", help="key for photos given as files or in a flat folder")
    parser.add_argument("--ttl", type=int, help="seconds to keep each entity (default: forever)")
    parser.add_argument(
        "--auto-rotate", action="store_true", help="apply EXIF orientation, try turned images"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be sent; send nothing"
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")


# What to send ------------------------------------------------------------------------------
def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _photos(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if _visible(p) and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def collect(paths: Iterable[Path], key: str | None = None) -> list[Job]:
    """Files and folders → one job per photo, keys decided here (see `add_arguments`)."""
    jobs: list[Job] = []
    for path in paths:
        if path.is_dir():
            for sub in sorted(p for p in path.iterdir() if _visible(p) and p.is_dir()):
                jobs.extend(Job(photo, sub.name) for photo in _photos(sub))
            jobs.extend(
                Job(photo, key if key is not None else photo.stem) for photo in _photos(path)
            )
        elif path.is_file():
            jobs.append(Job(path, key if key is not None else path.stem))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return jobs


# Where and as whom -------------------------------------------------------------------------
def default_url(settings: Settings) -> str:
    """The local service: a wildcard listen address is reached through loopback."""
    host = settings.server.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


def resolve_key(settings: Settings, given: str | None) -> str | None:
    if given:
        return given
    env = os.environ.get("EDGE_API_KEY")
    if env:
        return env
    if settings.server.api_keys:
        return settings.server.api_keys[0].key.get_secret_value()
    try:
        from edge.api.auth import read_key_file  # several keys while one is rotated

        return next(iter(read_key_file(settings.api_key_path)), None)
    except OSError:
        return None


def faces_url(base: str) -> str:
    base = base.rstrip("/")
    if base.endswith("/api/v1"):
        base = base[: -len("/api/v1")]
    return base + FACES_PATH


# Sending -------------------------------------------------------------------------------------
class Client:
    def __init__(self, url: str, api_key: str, timeout: float = 120) -> None:
        self.url = url
        self.api_key = api_key
        self.timeout = timeout

    def _request(self, method: str, url: str, body: bytes | None) -> tuple[int, Any]:
        """(status, parsed JSON or None). Connection failures become `Fatal`."""
        headers = {"api-key": self.api_key, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            base = url.split("/api/v1", 1)[0]
            raise Fatal(
                f"cannot reach the service ({reason}): is `edge-face serve` running at {base}?"
            ) from None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    def check(self) -> None:
        """One cheap authenticated call before any photo is read: reachable, key accepted."""
        status, _ = self._request("GET", self.url + "?limit=1", None)
        if status == 401:
            raise Fatal(f"the service at {self.url} refused the api-key (401)")

    def enroll(self, job: Job, fields: dict[str, Any], auto_rotate: bool) -> Outcome:
        image: dict[str, Any] = {"data": base64.b64encode(job.path.read_bytes()).decode("ascii")}
        if auto_rotate:
            image["autoRotate"] = True
        body = json.dumps({**fields, "key": job.key, "image": image}).encode()
        for attempt in range(RETRIES + 1):
            status, answer = self._request("POST", self.url, body)
            if status in (429, 503) and attempt < RETRIES:
                time.sleep(0.5 * 2**attempt)
                continue
            break
        if status == 201 and isinstance(answer, dict) and "uuid" in answer:
            return Outcome(job, uuid=str(answer["uuid"]))
        if status == 401:
            raise Fatal(f"the service at {self.url} refused the api-key (401)")
        if isinstance(answer, dict) and "code" in answer:
            return Outcome(
                job,
                code=int(answer["code"]),
                name=str(answer.get("name", "")),
                message=str(answer.get("message", "")),
            )
        return Outcome(job, code=status, name="http_error", message=f"HTTP {status}")


def send(client: Client, jobs: Sequence[Job], fields: dict[str, Any], args: Any) -> Report:
    """Enrol every job, `IN_FLIGHT` at a time; a fatal error stops the rest."""
    report = Report(client.url)
    done = 0
    lock = threading.Lock()
    stop = threading.Event()
    tty = sys.stderr.isatty()

    def one(job: Job) -> Outcome | None:
        nonlocal done
        if stop.is_set():
            return None
        try:
            out = client.enroll(job, fields, args.auto_rotate)
        except Fatal as e:
            stop.set()
            with lock:
                report.error = report.error or str(e)
            return None
        except OSError as e:  # the file vanished or is unreadable: that photo fails
            out = Outcome(job, code=None, name="unreadable", message=str(e))
        with lock:
            done += 1
            if tty:
                print(f"\renrolling {done}/{len(jobs)}", end="", file=sys.stderr, flush=True)
        return out

    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        results = list(pool.map(one, jobs))
    if tty and done:
        print(file=sys.stderr)
    report.outcomes = [r for r in results if r is not None]
    return report


# Output ----------------------------------------------------------------------------------------
def _failure_line(o: Outcome) -> str:
    code = "" if o.code is None else f"{o.code} "
    return f"  {o.job.path}: {code}{o.name}: {o.message}"


def print_report(report: Report, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "url": report.url,
                    "enrolled": [o.as_dict() for o in report.enrolled],
                    "failed": [o.as_dict() for o in report.failed],
                    "error": report.error,
                },
                indent=2,
            )
        )
        return
    print(f"enrolled {len(report.enrolled)}, failed {len(report.failed)}")
    for o in report.failed:
        print(_failure_line(o))


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        jobs = collect(args.paths, args.key)
    except FileNotFoundError as e:
        print(f"edge-face enroll: {e}", file=sys.stderr)
        return 2
    url = faces_url(args.url or default_url(settings))
    fields: dict[str, Any] = {"model": args.model or settings.names.face}
    fields["collection"] = args.collection
    if args.ttl is not None:
        fields["ttl"] = args.ttl
    if args.dry_run:
        listing = [{"path": str(j.path), "key": j.key} for j in jobs]
        if args.json:
            print(json.dumps({"url": url, "dryRun": True, **fields, "photos": listing}, indent=2))
        else:
            print(f"would send {len(jobs)} photo(s) to {url} (model {fields['model']}):")
            for j in jobs:
                print(f"  {j.path} -> key {j.key!r}")
        return 0
    if not jobs:
        print("edge-face enroll: no photos found", file=sys.stderr)
        return 1
    api_key = resolve_key(settings, args.api_key)
    if not api_key:
        print(
            "edge-face enroll: no api-key: give --api-key, set EDGE_API_KEY, or run on the box "
            f"whose generated key is in {settings.api_key_path}",
            file=sys.stderr,
        )
        return 2
    client = Client(url, api_key)
    try:
        client.check()
    except Fatal as e:
        report = Report(url, error=str(e))
    else:
        report = send(client, jobs, fields, args)
    if report.error:
        print(f"edge-face enroll: {report.error}", file=sys.stderr)
    print_report(report, args.json)
    if report.error:
        return 2
    return 1 if report.failed else 0
