"""`edge-face enroll`: bulk enrolment of photos for integrators.

Photos go to the RUNNING service through `POST /api/v1/entities/faces` (via `edge.client`),
never straight into its SQLite file: the service's in-memory search index stays in step with
the store, and every photo meets exactly the contract's validation (the same error codes a
REST client would get). Image bytes are read, possibly shrunk, base64-encoded into the
request body and dropped; they are never printed or logged.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from edge.client import ApiError, Client, Image, ServiceUnreachable
from edge.config import Settings
from edge.usererror import UserError

FACES_PATH = "/api/v1/entities/faces"
#: Suffixes picked up when scanning a folder (a file named on the command line is always sent:
#: the service, not the suffix, decides whether it is an image).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
IN_FLIGHT = 2  # the service's default inference pool is 2 threads: more would only queue
RETRIES = 3  # for 429 (queue full) and 503 (warming up), which are transient
SHRINK_RETRIES = 3  # further shrinking after a 413/217 from a box with smaller limits
#: Room left in the body for everything but the base64 image (model, key, collection ≤ 256
#: chars each, metadata, JSON punctuation).
BODY_OVERHEAD = 4096
#: Shrinking never goes below this long side: a face in a smaller photo of a group or a
#: half-body shot risks falling under the 32 px / 10 % rule (224).
MIN_LONG_SIDE = 640


class Fatal(Exception):
    """The whole run cannot go on: service unreachable or api-key refused (exit 2)."""


@dataclass(frozen=True)
class Job:
    path: Path
    key: str
    stem_key: bool = False  # the key is the file name: usually a mistake (see `collect`)


@dataclass
class Outcome:
    job: Job
    uuid: str | None = None
    code: int | None = None
    name: str = ""
    message: str = ""
    shrunk_from: int | None = None  # bytes of the original file when it was re-encoded
    sent_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.uuid is not None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": str(self.job.path), "key": self.job.key}
        if self.ok:
            d["uuid"] = self.uuid
        else:
            d.update(code=self.code, name=self.name, message=self.message)
        if self.shrunk_from is not None:
            d.update(shrunkFrom=self.shrunk_from, sentBytes=self.sent_bytes)
        return d


@dataclass
class Report:
    url: str
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # key → enrolments already there
    replaced: dict[str, int] = field(default_factory=dict)  # key → old enrolments deleted
    kept: dict[str, int] = field(default_factory=dict)  # --replace, but no new photo enrolled

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
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave a key that already has enrolments (same model and collection) alone",
    )
    existing.add_argument(
        "--replace",
        action="store_true",
        help="a key that already has enrolments gets exactly the new photos: its old "
        "enrolments are deleted once at least one new photo of it is enrolled",
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
                Job(photo, key) if key is not None else Job(photo, photo.stem, stem_key=True)
                for photo in _photos(path)
            )
        elif path.is_file():
            jobs.append(Job(path, key) if key is not None else Job(path, path.stem, True))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return jobs


def stem_key_warning(jobs: Sequence[Job]) -> str | None:
    """File names as keys make every photo a different person; say so before sending."""
    stems = [j for j in jobs if j.stem_key]
    if not stems:
        return None
    example = ", ".join(repr(j.key) for j in stems[:3])
    return (
        f"warning: {len(stems)} photo(s) use their file name as the key ({example}"
        f"{', ...' if len(stems) > 3 else ''}), so each becomes a different person. "
        "Usually you want one folder per person (gallery/alice/1.jpg, gallery/alice/2.jpg) "
        "and `edge-face enroll gallery/`, or --key NAME for photos of one person."
    )


# Shrinking ---------------------------------------------------------------------------------
def body_budget(max_body_bytes: int) -> int:
    """Largest image file (bytes) whose base64 still fits the request body limit."""
    return max(0, (max_body_bytes - BODY_OVERHEAD) // 4 * 3)


def _decode(data: bytes, upright: bool) -> Any:
    import cv2
    import numpy as np

    flags = cv2.IMREAD_COLOR if upright else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def shrink(data: bytes, budget: int, max_pixels: int, upright: bool) -> tuple[bytes, int] | None:
    """Re-encode a too-big photo as a JPEG of at most `budget` bytes and `max_pixels` pixels.

    Quality is lowered first (faces survive JPEG 70 well), then the size in steps of 0.8,
    never under `MIN_LONG_SIDE`. `upright`: apply the EXIF orientation now, because the
    re-encoded file carries no EXIF for the service to apply. Returns (JPEG, its pixels), or
    None: not decodable here (GIF, corrupt) or still too big; the original is then sent and
    the service's answer stands.
    """
    import cv2

    img = _decode(data, upright)
    if img is None:
        return None
    h, w = img.shape[:2]
    scale = min(1.0, math.sqrt(max_pixels / (h * w)))
    while max(h, w) * scale >= MIN_LONG_SIDE:
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        small = img if scale == 1.0 else cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        for quality in (90, 80, 70):
            ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and buf.size <= budget:
                return buf.tobytes(), small.shape[0] * small.shape[1]
        scale *= 0.8
    return None


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
        from edge.api.keyring import read_key_file  # several keys while one is rotated

        return next(iter(read_key_file(settings.api_key_path)), None)
    except OSError:
        return None


def no_key_message(command: str, settings: Settings) -> str:
    return (
        f"edge-face {command}: no api-key: give --api-key, set EDGE_API_KEY, or run on the box "
        f"whose generated key is in {settings.api_key_path}"
    )


def faces_url(base: str) -> str:
    if not base.startswith(("http://", "https://")):
        raise UserError(f"--url {base!r} is not an http(s) URL, e.g. http://127.0.0.1:8080")
    base = base.rstrip("/")
    if base.endswith("/api/v1"):
        base = base[: -len("/api/v1")]
    return base + FACES_PATH


def check(client: Client) -> None:
    """One cheap authenticated call before any photo is read: reachable, key accepted."""
    try:
        client.list(limit=1)
    except ServiceUnreachable as e:
        raise Fatal(e.message) from None
    except ApiError as e:
        if e.status == 401:
            raise Fatal(f"the service at {client.url} refused the api-key (401)") from None
        raise Fatal(f"the service at {client.url} answered {e}") from None


# Sending -------------------------------------------------------------------------------------
@dataclass
class Sender:
    """Sends one photo, shrinking it first (or after a 413/217) so size alone never fails it."""

    client: Client
    fields: dict[str, Any]
    auto_rotate: bool
    max_body_bytes: int
    max_pixels: int

    def _create(self, job: Job, data: bytes) -> str:
        image = Image(data, auto_rotate=self.auto_rotate)
        entity = self.client.create(
            image,
            key=job.key,
            collection=self.fields["collection"],
            ttl=self.fields.get("ttl"),
            model=self.fields["model"],
        )
        return entity.uuid

    def enroll(self, job: Job) -> Outcome:
        original = job.path.read_bytes()
        data, limit, pixels = original, body_budget(self.max_body_bytes), self.max_pixels
        if len(original) > limit:
            shrunk = shrink(original, limit, pixels, self.auto_rotate)
            if shrunk is not None:
                data, pixels = shrunk
        for attempt in range(SHRINK_RETRIES + 1):
            try:
                uuid = self._create(job, data)
            except ServiceUnreachable as e:
                raise Fatal(e.message) from None
            except ApiError as e:
                if e.status == 401:
                    msg = f"the service at {self.client.url} refused the api-key (401)"
                    raise Fatal(msg) from None
                # The box may run smaller limits than this config says (413: body, 217:
                # pixels): shrink further and try again, a few times.
                if e.code in (413, 217) and attempt < SHRINK_RETRIES:
                    if e.code == 413:
                        limit = min(limit, len(data)) // 2
                    else:
                        img = _decode(data, self.auto_rotate) if data is original else None
                        now = pixels if img is None else img.shape[0] * img.shape[1]
                        pixels = int(min(pixels, now) * 0.7)
                    shrunk = shrink(original, limit, pixels, self.auto_rotate)
                    if shrunk is not None:
                        data, pixels = shrunk
                        continue
                out = Outcome(job, code=e.code, name=e.name, message=e.message)
            else:
                out = Outcome(job, uuid=uuid)
            if data is not original:
                out.shrunk_from, out.sent_bytes = len(original), len(data)
            return out
        raise AssertionError("unreachable")


class Progress:
    """A one-line bar on a terminal; one plain line per photo otherwise (logs, CI, pipes)."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream, self.done = total, stream, 0
        self.tty = stream.isatty()
        self.lock = threading.Lock()

    def step(self, out: Outcome) -> None:
        with self.lock:
            self.done += 1
            if self.tty:
                width = 30
                filled = width * self.done // max(1, self.total)
                bar = "#" * filled + "-" * (width - filled)
                print(
                    f"\r[{bar}] {self.done}/{self.total} {out.job.key[:30]:<30}",
                    end="",
                    file=self.stream,
                    flush=True,
                )
                return
            what = f"enrolled as {out.job.key!r}" if out.ok else f"failed: {out.code} {out.name}"
            note = f" (shrunk from {_mb(out.shrunk_from)})" if out.shrunk_from else ""
            print(f"[{self.done}/{self.total}] {out.job.path}: {what}{note}", file=self.stream)

    def end(self) -> None:
        if self.tty and self.done:
            print(file=self.stream, flush=True)


