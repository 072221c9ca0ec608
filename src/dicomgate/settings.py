"""Service configuration: one Settings object, read once and passed down."""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TargetSyntax = Literal["htj2k", "htj2k-rpcl", "jpeg2000"]


DEFAULT_DATA_DIR = "dicomgate-data"
# A worker's address space: the interpreter and codec libraries, plus per pixel of the largest
# image accepted the file, its decoded frame and the temporaries of encoding, verifying or
# rendering a preview (float64), measured at well under 32 bytes per sample.
WORKER_BASE_BYTES = 1024**3
WORKER_BYTES_PER_PIXEL = 32
WORKER_MIN_BYTES = 2 * 1024**3


def _physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def sqlite_url(path: Path) -> str:
    """The async SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


class Settings(BaseSettings):
    """Every knob of dicomgate; env prefix ``DICOMGATE_``, ``.env`` supported.

    The old system's variable names (``ORTHANC_API_URL``, ``ORTHANC_URL``, ``ORTHANC_USERNAME``,
    ``ORTHANC_USER``, ``ORTHANC_PASSWORD``) are accepted as aliases.
    """

    model_config = SettingsConfigDict(
        env_prefix="DICOMGATE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- Orthanc -------------------------------------------------------------------------------
    orthanc_url: str = Field(
        default="http://127.0.0.1:8042",
        validation_alias=AliasChoices("DICOMGATE_ORTHANC_URL", "ORTHANC_API_URL", "ORTHANC_URL"),
        description="Base URL of Orthanc's REST API.",
    )
    orthanc_username: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "DICOMGATE_ORTHANC_USERNAME", "ORTHANC_USERNAME", "ORTHANC_USER"
        ),
        description="Orthanc HTTP basic-auth user (none: no auth).",
    )
    orthanc_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DICOMGATE_ORTHANC_PASSWORD", "ORTHANC_PASSWORD"),
        description="Orthanc HTTP basic-auth password; never logged or returned.",
    )
    orthanc_timeout: float = Field(
        default=60.0, gt=0, description="Seconds to wait for one Orthanc answer (read/write)."
    )
    orthanc_connect_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a connection to Orthanc."
    )
    orthanc_max_connections: int = Field(
        default=16, ge=1, description="Size of the pooled connections to Orthanc."
    )
    orthanc_concurrency: int = Field(
        default=8, ge=1, description="Parallel Orthanc requests one listing may issue."
    )

    # --- Where dicomgate keeps its own files ----------------------------------------------------
    data_dir: Path = Field(
        default=Path(DEFAULT_DATA_DIR),
        description="dicomgate's data folder: the SQLite database (dicomgate.db) and the "
        "conversion journal (journal/) live here unless DICOMGATE_DATABASE_URL or "
        "DICOMGATE_JOURNAL_DIR say otherwise. Relative to the folder dicomgate starts in, so "
        "the CLI and the service share it when started from the same folder.",
    )

    # --- Database ------------------------------------------------------------------------------
    database_url: str = Field(
        default_factory=lambda data: sqlite_url(data["data_dir"] / "dicomgate.db"),
        description="SQLAlchemy async URL: sqlite+aiosqlite:///… or postgresql+asyncpg://… "
        "(default: SQLite in the data folder).",
    )

    # --- Workers and codec ---------------------------------------------------------------------
    workers: int = Field(
        default_factory=_default_workers, ge=1, description="Process-pool size for codec work."
    )
    target_syntax: TargetSyntax = Field(
        default="htj2k",
        description="htj2k (…4.201), htj2k-rpcl (…4.202) or jpeg2000 (…4.90, lossless).",
    )
    lossy_quality: float | None = Field(
        default=None,
        description="Enables lossy HTJ2K (…4.203) with this quality; off (lossless) by default.",
    )
    max_pixels: int = Field(
        default=2_000_000_000,
        ge=1,
        description="Largest Rows×Columns×Samples×Frames accepted for transcoding/preview.",
    )
    transcode_timeout: float = Field(
        default=300.0, gt=0, description="Seconds one instance may spend in a worker."
    )
    worker_memory_limit: int | None = Field(
        default=None,
        ge=512 * 1024**2,
        description="Address space one codec worker may use, in bytes (RLIMIT_AS): a task that "
        "needs more fails alone (422) and the worker is replaced. Default: 1 GiB + 32 bytes × "
        "max_pixels, at most the machine's memory / workers, at least 2 GiB.",
    )

    # --- Uploads -------------------------------------------------------------------------------
    max_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Largest single uploaded file, in bytes."
    )
    max_request_bytes: int = Field(
        default=8 * 1024**3, ge=1, description="Largest upload request (all files), in bytes."
    )
    max_files: int = Field(default=2000, ge=1, description="Most files in one upload request.")
    spool_dir: Path | None = Field(
        default=None, description="Where uploads are spooled (default: the system temp folder)."
    )

    # --- Conversions ---------------------------------------------------------------------------
    journal_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "journal",
        description="Durable copies of originals while they are being replaced in Orthanc "
        "(default: journal/ in the data folder). SQLite only: on PostgreSQL the journal is a "
        "table every replica reaches.",
    )
    conversion_sample_size: int = Field(
        default=20,
        ge=1,
        description="Instances a conversion dry run transcodes (spread over modality/encoding "
        "groups) to estimate the projected bytes and time; `--exact` transcodes all.",
    )

    # --- Compression rules (what arrives in Orthanc by any way) ---------------------------------
    rules_file: Path | None = Field(
        default=None,
        description="TOML file of compression rules (see the README); none: no rules. A bad "
        "file stops the service at start.",
    )
    rules_follower: bool = Field(
        default=True,
        description="With a rules file: this process follows Orthanc's /changes and queues "
        "conversions (every replica may: each change is taken once).",
    )
    rules_poll_interval: float = Field(
        default=5.0, gt=0, le=3600, description="Seconds between two looks at /changes."
    )
    rules_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Changes taken from /changes at a time."
    )

    # --- Authentication ------------------------------------------------------------------------
    auth_enabled: bool = Field(
        default=True,
        description="Require a caller on every route but health and docs. Turn off only for "
        "local development on loopback; the service then logs a loud warning.",
    )
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 secret for JWTs.")
    jwks_url: str | None = Field(default=None, description="JWKS URL for RS256/ES256 JWTs.")
    jwks_file: Path | None = Field(default=None, description="Local JWKS file (RS256/ES256).")
    jwt_issuer: str | None = Field(default=None, description="Required `iss` claim, if set.")
    jwt_audience: str | None = Field(default=None, description="Required `aud` claim, if set.")
    jwt_roles_claim: str | None = Field(
        default=None,
        description="Claim (dotted path) holding roles used as scopes, e.g. "
        "`realm_access.roles`; `scope`/`scp` are always read.",
    )
    jwt_leeway: float = Field(default=30.0, ge=0, description="Clock skew allowed, seconds.")

    resume_conversions_on_start: bool = Field(
        default=True,
        description="Resume conversion jobs left unfinished when the service starts. On "
        "PostgreSQL every replica may (a job's lock lets one run it); on SQLite run one process.",
    )
    resume_conversions_every: float = Field(
        default=30.0,
        ge=0,
        description="PostgreSQL: seconds between two looks for unfinished conversion jobs that "
        "no live process runs (their runner died); each is resumed by one replica. 0: only at "
        "start. Ignored on SQLite.",
    )
    in_process_worker: bool = Field(
        default=True,
        description="PostgreSQL: this service also runs conversion tasks (one task-queue worker "
        "in the process). false leaves them to `dicomgate worker` processes. On SQLite jobs "
        "always run in the service.",
    )
    worker_concurrency: int = Field(
        default=1,
        ge=1,
        le=64,
        description="PostgreSQL: studies one worker converts at once (the in-process worker; "
        "`dicomgate worker --concurrency` overrides). Each study keeps DICOMGATE_WORKERS "
        "instances in flight.",
    )
    worker_heartbeat: float = Field(
        default=5.0,
        gt=0,
        description="PostgreSQL: seconds between two heartbeats of a worker.",
    )
    worker_stalled_after: float = Field(
        default=30.0,
        gt=0,
        description="PostgreSQL: a worker silent this many seconds is taken for dead and its "
        "tasks are run again elsewhere (after settling what it left half-done). Must exceed "
        "DICOMGATE_WORKER_HEARTBEAT, with margin, on every process.",
    )

    # --- Audit trail -----------------------------------------------------------------------------
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks of the reverse proxies whose X-Forwarded-For names "
        "the client (a JSON list or comma-separated, e.g. 10.0.0.5,10.1.0.0/16). None (the "
        "default): the client address is the socket peer and X-Forwarded-For is ignored.",
    )
    atna_syslog_url: str | None = Field(
        default=None,
        description="IHE ATNA audit repository: tcp://host[:port] (601) or tls://host[:port] "
        "(6514). Every audit event is also sent there as a DICOM Audit Message (PS3.15 A.5) "
        "over syslog (RFC 5424, octet counting). Off by default.",
    )
    atna_tls_ca_file: Path | None = Field(
        default=None, description="CA certificates the repository's TLS certificate must chain to."
    )
    atna_tls_cert_file: Path | None = Field(
        default=None, description="dicomgate's client certificate (PEM) for mutual TLS."
    )
    atna_tls_key_file: Path | None = Field(
        default=None, description="The private key of atna_tls_cert_file (PEM)."
    )
    atna_source_id: str = Field(
        default="dicomgate", description="AuditSourceID of the messages (this installation)."
    )
    atna_enterprise_site_id: str | None = Field(
        default=None, description="AuditEnterpriseSiteID of the messages (the hospital)."
    )
    atna_queue_size: int = Field(
        default=10_000,
        ge=1,
        description="Messages kept while the repository is unreachable; beyond, new ones are "
        "dropped (logged at ERROR, counted in /metrics).",
    )

    # --- HTTP ----------------------------------------------------------------------------------
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=8 * 1024,
        description="Largest request line + headers `dicomgate serve` reads; beyond it the "
        "request is answered 431 without being parsed further.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (none by default)."
    )
    dicomweb_public_url: str | None = Field(
        default=None,
        description=(
            "Base URL of the DICOMweb service as clients reach it (e.g. "
            "https://pacs.example.org/dicomweb), used in Retrieve URLs and BulkDataURIs; "
            "default: the scheme and Host of each request + /dicomweb."
        ),
    )
    log_level: str = Field(default="INFO", description="Python log level.")
    log_format: Literal["text", "json"] = Field(default="text", description="text or json.")
    log_phi: bool = Field(
        default=False,
        description="Write patient IDs/names and client file names into logs (off: redacted).",
    )

    @field_validator(
        "jwt_issuer",
        "jwt_audience",
        "jwks_url",
        "jwt_roles_claim",
        "orthanc_username",
        "jwt_secret",
        "atna_syslog_url",
        "atna_enterprise_site_id",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker-compose's `${VAR:-}` passes "" for "not set".
        return None if value == "" else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _list_or_commas(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Resolved once, at start: messages and logs name the real folder.
        return value.expanduser().resolve()

    @field_validator("orthanc_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _stalled_after_heartbeat(self) -> Settings:
        if self.worker_stalled_after <= 2 * self.worker_heartbeat:
            raise ValueError(
                "DICOMGATE_WORKER_STALLED_AFTER must be more than twice DICOMGATE_WORKER_HEARTBEAT "
                "(else a live worker would be taken for dead)"
            )
        return self

    @property
    def worker_memory_bytes(self) -> int:
        """The address-space limit of each worker (``worker_memory_limit``, or derived)."""
        if self.worker_memory_limit is not None:
            return self.worker_memory_limit
        need = WORKER_BASE_BYTES + WORKER_BYTES_PER_PIXEL * self.max_pixels
        share = _physical_memory() // self.workers
        return max(WORKER_MIN_BYTES, min(need, share))

    @cached_property
    def orthanc_auth(self) -> tuple[str, str] | None:
        """Basic-auth pair for httpx, or None."""
        if self.orthanc_username is None:
            return None
        secret = self.orthanc_password.get_secret_value() if self.orthanc_password else ""
        return (self.orthanc_username, secret)
