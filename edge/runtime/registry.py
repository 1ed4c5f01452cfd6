"""The model registry: the files of one pack, opened once with the configured backends."""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

from edge.config import Settings
from edge.runtime.backends import InferenceSession, open_session
from edge.runtime.fetch import verify_file
from edge.runtime.manifest import Manifest, ModelFile

log = logging.getLogger(__name__)


def pack_fingerprint(manifest: Manifest, pack_name: str) -> str:
    """The fingerprint a pack stamps on its vectors; needs no installed file."""
    pack = manifest.pack(pack_name)
    h = hashlib.sha256()
    partners = sorted(r for r in pack.roles if r.startswith("embedding_"))
    for role in ["embedding", *partners]:
        for name in pack.roles.get(role, []):
            h.update(f"{role}:{manifest.by_file[name].sha256}\n".encode())
    for role, w in sorted((pack.embedding_weights or {}).items()):
        h.update(f"weight:{role}:{w!r}\n".encode())
    return h.hexdigest()[:16]


#: The small models every search and enrolment runs: one thread per inference, on the
#: calling thread, one replica per concurrent caller up to the cores
#: (`open_session(one_thread=True)`). On two cores they took 30-45 % less CPU per inference
#: at the same latency than the runtime's default, and a search about 10 % less again
#: than with a stream worker per core (`backends._Replicas`). Other roles keep the
#: runtime's latency default.
ONE_THREAD_ROLES = frozenset({"detector_fast", "embedding"})


class ModelMissingError(Exception):
    """A role's file is not installed (or fails its hash); run `edge-face models fetch`."""


class ModelRegistry:
    """Opens each role's session on first use and keeps it for the life of the process."""

    def __init__(self, settings: Settings, manifest: Manifest | None = None) -> None:
        self.settings = settings
        self.manifest = manifest or Manifest.load(settings.models.manifest)
        self.pack_name = settings.models.pack
        self.pack = self.manifest.pack(self.pack_name)
        self.model_dir = settings.model_dir
        self._sessions: dict[str, InferenceSession] = {}
        self._lock = threading.Lock()

    # What the pack holds ------------------------------------------------------------------
    def has(self, role: str) -> bool:
        return role in self.pack.roles

    def files(self, role: str) -> list[ModelFile]:
        try:
            names = self.pack.roles[role]
        except KeyError:
            msg = f"model pack {self.pack_name!r} has no {role!r} model"
            raise ModelMissingError(msg) from None
        return [self.manifest.by_file[n] for n in names]

    def path(self, role: str) -> Path:
        return self.model_dir / self.files(role)[0].file

    def backend_for(self, role: str) -> str:
        return self.settings.models.backend_overrides.get(role, self.settings.models.backend)

    @property
    def fingerprint(self) -> str:
        """Identifies the embedding weights: vectors with different fingerprints never mix.

        Only the recognition roles (`embedding`, `embedding_<x>` partners) and their fusion
        weights count, so swapping a detail model (mask, pose, ...) does not orphan an
        enrolled gallery. A one-network pack hashes exactly as before partners existed.
        """
        return pack_fingerprint(self.manifest, self.pack_name)

    # Sessions -----------------------------------------------------------------------------
    def session(self, role: str) -> InferenceSession:
        sess = self._sessions.get(role)
        if sess is not None:
            return sess
        with self._lock:
            sess = self._sessions.get(role)
            if sess is None:
                path = self.path(role)
                int8 = self._int8_path(role)
                if not path.is_file():
                    raise ModelMissingError(
                        f"{path.name} ({role}) is not installed in {self.model_dir}; "
                        "run `edge-face models fetch`"
                    )
                cfg = self.settings.models
                sess = open_session(
                    int8 or path,
                    role,
                    self.backend_for(role),
                    providers=cfg.providers,
                    device=cfg.openvino_device,
                    threads=cfg.threads,
                    precision=cfg.openvino_precision,
                    one_thread=role in ONE_THREAD_ROLES,
                )
                if int8 is not None:
                    sess.info.precision = "int8"
                self._sessions[role] = sess
        return sess

    def _int8_path(self, role: str) -> Path | None:
        """The accepted INT8 variant of the role's model when `models.int8` is on, else None
        (with a log line saying why the FP model is used)."""
        if not self.settings.models.int8:
            return None
        from edge.runtime.quantize import QUANTIZABLE_ROLES, select_int8

        if role not in QUANTIZABLE_ROLES:
            return None
        spec = self.files(role)[0]
        path, why = select_int8(self.model_dir, spec)
        if path is None:
            log.info("%s: using FP model %s: %s", role, spec.file, why)
        else:
            log.info("%s: using INT8 variant %s of %s", role, path.name, spec.file)
        return path

    def verify(self) -> list[str]:
        """Problems with the installed files of the pack (empty list = all good)."""
        problems = []
        for role in self.pack.roles:
            for f in self.files(role):
                st = verify_file(f, self.model_dir)
                if st.state != "ok":
                    problems.append(f"{f.file} ({role}): {st.state}")
        return problems

    def opened(self) -> dict[str, InferenceSession]:
        return dict(self._sessions)

    def components(self) -> list[dict[str, Any]]:
        """Per file of the pack: role, hash, licence flags and the backend actually used."""
        out = []
        for role in sorted(self.pack.roles):
            sess = self._sessions.get(role)
            for f in self.files(role):
                out.append(
                    {
                        "role": role,
                        "file": f.file,
                        "sha256": f.sha256,
                        "licence": f.licence,
                        "licenceFlags": list(f.licence_flags),
                        "nonCommercial": f.non_commercial,
                        "backend": sess.info.backend if sess else self.backend_for(role),
                        "device": sess.info.device if sess else None,
                        "fallback": sess.info.fallback if sess else None,
                        "precision": sess.info.precision if sess else None,
                        "loaded": sess is not None,
                    }
                )
        return out
