"""Settings, read from ``MNIST_API_*`` environment variables (and a ``.env`` file) at start-up."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
Consistency = Literal["ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "LOCAL_ONE"]


class SettingsError(Exception):
    """The configuration is invalid; the message says which variable and why."""


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MNIST_API_", env_file=".env", extra="ignore", protected_namespaces=()
    )

    # Model and inference.
    model_path: Path = Field(
        Path("models"), description="artifact folder, or a folder whose LATEST names one"
    )
    model_poll_s: float = Field(
        2.0,
        ge=0,
        description="how often each worker checks what models/LATEST names and, when it names "
        "another artifact, loads it beside the one serving and swaps between batches (0: never; "
        "POST /v1/models/reload still does)",
    )
    not_a_digit_below: float | None = Field(
        None,
        ge=0,
        le=1,
        description="answers with a lower confidence get the verdict not_a_digit (unset: the "
        "threshold fitted for the serving model at training)",
    )
    uncertain_below: float | None = Field(
        None,
        ge=0,
        le=1,
        description="answers with a lower confidence get the verdict uncertain (unset: the "
        "serving model's, 0.9 unless its not_a_digit threshold is higher)",
    )
    runtime: Literal["litert", "tensorflow"] = Field(
        "litert",
        description="litert: the artifact's model.tflite run by LiteRT, without TensorFlow in "
        "the service; tensorflow: model.keras through a compiled TensorFlow function",
    )
    inference_mode: Literal["batched", "predict", "off"] = Field(
        "batched",
        description="batched: the compiled function on batches (serve with this); predict: one "
        "model.predict per request, the original way (benchmark baseline); off: no model "
        "(with MNIST_API_STORE=none, the benchmark's ceiling)",
    )
    max_batch: int = Field(32, ge=1, le=1024, description="largest inference batch")
    max_delay_ms: float = Field(2.0, ge=0, le=1000, description="longest wait to fill a batch")
    queue_size: int = Field(512, ge=1, description="requests waiting for inference before 503")
    inference_threads: int = Field(1, ge=1, le=16, description="threads running model batches")
    request_timeout_s: float = Field(10.0, gt=0, description="inference deadline per request")
    image_threads: int = Field(2, ge=1, le=32, description="threads decoding uploads")
    tf_threads: int = Field(
        1, ge=0, le=64, description="TensorFlow's threads per model call (0: TensorFlow decides)"
    )

    # Uploads.
    max_upload_bytes: int = Field(5 * MiB, ge=1024, description="largest accepted file")
    max_image_pixels: int = Field(
        16_000_000, ge=784, description="largest accepted width x height (decompression bombs)"
    )
    max_batch_files: int = Field(16, ge=1, le=256, description="files per batch request")

    # Storage.
    store: Literal["sqlite", "cassandra", "none"] = Field(
        "sqlite", description="sqlite (embedded default), cassandra, or none (benchmarks only)"
    )
    sqlite_path: Path = Field(Path("var/predictions.sqlite3"))
    cassandra_contact_points: Annotated[list[str], NoDecode] = Field(["127.0.0.1"])
    cassandra_port: int = Field(9042, ge=1, le=65535)
    cassandra_keyspace: str = "mnist"
    cassandra_local_dc: str | None = None
    cassandra_username: str | None = None
    cassandra_password: str | None = None
    cassandra_consistency: Consistency = "LOCAL_QUORUM"
    cassandra_replication: str = Field(
        "SimpleStrategy:1",
        description="SimpleStrategy:RF, or NetworkTopologyStrategy:dc1=3,dc2=3",
    )
    cassandra_connect_timeout_s: float = Field(5.0, gt=0)
    cassandra_request_timeout_s: float = Field(5.0, gt=0)
    cassandra_reconnect_delay_ms: int = Field(1000, ge=100)
    cassandra_startup_timeout_s: float = Field(
        60.0, ge=0, description="how long start-up waits for the cluster"
    )
    cassandra_heartbeat_s: int = Field(
        1, ge=1, le=60, description="heartbeat on idle connections, to find a frozen node fast"
    )
    cassandra_idle_timeout_s: int = Field(
        3,
        ge=1,
        le=600,
        description="a connection with no answer to heartbeats for this long is dropped",
    )
    cassandra_speculative_delay_ms: int = Field(
        250,
        ge=0,
        le=10_000,
        description="send an idempotent request to another replica when the first has not answered "
        "after this long (0: never)",
    )
    cql_dir: Path | None = Field(None, description="migrations folder (default: the packaged one)")
    retention_days: float | None = Field(
        None,
        gt=0,
        le=7300,
        description="how long a prediction and its upload are kept (unset: for ever)",
    )
    review_days: int = Field(
        7,
        ge=1,
        le=366,
        description="how far back the review queue (GET /v1/review) reaches: flagged predictions "
        "older than this leave it unlabelled",
    )
    purge_interval_s: float = Field(
        3600.0, gt=0, description="how often the SQLite store deletes expired predictions"
    )

    # Identity.
    auth: Literal["required", "off"] = Field(
        "required",
        description="required: every /v1 call and /upload needs an API key; off: anyone who can "
        "reach the port may use the API (local use only)",
    )
    allow_anonymous: bool = Field(
        False, description="allow MNIST_API_AUTH=off on an address that is not loopback"
    )
    key_cache_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="how long a worker trusts a key it has looked up; a revoked key stops "
        "working on every worker within this time",
    )
    default_key_rate: float = Field(
        10.0, gt=0, le=10_000, description="requests per second of a key created without --rate"
    )
    instances: int = Field(
        1,
        ge=1,
        le=256,
        description="instances behind one load balancer: each enforces its share (1/N) of a "
        "key's rate and burst, so that a key's limit holds for them all (scripts/fleet sets it)",
    )
    rate_limit_file: Path | None = Field(
        None,
        description="shared memory for the token buckets of all workers of one instance (set by "
        "`mnist-api serve`; unset: this process's own)",
    )

    # HTTP.
    host: str = Field("127.0.0.1", min_length=1, description="address `mnist-api serve` binds")
    port: int = Field(8000, ge=1, le=65535, description="port `mnist-api serve` listens on")
    workers: int = Field(1, ge=1, le=64, description="server processes, each with its own model")
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="the address clients use (the spec's `servers`; default: the address each "
        "request for the spec came to)",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    retry_after_s: int = Field(1, ge=1, description="Retry-After on 503 answers")
    otlp_endpoint: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="an OTLP/HTTP collector (e.g. http://otel-collector:4318): traces are sent "
        "to its /v1/traces; unset: no tracing at all",
    )
    otel_service_name: str = Field("mnist-api", min_length=1, description="service.name of spans")
    trace_sample_ratio: float = Field(
        1.0, ge=0, le=1, description="the share of requests traced (a caller's decision wins)"
    )
    log_format: Literal["plain", "json"] = Field(
        "plain",
        description="plain: lines for a person; json: one JSON object per line (with the request "
        "id, and one access line per request), for a log collector",
    )
    drain_delay_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="on SIGTERM, how long new connections are still taken while /readyz says "
        "503 (long enough for a load balancer's health checks to notice)",
    )
    grace_period_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="on SIGTERM, the longest the process takes to exit: the delay, then the "
        "requests in flight (keep it under the orchestrator's own, e.g. Kubernetes' "
        "terminationGracePeriodSeconds)",
    )

    @field_validator("cassandra_contact_points", "cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("cassandra_keyspace")
    @classmethod
    def _keyspace(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError("must be a lower-case CQL identifier (letters, digits, _)")
        return value

    @field_validator("cassandra_replication")
    @classmethod
    def _replication(cls, value: str) -> str:
        replication_map(value)
        return value

    @model_validator(mode="after")
    def _contact_points(self) -> Settings:
        if self.store == "cassandra" and not self.cassandra_contact_points:
            raise ValueError("MNIST_API_CASSANDRA_CONTACT_POINTS is empty")
        return self

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Settings:
        low, high = self.not_a_digit_below, self.uncertain_below
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"MNIST_API_NOT_A_DIGIT_BELOW ({low}) is above MNIST_API_UNCERTAIN_BELOW ({high})"
            )
        return self

    @model_validator(mode="after")
    def _drain_within_grace(self) -> Settings:
        if self.drain_delay_s >= self.grace_period_s:
            raise ValueError(
                f"MNIST_API_DRAIN_DELAY_S ({self.drain_delay_s:g}) must be shorter than "
                f"MNIST_API_GRACE_PERIOD_S ({self.grace_period_s:g}): the requests in flight "
                "need time after the delay"
            )
        return self

    @model_validator(mode="after")
    def _predict_mode_is_keras(self) -> Settings:
        if self.inference_mode == "predict" and self.runtime != "tensorflow":
            raise ValueError(
                "MNIST_API_INFERENCE_MODE=predict is the original system's way, one Keras "
                "model.predict per request: set MNIST_API_RUNTIME=tensorflow with it"
            )
        return self

    @model_validator(mode="after")
    def _anonymous_only_on_loopback(self) -> Settings:
        if self.auth == "off" and not self.allow_anonymous and not is_loopback(self.host):
            raise ValueError(
                f"MNIST_API_AUTH=off would let anyone who can reach {self.host} read, relabel "
                "and delete every prediction; serve on 127.0.0.1, or set MNIST_API_AUTH=required "
                "and create a key (mnist-api keys create --name NAME), or set "
                "MNIST_API_ALLOW_ANONYMOUS=true if that is what you want"
            )
        if self.auth == "required" and self.store == "none":
            raise ValueError(
                "MNIST_API_STORE=none keeps no keys either: use it with MNIST_API_AUTH=off"
            )
        return self

    @property
    def retention_s(self) -> int | None:
        """Retention in whole seconds (at least 1), or None to keep everything."""
        if self.retention_days is None:
            return None
        return max(1, round(self.retention_days * 86_400))


def is_loopback(host: str) -> bool:
    """Whether a listening address only takes connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def replication_map(spec: str) -> dict[str, str | int]:
    """Parse ``SimpleStrategy:1`` or ``NetworkTopologyStrategy:dc1=3,dc2=2``."""
    strategy, _, rest = spec.partition(":")
    if strategy == "SimpleStrategy" and rest.isdigit() and int(rest) >= 1:
        return {"class": "SimpleStrategy", "replication_factor": int(rest)}
    if strategy == "NetworkTopologyStrategy" and rest:
        result: dict[str, str | int] = {"class": "NetworkTopologyStrategy"}
        for part in rest.split(","):
            dc, _, factor = part.partition("=")
            if not re.match(r"^[A-Za-z0-9_.-]+$", dc) or not factor.isdigit():
                raise ValueError(f"bad data centre entry {part!r}")
            result[dc] = int(factor)
        return result
    raise ValueError("expected SimpleStrategy:RF or NetworkTopologyStrategy:dc=RF[,dc=RF]")


def load_settings(**overrides: object) -> Settings:
    """Build and validate the settings, turning pydantic's report into one clear message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:  # a rule across settings: its message names them
                problems.append(str(error["msg"]).removeprefix("Value error, "))
                continue
            field = ".".join(str(p) for p in error["loc"])
            problems.append(f"MNIST_API_{field.upper()}: {error['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
