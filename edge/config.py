"""Typed settings: embedded defaults, then a YAML file, then `EDGE_*` environment variables.

Every section forbids unknown keys so that a typo in a config file fails at start with the
key's dotted path, instead of being silently ignored on a box nobody is watching.
Nested environment overrides use a double underscore: `EDGE_SERVER__PORT=9000`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The labelled test photos beside the checkout (`../shared/testdata`); evaluation and
#: benchmark commands default to it and take `--data` for another folder.
DEFAULT_TESTDATA = REPO_ROOT.parent / "shared" / "testdata"

Backend = Literal["openvino", "onnxruntime"]
Provider = Literal["tensorrt", "cuda", "openvino", "cpu"]


def default_data_dir() -> Path:
    """XDG data dir, so a non-root install works without extra flags."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edge-face"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelsConfig(Section):
    """Which model files, from where, and which runtime executes them."""

    dir: Path | None = Field(None, description="model directory; default <data_dir>/models")
    mirror: Path | None = Field(
        None, description="local folder holding the model files; used instead of downloading"
    )
    manifest: Path = Field(REPO_ROOT / "models" / "manifest.json")
    pack: str = "default"
    backend: Backend = "openvino"
    backend_overrides: dict[str, Backend] = Field(
        default_factory=dict, description="per-role backend, e.g. {embedding: onnxruntime}"
    )
    providers: list[Provider] = Field(
        default_factory=lambda: ["tensorrt", "cuda", "openvino", "cpu"],
        description="onnxruntime providers allowed, in order of preference",
    )
    openvino_device: str = Field("CPU", description="CPU, GPU or AUTO")
    openvino_precision: Literal["auto", "f32", "bf16", "f16"] = Field(
        "auto",
        description="OpenVINO inference precision; auto = the plugin default (bf16 on CPUs "
        "with AMX/AVX512-BF16, f32 elsewhere)",
    )
    threads: int = Field(0, ge=0, description="intra-op threads per model; 0 = runtime default")
    int8: bool = Field(
        False,
        description="use INT8 variants produced by `edge-face models quantize` when present",
    )
    warmup: bool = True


class DetectionConfig(Section):
    fast_score: float = Field(0.6, gt=0, lt=1)
    fast_sure: float = Field(
        0.9, gt=0, le=1, description="fast hits below this are re-checked by the slow detector"
    )
    slow_score: float = Field(0.6, gt=0, lt=1)
    nms_iou: float = Field(0.4, gt=0, lt=1)
    fast_input: int = Field(320, ge=64, description="long side the fast detector runs at")
    slow_input: int = Field(640, ge=64)
    min_face_px: int = Field(32, ge=1)
    min_face_ratio: float = Field(0.10, ge=0, le=1)


class ApiKeyConfig(Section):
    key: SecretStr
    instance: str = "default"


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    api_key_file: Path | None = Field(
        None, description="where a generated key is kept; default <data_dir>/api-key"
    )
    max_body_bytes: int = Field(5 * 2**20, ge=1024)
    max_uri_bytes: int = Field(8 * 2**10, ge=256)
    max_header_bytes: int = Field(25 * 2**10, ge=1024)
    max_pixels: int = Field(40_000_000, ge=1)
    inference_threads: int = Field(2, ge=1)
    queue_limit: int = Field(32, ge=1, description="requests admitted at once before 429")
    rate_limit_per_key: float = Field(0, ge=0, description="requests/s per key; 0 = off")
    liveness_path: str = "/api/v1/liveness"
    metrics_need_key: bool = False
    drain_seconds: float = Field(10, ge=0)
    header_timeout_s: float = Field(
        10,
        gt=0,
        description="seconds a client has, from connecting (or from the first byte of a next"
        " request on a kept-alive connection), to send the complete request line and headers;"
        " then 408 and the connection closes (a silent client is just disconnected)",
    )
    body_timeout_s: float = Field(
        60,
        gt=0,
        description="seconds a client has to send the whole request body once its headers"
        " arrived; then 408 and the connection closes (60 s leaves 85 KB/s for a 5 MB body)",
    )
    keepalive_s: float = Field(
        30, gt=0, description="an idle kept-alive connection is closed after this many seconds"
    )
    max_connections: int = Field(
        512,
        ge=2,
        description="open client connections at most; past it the connection idlest in its"
        " request headers is dropped for the new one, or the new one gets 503 when every"
        " connection is busy with a request (keep it well under the process's fd limit)",
    )


