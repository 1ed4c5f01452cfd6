"""The model manifest: which files exist, their hashes and licences, and which make a pack."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSource(_Strict):
    kind: str  # "github" or "pypi-wheel"
    urls: list[str]
    repo: str | None = None
    commit: str | None = None
    path: str | None = None
    package: str | None = None
    version: str | None = None
    member: str | None = Field(None, description="path inside an archive (wheel)")


class ModelFile(_Strict):
    file: str
    role: str
    sha256: str
    bytes: int
    licence: str
    licence_detail: str
    licence_flags: list[str]
    non_commercial: bool
    source: FileSource


class Pack(_Strict):
    description: str
    non_commercial: bool
    roles: dict[str, list[str]] = Field(description="role -> files; the first file is the entry")


class Manifest(_Strict):
    schema_: int = Field(alias="schema")
    files: list[ModelFile]
    packs: dict[str, Pack]

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))

    @cached_property
    def by_file(self) -> dict[str, ModelFile]:
        return {f.file: f for f in self.files}

    def pack(self, name: str) -> Pack:
        try:
            return self.packs[name]
        except KeyError:
            raise KeyError(f"unknown model pack {name!r}; known: {sorted(self.packs)}") from None

    def pack_files(self, name: str) -> list[ModelFile]:
        """Every file a pack needs, each once, in manifest order."""
        wanted = {f for files in self.pack(name).roles.values() for f in files}
        return [f for f in self.files if f.file in wanted]
