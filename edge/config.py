"""Typed settings: embedded defaults, then a YAML file, then `EDGE_*` environment variables.

Every section forbids unknown keys so that a typo in a config file fails at start with the
key's dotted path, instead of being silently ignored on a box nobody is watching.
Nested environment overrides use a double underscore: `EDGE_SERVER__PORT=9000`. The
environment is checked the same way: `EDGE_SERVER__PROT` is an error naming the variable,
and `EDGE_SERVER_PORT` (one underscore, silently ignored by pydantic-settings) is warned
about with the name that would work.
"""

from __future__ import annotations

import difflib
import logging
import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from edge.usererror import UserError

log = logging.getLogger("edge.config")

#: Environment variable naming the labelled test photos that `eval` and `bench` read when no
#: `--data` is given; the product ships no such folder and assumes none beside it.
TESTDATA_ENV = "EDGE_TESTDATA"


def testdata_dir(given: Path | None, command: str, sub: str = "", flag: str = "--data DIR") -> Path:
    """`given` (the command's flag) when set, else $EDGE_TESTDATA/`sub`.

    Neither set exits with one line saying what to pass: the product assumes no test photos
    beside it, so a fresh install must never silently read some other folder.
    """
    if given is not None:
        return Path(given).expanduser()
    env = os.environ.get(TESTDATA_ENV, "").strip()
    if env:
        return Path(env).expanduser() / sub
    raise SystemExit(
        f"edge-face {command}: no test photos given; pass {flag} or set "
        f"{TESTDATA_ENV}=DIR (a folder laid out like the shared testdata)"
    )