class ModelNamesConfig(Section):
    face: str = "EDGE_FACE_V1"
    face_aliases: list[str] = Field(default_factory=lambda: ["JCV_FACE_K25000", "JCV_FACE_J10000"])
    liveness: str = "EDGE_LIVENESS_V1"
    liveness_aliases: list[str] = Field(default_factory=lambda: ["JCV_2D_I25000"])
    aliases_enabled: bool = True


class StoreConfig(Section):
    path: Path | None = Field(None, description="SQLite file; default <data_dir>/edge.sqlite3")
    purge_interval_s: float = Field(60, gt=0)


class MqttConfig(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    prefix: str = "edge-face"
    client_id: str | None = None
    qos: int = Field(1, ge=0, le=2)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None
    protocol: Literal["v5", "v311"] = "v5"
    queue_limit: int = Field(1000, ge=1)
    keepalive: int = Field(30, ge=5)
    homeassistant_discovery: bool = False
    discovery_prefix: str = "homeassistant"
    cert_file: Path | None = Field(None, description="client certificate for mutual TLS")
    key_file: Path | None = None
    tls_insecure: bool = Field(False, description="skip broker hostname check (lab only)")
    reconnect_min_s: float = Field(0.5, gt=0, description="first reconnect delay, doubling")
    reconnect_max_s: float = Field(30, gt=0)
    inflight_window: int = Field(32, ge=1, description="unacknowledged publishes at once")


class CameraConfig(Section):
    name: str
    source: str = Field(description="V4L2 index, rtsp/http URL, gst pipeline, video or folder")
    detect_fps: float = Field(8, gt=0)
    liveness_votes: int = Field(3, ge=1)
    enabled: bool = True
    instance: str = Field("default", description="store instance searched and enrolled into")
    collection: str = Field("", description="search only this collection; empty = all")
    spoof_threshold: float = Field(0.5, gt=0, lt=1, description="spoofScore >= this is spoof")
    track_timeout_s: float = Field(1.0, gt=0, description="a track ends after this unseen")
    burst: bool = Field(True, description="analyse every frame while a face is undecided")
    realtime: bool | None = Field(
        None, description="pace file sources at their fps and drop late frames; None = auto"
    )


class SyncConfig(Section):
    enabled: bool = False
    upstream: str | None = None


class Settings(BaseSettings):
    """The effective configuration of one edge-face process."""

    model_config = SettingsConfigDict(
        env_prefix="EDGE_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    device_id: str = "edge-1"
    data_dir: Path = Field(default_factory=default_data_dir)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    names: ModelNamesConfig = Field(default_factory=ModelNamesConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    cameras: list[CameraConfig] = Field(default_factory=list)
    sync: SyncConfig = Field(default_factory=SyncConfig)

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the YAML file (passed as init kwargs).
        return (env_settings, init_settings)

    # Derived locations -------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        return (self.models.dir or self.data_dir / "models").expanduser()

    @property
    def store_path(self) -> Path:
        return (self.store.path or self.data_dir / "edge.sqlite3").expanduser()

    @property
    def api_key_path(self) -> Path:
        return (self.server.api_key_file or self.data_dir / "api-key").expanduser()


class ConfigError(Exception):
    """A config file or environment value is wrong; the message names the key."""


def _format_validation(err: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, an optional YAML file and the environment.

    `path` may also come from `EDGE_CONFIG`. Raises ConfigError with the offending key.
    """
    path = path or os.environ.get("EDGE_CONFIG")
    data: dict[str, Any] = {}
    origin = "defaults + environment"
    if path:
        p = Path(path).expanduser()
        origin = f"{p} + environment"
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"config file not found: {p}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        data.update(loaded)
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, origin)) from None


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective config as plain data with every secret replaced by '***'."""
    return settings.model_dump(mode="json")  # SecretStr dumps as '**********'