def _mb(n: int | None) -> str:
    n = n or 0
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def send(sender: Sender, jobs: Sequence[Job], report: Report) -> None:
    """Enrol every job, `IN_FLIGHT` at a time; a fatal error stops the rest."""
    stop = threading.Event()
    lock = threading.Lock()
    progress = Progress(len(jobs), sys.stderr)

    def one(job: Job) -> Outcome | None:
        if stop.is_set():
            return None
        try:
            out = sender.enroll(job)
        except Fatal as e:
            stop.set()
            with lock:
                report.error = report.error or str(e)
            return None
        except OSError as e:  # the file vanished or is unreadable: that photo fails
            out = Outcome(job, code=None, name="unreadable", message=str(e))
        progress.step(out)
        return out

    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        results = list(pool.map(one, jobs))
    progress.end()
    report.outcomes = [r for r in results if r is not None]


def existing(client: Client, keys: Iterable[str], fields: dict[str, Any]) -> dict[str, list[str]]:
    """key → uuids already enrolled with this model in exactly this collection."""
    found: dict[str, list[str]] = {}
    for key in sorted(set(keys)):
        if not key:  # "" filters nothing on the server: an empty key is never "existing"
            continue
        uuids = [
            e.uuid
            for e in client.entities(model=fields["model"], key=key)
            if e.key == key and e.collection == fields["collection"]
        ]
        if uuids:
            found[key] = uuids
    return found