Backend = Literal["openvino", "onnxruntime"]
Provider = Literal["tensorrt", "cuda", "openvino", "cpu"]
DEFAULT_PROVIDERS: tuple[Provider, ...] = ("tensorrt", "cuda", "openvino", "cpu")


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
    manifest: Path | None = Field(
        None, description="model manifest; default: the one shipped in the package"
    )
    pack: str = "default"
    backend: Backend = "openvino"
    backend_overrides: dict[str, Backend] = Field(
        default_factory=dict, description="per-role backend, e.g. {embedding: onnxruntime}"
    )
    providers: list[Provider] = Field(
        default_factory=lambda: list(DEFAULT_PROVIDERS),
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


class LandmarksConfig(Section):
    source: Literal["evaluated", "pfld", "mesh"] = Field(
        "evaluated",
        description="where the 106 landmarks of the API come from: evaluated = the mesh for "
        "the parts `edge-face eval faces` found no worse (edge/data/mesh106_map.json), "
        "PFLD-106 for the rest; pfld = PFLD-106 only; mesh = the 468-point mesh only",
    )


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
    tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate (with its chain) to serve HTTPS directly; needs "
        "tls_key_file. Without it the service speaks plain HTTP (put a TLS proxy in front "
        "when it listens beyond loopback)",
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file")
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

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        return self


#: The face model name a pack serves when `names.face` is not set: its recognizer's name
#: (V1 = MobileFaceNet, V2 = MobileFaceNet + dlib fused, CC0 = dlib alone).
PACK_FACE_NAMES = {"v2": "EDGE_FACE_V2", "cc0": "EDGE_FACE_CC0"}


class ModelNamesConfig(Section):
    face: str = "EDGE_FACE_V1"
    face_aliases: list[str] = Field(default_factory=lambda: ["JCV_FACE_K25000", "JCV_FACE_J10000"])
    liveness: str = "EDGE_LIVENESS_V1"
    liveness_aliases: list[str] = Field(default_factory=lambda: ["JCV_2D_I25000"])
    aliases_enabled: bool = True


class StoreConfig(Section):
    path: Path | None = Field(None, description="SQLite file; default <data_dir>/edge.sqlite3")
    purge_interval_s: float = Field(60, gt=0)
    change_log_keep_s: float = Field(
        300, ge=0, description="without sync: drop change-log rows older than this at a write"
    )
    change_log_keep_rows: int = Field(
        10000, ge=0, description="without sync: keep at most this many change-log rows"
    )


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
    status_interval_s: float = Field(
        30, ge=0, description="re-publish the retained status this often; 0 = only on changes"
    )


class CameraConfig(Section):
    name: str
    source: str = Field(description="V4L2 index, rtsp/http URL, gst pipeline, video or folder")
    detect_fps: float = Field(8, gt=0)
    liveness_votes: int = Field(3, ge=1)
    liveness_blink: bool = Field(
        False, description="a live verdict needs a blink on the track (prints cannot blink)"
    )
    liveness_rigid: bool = Field(
        False, description="a live track whose face turned like a plane (photo/screen) is spoof"
    )
    enabled: bool = True
    instance: str = Field("default", description="store instance searched and enrolled into")
    collection: str = Field("", description="search only this collection; empty = all")
    spoof_threshold: float = Field(0.5, gt=0, lt=1, description="spoofScore >= this is spoof")
    track_timeout_s: float = Field(1.0, gt=0, description="a track ends after this unseen")
    burst: bool = Field(True, description="analyse every frame while a face is undecided")
    realtime: bool | None = Field(
        None, description="pace file sources at their fps and drop late frames; None = auto"
    )


class SyncBoxConfig(Section):
    """A box the hub serves: its token(s) and the instances it may read and write."""

    id: str = Field(min_length=1, description="the box's name in hub logs and status")
    token_sha256: list[str] = Field(
        min_length=1,
        description="sha256 hex of the box's bearer token(s); two during a rotation "
        "(`edge-face sync token` makes a token and its hash)",
    )
    instances: list[str] = Field(min_length=1, description="instances it may push and pull")

    @field_validator("token_sha256")
    @classmethod
    def _hex(cls, v: list[str]) -> list[str]:
        for h in v:
            if len(h) != 64 or any(c not in "0123456789abcdef" for c in h.lower()):
                raise ValueError("token_sha256 entries are 64 hex digits (sha256 of the token)")
        return [h.lower() for h in v]


class SyncConfig(Section):
    """Fleet sync: a box replicates its gallery through a hub (`role: hub`)."""

    enabled: bool = False
    role: Literal["box", "hub"] = Field(
        "box", description="hub: serve /sync/v1 to boxes; box: sync with `upstream`"
    )
    upstream: str | None = Field(
        None,
        description="the hub's base URL (a box; or a site hub's central hub), e.g. https://hub:8443",
    )
    token: SecretStr | None = Field(None, description="this box's bearer token for the hub")
    instances: list[str] | None = Field(
        None, description="instances to sync; default: those of server.api_keys"
    )
    ca_file: Path | None = Field(None, description="CA bundle that signed the hub's certificate")
    cert_file: Path | None = Field(None, description="client certificate for mutual TLS")
    key_file: Path | None = None
    client_ca_file: Path | None = Field(
        None, description="hub: CA of the boxes' client certificates (HTTPS asks for one)"
    )
    require_client_cert: bool = Field(
        False, description="hub: refuse sync calls without a verified client certificate"
    )
    push_batch: int = Field(500, ge=1, le=10_000)
    pull_batch: int = Field(1000, ge=1, le=10_000)
    long_poll_s: float = Field(
        30, ge=0, le=300, description="how long a pull waits at the hub (idle: 2 requests/min)"
    )
    retry_min_s: float = Field(0.5, gt=0, description="first retry delay after a failure")
    retry_max_s: float = Field(30, gt=0, description="retry delays double up to this")
    stale_after_s: float = Field(
        3600, ge=0, description="/readyz says gallery_stale after this long without a sync; 0=off"
    )
    max_clock_ahead_s: float = Field(
        60, gt=0, description="refuse remote clock stamps further ahead of this clock"
    )
    repair_interval_s: float = Field(
        3600, ge=0, description="compare bucket digests with the hub this often; 0 = never"
    )
    hub_path: Path | None = Field(None, description="hub database; default <data_dir>/hub.sqlite3")
    hub_database: SecretStr | None = Field(
        None,
        description="hub: postgresql://user@host:5432/db to keep the hub in PostgreSQL "
        "instead of the SQLite file (pip install 'edge-face[hub-postgres]')",
    )
    hub_database_password_file: Path | None = Field(
        None, description="hub: file holding the PostgreSQL password (or PGPASSWORD, ~/.pgpass)"
    )
    boxes: list[SyncBoxConfig] = Field(default_factory=list, description="hub: the boxes served")
    hub_serves_api: bool = Field(
        False,
        description="hub: also load the vision models and answer the face/liveness REST API "
        "(enrol and search at the hub); off, a hub loads no model",
    )

    doorbell_topic: str | None = Field(
        None,
        description="MQTT topic of the hub's retained head doorbell (needs mqtt.enabled): the "
        "hub publishes its feed head there, boxes pull at once when it moves; the log stays "
        "HTTP. The same topic on hub and boxes, e.g. edge-face/hub/sync/head",
    )

    @property
    def loads_models(self) -> bool:
        """Whether this process needs the vision models: every box does, a hub only when
        it also answers the face/liveness API (`hub_serves_api`)."""
        return not (self.enabled and self.role == "hub" and not self.hub_serves_api)

    @model_validator(mode="after")
    def _consistent(self) -> SyncConfig:
        if self.role == "box" and self.upstream and not self.enabled:
            raise ValueError("sync.upstream is set but sync.enabled is false: set enabled: true")
        if self.enabled and self.role == "box" and not (self.upstream and self.token):
            raise ValueError("a syncing box needs sync.upstream (the hub URL) and sync.token")
        if self.enabled and self.role == "hub" and self.upstream and not self.token:
            raise ValueError(
                "a site hub (role: hub with sync.upstream) needs sync.token: its token at "
                "the central hub"
            )
        if self.enabled and self.role == "hub" and not self.boxes:
            raise ValueError("a hub needs sync.boxes (id, token_sha256, instances per box)")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("sync.cert_file and sync.key_file go together")
        if self.require_client_cert and self.client_ca_file is None:
            raise ValueError("sync.require_client_cert needs sync.client_ca_file (the CA)")
        if self.doorbell_topic is not None and (
            not self.doorbell_topic or set("+#\x00") & set(self.doorbell_topic)
        ):
            raise ValueError("sync.doorbell_topic must be one MQTT topic: no + or # wildcards")
        if self.hub_database is not None:
            scheme = self.hub_database.get_secret_value().partition("://")[0]
            if scheme not in ("postgresql", "postgres"):
                raise ValueError(
                    "sync.hub_database takes a postgresql://user@host:port/dbname URL "
                    "(leave it unset for the SQLite hub at sync.hub_path)"
                )
            if self.hub_path is not None:
                raise ValueError("set sync.hub_database (PostgreSQL) or sync.hub_path, not both")
        return self


class LoggingConfig(Section):
    format: Literal["text", "json"] = Field(
        "text", description="text for a console; json = one object per line for log shippers"
    )


class ConsoleConfig(Section):
    """The web console at /console: signed in with an api-key, it sees that key's instance."""

    enabled: bool = Field(True, description="serve /console (the same api-keys guard it)")
    session_idle_s: float = Field(
        8 * 3600, gt=0, description="a console session ends after this long unused"
    )
    max_sessions: int = Field(32, ge=1, description="signed-in sessions kept; oldest dropped")


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
    landmarks: LandmarksConfig = Field(default_factory=LandmarksConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    names: ModelNamesConfig = Field(default_factory=ModelNamesConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    cameras: list[CameraConfig] = Field(default_factory=list)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @model_validator(mode="after")
    def _face_name_of_pack(self) -> Settings:
        """A pack with another recognizer answers to its own model name unless one is set."""
        face = PACK_FACE_NAMES.get(self.models.pack)
        if face and "face" not in self.names.model_fields_set:
            self.names.face = face
        return self

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


class ConfigError(UserError):
    """A config file or environment value is wrong; the message names the key."""


ENV_PREFIX = "EDGE_"
#: EDGE_* variables read by edge-face (or its test suite) that are not settings.
OTHER_ENV = frozenset({"EDGE_CONFIG", "EDGE_API_KEY", "EDGE_SHARED_DIR"})


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The settings section a field holds (looking through `X | None`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _section_model(arg)
            if found is not None:
                return found
    return None


def _env_name(parts: list[str]) -> str:
    return ENV_PREFIX + "__".join(parts).upper()


def _closest(word: str, choices: list[str]) -> str | None:
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def _check_nested(var: str, parts: list[str]) -> None:
    """Walk `EDGE_A__B__C` down the settings sections; ConfigError at the first unknown key."""
    model: type[BaseModel] = Settings
    for i, part in enumerate(parts):
        fields = list(model.model_fields)
        where = ".".join(parts[:i]) or "the top level"
        if part not in fields:
            guess = _closest(part, fields)
            hint = f"; did you mean {_env_name([*parts[:i], guess])}?" if guess else ""
            raise ConfigError(
                f"environment variable {var}: {part!r} is not a setting of {where}{hint} "
                f"(valid: {', '.join(fields)}); fix or unset {var}"
            )
        annotation = model.model_fields[part].annotation
        inner = _section_model(annotation)
        if inner is None:
            rest = parts[i + 1 :]
            if rest and get_origin(annotation) is not dict:
                raise ConfigError(
                    f"environment variable {var}: {'.'.join(parts[: i + 1])} is a value, "
                    f"not a section; set {_env_name(parts[: i + 1])} instead"
                )
            return
        model = inner


def _single_underscore_hint(name: str) -> str:
    """What an unknown `EDGE_name` (no `__`) probably meant, for the warning."""
    top = list(Settings.model_fields)
    for section in top:
        inner = _section_model(Settings.model_fields[section].annotation)
        if inner is None or not name.startswith(section + "_"):
            continue
        rest = name[len(section) + 1 :]
        key = rest if rest in inner.model_fields else _closest(rest, list(inner.model_fields))
        if key:
            return (
                f"nested settings take a double underscore: did you mean "
                f"{_env_name([section, key])}?"
            )
    guess = _closest(name, top)
    if guess:
        return f"did you mean {_env_name([guess])}?"
    return f"settings are {', '.join(_env_name([t]) for t in top)} and EDGE_SECTION__KEY"


def check_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Check every `EDGE_*` variable against the settings before pydantic reads them.

    A variable with `__` is clearly meant as a setting, so an unknown key there is a
    ConfigError naming the variable; a single-underscore name that is no setting is
    ignored by pydantic-settings, so it comes back as a warning saying what would work.
    """
    env = os.environ if environ is None else environ
    warnings: list[str] = []
    for var in sorted(env):
        upper = var.upper()
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_ENV:
            continue
        name = upper[len(ENV_PREFIX) :].lower()
        if "__" in name:
            _check_nested(var, name.split("__"))
        elif name not in Settings.model_fields:
            warnings.append(
                f"environment variable {var} is not an edge-face setting and is ignored; "
                + _single_underscore_hint(name)
            )
    return warnings


def _env_source(loc: tuple[Any, ...], environ: Mapping[str, str]) -> str | None:
    """The EDGE_* variable that set the value at `loc`, if one did."""
    present = {k.upper(): k for k in environ}
    parts = [str(p) for p in loc]
    for n in range(len(parts), 0, -1):
        name = _env_name(parts[:n])
        if name in present:
            return present[name]
    return None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A one-line YAML error: the problem and where (pyyaml's own text spans lines)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The valid keys of the section holding `loc`'s last key ([] if not a section)."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # a list item: same model as the list's element
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        if get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        inner = _section_model(annotation)
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _format_validation(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            keys = _keys_at(e["loc"])
            guess = _closest(str(e["loc"][-1]), keys)
            msg = "unknown key" + (f"; did you mean {guess!r}?" if guess else "")
            if keys:
                msg += f" (valid: {', '.join(keys)})"
        var = _env_source(e["loc"], os.environ)
        if var:
            msg += f" (set by environment variable {var})"
        lines.append(f"{key}: {msg}")
    if len(lines) == 1:
        return f"invalid configuration ({origin}): {lines[0]}"
    return "\n  ".join([f"invalid configuration ({origin}):", *lines])


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
        except FileNotFoundError:
            raise ConfigError(
                f"config file not found: {p}; check the path given with -c/--config "
                "(or EDGE_CONFIG)"
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "it is not UTF-8 text"
            raise ConfigError(f"cannot read config file {p}: {why}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {_yaml_problem(e)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        data.update(loaded)
    data.update(overrides)
    for warning in check_environment():
        log.warning("%s", warning)
    try:
        return Settings(**data)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, origin)) from None


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective config as plain data with every secret replaced by '***'."""
    return settings.model_dump(mode="json")  # SecretStr dumps as '**********'