def delete_old(client: Client, report: Report, old: dict[str, list[str]]) -> None:
    """--replace: drop the old enrolments of keys that got at least one new photo."""
    fresh = {o.job.key for o in report.enrolled}
    for key, uuids in old.items():
        if key not in fresh:
            report.kept[key] = len(uuids)
            continue
        for uuid in uuids:
            try:
                client.delete(uuid)
            except ApiError as e:
                if e.status != 404:  # already gone (expired, deleted meanwhile) is fine
                    raise
        report.replaced[key] = len(uuids)


# Output ----------------------------------------------------------------------------------------
def _failure_line(o: Outcome) -> str:
    code = "" if o.code is None else f"{o.code} "
    return f"  {o.job.path}: {code}{o.name}: {o.message}"


def print_report(report: Report, as_json: bool) -> None:
    if as_json:
        doc = {
            "url": report.url,
            "enrolled": [o.as_dict() for o in report.enrolled],
            "failed": [o.as_dict() for o in report.failed],
            "skipped": [{"key": k, "existing": n} for k, n in report.skipped.items()],
            "replaced": [{"key": k, "deleted": n} for k, n in report.replaced.items()],
            "kept": [{"key": k, "existing": n} for k, n in report.kept.items()],
            "error": report.error,
        }
        print(json.dumps(doc, indent=2))
        return
    line = f"enrolled {len(report.enrolled)}, failed {len(report.failed)}"
    if report.skipped:
        line += f", skipped {len(report.skipped)} key(s) already enrolled"
    if report.replaced:
        deleted = sum(report.replaced.values())
        line += f", replaced {len(report.replaced)} key(s) ({deleted} old enrolment(s) deleted)"
    print(line)
    for o in report.enrolled:
        if o.shrunk_from:
            print(f"  {o.job.path}: shrunk {_mb(o.shrunk_from)} -> {_mb(o.sent_bytes)} to fit")
    for o in report.failed:
        print(_failure_line(o))
    for key, n in report.kept.items():
        print(f"  {key!r}: no new photo enrolled, its {n} old enrolment(s) were kept")


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
    warning = stem_key_warning(jobs)
    if warning:
        print(warning, file=sys.stderr)
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
        print(no_key_message("enroll", settings), file=sys.stderr)
        return 2
    try:
        client = Client(args.url or default_url(settings), api_key, retries=RETRIES)
    except ValueError as e:
        print(f"edge-face enroll: --url: {e}", file=sys.stderr)
        return 2
    report = Report(url)
    try:
        check(client)
        old: dict[str, list[str]] = {}
        if args.skip_existing or args.replace:
            old = existing(client, (j.key for j in jobs), fields)
        if args.skip_existing:
            report.skipped = {k: len(v) for k, v in old.items()}
            jobs = [j for j in jobs if j.key not in old]
        sender = Sender(
            client,
            fields,
            args.auto_rotate,
            settings.server.max_body_bytes,
            settings.server.max_pixels,
        )
        send(sender, jobs, report)
        if args.replace and not report.error:
            delete_old(client, report, old)
    except Fatal as e:
        report.error = str(e)
    except ServiceUnreachable as e:
        report.error = e.message
    except ApiError as e:  # listing/deleting for --skip-existing/--replace went wrong
        report.error = f"the service at {client.url} answered {e}"
    if report.error:
        print(f"edge-face enroll: {report.error}", file=sys.stderr)
    print_report(report, args.json)
    if report.error:
        return 2
    return 1 if report.failed else 0
