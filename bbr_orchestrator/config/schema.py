"""The one typed config schema: validation, the example file and the docs all come from here.

Every field carries a description (it becomes the comment in the example file) and, where the
field is required, an example value.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, field_validator, model_validator

from bbr_orchestrator.config.base import Model as _Model
from bbr_orchestrator.config.object_store import (
    AddressingStyle,
    CredentialsConfig,
    ObjectStoreConfig,
    RequestChecksums,
    ServerSideEncryption,
)
from bbr_orchestrator.config.opsman import OpsmanTarget
from bbr_orchestrator.config.service import (
    DaemonConfig,
    LogFormat,
    LoggingConfig,
    MetricsConfig,
)
from bbr_orchestrator.config.types import (
    CronSchedule,
    Duration,
    Fingerprint,
    Host,
    HostPort,
    Name,
    Port,
    SecretRef,
    TimeZoneName,
)

_CRON = (
    "Cron schedule: minute hour day month weekday (weekday 0 or 7 = Sunday), "
    "or 6 fields with a leading second."
)


class CatalogConfig(_Model):
    """Where every run is recorded."""

    url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the catalog database. Empty: a SQLite file under state_dir. "
            "PostgreSQL: postgresql://user@host/db; MySQL/MariaDB: mysql://user@host/db. "
            "Put no password here: use password_secret."
        ),
        examples=["postgresql://bbr@db.example.internal/bbr_catalog"],
    )
    password_secret: SecretRef | None = Field(
        default=None,
        description="Password for the catalog database user, if it needs one.",
        examples=[{"env": "CATALOG_PASSWORD"}],
    )

    @field_validator("url")
    @classmethod
    def _no_inline_password(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme, sep, rest = value.partition("://")
        if not sep or not scheme:
            raise ValueError(f"{value!r} is not a database URL (expected scheme://...)")
        userinfo = rest.split("@", 1)[0] if "@" in rest else ""
        if ":" in userinfo:
            raise ValueError("the URL contains a password; move it to catalog.password_secret")
        if scheme.split("+")[0] not in {"sqlite", "postgresql", "postgres", "mysql", "mariadb"}:
            raise ValueError(f"unsupported database {scheme!r}: use sqlite, postgresql or mysql")
        return value


class JumpboxConfig(_Model):
    """A machine with bbr on it, reached over SSH. Its host key is always verified."""

    name: Name = Field(description="Name used by targets.", examples=["jumpbox-1"])
    host: Host = Field(description="Host name or IP address.", examples=["10.0.0.5"])
    port: Port = Field(default=22, description="SSH port.")
    user: str = Field(description="SSH user.", examples=["ubuntu"])
    private_key_file: Path = Field(
        description="Private key for the SSH user, on this machine.",
        examples=["/etc/bbr-orchestrator/jumpbox_ed25519"],
    )
    private_key_passphrase: SecretRef | None = Field(
        default=None,
        description="Passphrase of the private key, if it has one.",
        examples=[{"env": "JUMPBOX_KEY_PASSPHRASE"}],
    )
    known_hosts_file: Path | None = Field(
        default=None,
        description="known_hosts file with the jumpbox's host key (or use host_key_fingerprint).",
        examples=["/etc/bbr-orchestrator/known_hosts"],
    )
    host_key_fingerprint: Fingerprint | None = Field(
        default=None,
        description="Pinned host key fingerprint, as `ssh-keygen -lf` prints it.",
        examples=["SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"],
    )
    bbr_path: str = Field(default="bbr", description="Path of bbr on the jumpbox.")
    work_root: str = Field(
        default="bbr-orchestrator",
        description="Directory on the jumpbox for per-run work dirs (relative: under home).",
    )
    keep_failed_workdirs: int = Field(
        default=3,
        ge=0,
        description=(
            "How many failed backups per target keep their run directory (partial artifact, "
            "err.log) on the jumpbox for inspection; older ones are removed."
        ),
    )
    connect_timeout: Duration = Field(
        default=timedelta(seconds=15), description="TCP connect and SSH handshake timeout."
    )
    command_timeout: Duration = Field(
        default=timedelta(hours=24), description="Longest a single bbr command may run."
    )
    keepalive_interval: Duration = Field(
        default=timedelta(seconds=30), description="SSH keepalive interval on long sessions."
    )
    max_parallel: int = Field(
        default=2,
        ge=1,
        description="Most runs the daemon drives on this jumpbox at once (disk and bandwidth).",
    )

    @model_validator(mode="after")
    def _host_key(self) -> JumpboxConfig:
        if (self.known_hosts_file is None) == (self.host_key_fingerprint is None):
            raise ValueError(
                "set exactly one of known_hosts_file or host_key_fingerprint: "
                "host keys are always verified"
            )
        return self


class DirectorTarget(_Model):
    """A BOSH director, backed up with `bbr director`."""

    kind: Literal["director"] = Field(description="director, deployment or opsman.")
    name: Name = Field(description="Name of the target.", examples=["bosh-director"])
    jumpbox: Name = Field(description="Name of the jumpbox that runs bbr.", examples=["jumpbox-1"])
    host: HostPort = Field(description="Director address, host[:port].", examples=["10.0.0.6"])
    ssh_user: str = Field(default="bbr", description="SSH user on the director.")
    private_key_path: str | None = Field(
        default=None,
        description="Path of the director's bbr SSH key ON THE JUMPBOX (or use private_key).",
        examples=["/home/ubuntu/bbr_ssh_key.pem"],
    )
    private_key: SecretRef | None = Field(
        default=None,
        description=(
            "The director's bbr SSH key, kept here: copied into the run directory on the "
            "jumpbox (mode 0600) for each run and removed after it."
        ),
        examples=[{"credential": "director_bbr_key"}],
    )

    @model_validator(mode="after")
    def _one_key(self) -> DirectorTarget:
        if (self.private_key_path is None) == (self.private_key is None):
            raise ValueError("set exactly one of private_key_path (on the jumpbox) or private_key")
        return self


class DeploymentTarget(_Model):
    """One BOSH deployment (or all of them), backed up with `bbr deployment`."""

    kind: Literal["deployment"] = Field(description="director, deployment or opsman.")
    name: Name = Field(description="Name of the target.", examples=["cf"])
    jumpbox: Name = Field(description="Name of the jumpbox that runs bbr.", examples=["jumpbox-1"])
    bosh_target: str = Field(
        description="BOSH director URL or address.", examples=["https://10.0.0.6:25555"]
    )
    client: str = Field(description="BOSH UAA client.", examples=["bbr_client"])
    client_secret: SecretRef = Field(
        description="BOSH client secret; reaches bbr only through its environment.",
        examples=[{"env": "BOSH_CLIENT_SECRET"}],
    )
    ca_cert_path: str = Field(
        description="Path of the director's CA certificate ON THE JUMPBOX.",
        examples=["/home/ubuntu/root_ca_certificate"],
    )
    deployment: str | None = Field(
        default=None,
        description="Deployment name (or set all_deployments).",
        examples=["cf-abc123"],
    )
    all_deployments: bool = Field(default=False, description="Back up every deployment.")
    with_manifest: bool = Field(default=False, description="Also store the deployment manifest.")

    @model_validator(mode="after")
    def _which(self) -> DeploymentTarget:
        if (self.deployment is None) == (not self.all_deployments):
            raise ValueError("set exactly one of deployment or all_deployments: true")
        return self


Target = Annotated[DirectorTarget | DeploymentTarget | OpsmanTarget, Discriminator("kind")]


class RetentionConfig(_Model):
    """Which backups to keep. Only complete restore points count."""

    keep_last: int | None = Field(default=7, ge=0, description="Keep the newest N.")
    keep_daily: int = Field(default=0, ge=0, description="Keep the last backup of N days.")
    keep_weekly: int = Field(default=0, ge=0, description="Keep the last backup of N weeks.")
    keep_monthly: int = Field(default=0, ge=0, description="Keep the last backup of N months.")
    keep_yearly: int = Field(default=0, ge=0, description="Keep the last backup of N years.")
    keep_within: Duration | None = Field(
        default=None, description="Keep everything newer than this.", examples=["14d"]
    )
    min_verified: int = Field(
        default=2, ge=1, description="Never go below this many complete, verified restore points."
    )
    incomplete_keep_for: Duration = Field(
        default=timedelta(days=3), description="How long failed or incomplete backups are kept."
    )


class DrillConfig(_Model):
    """A restore drill: restore the latest restore point into a sandbox to prove it works."""

    target: Name = Field(description="The drill target (a sandbox).", examples=["sandbox-director"])
    source: Name = Field(
        description="Which of the plan's targets to restore.", examples=["bosh-director"]
    )
    schedule: CronSchedule = Field(description=_CRON, examples=["0 6 * * 6"])
    timezone: TimeZoneName = Field(description="Time zone of the schedule.", examples=["UTC"])
    smoke_command: list[str] | None = Field(
        default=None,
        description="Command run on the jumpbox after the restore (argv list).",
        examples=[["/home/ubuntu/smoke-test.sh", "--quick"]],
    )
    allow_source_as_target: bool = Field(
        default=False, description="Allow restoring into the source itself (dangerous)."
    )

    @model_validator(mode="after")
    def _distinct(self) -> DrillConfig:
        if self.target == self.source and not self.allow_source_as_target:
            raise ValueError(
                "the drill target is the source itself; a drill restores over it. "
                "Name a sandbox target, or set allow_source_as_target: true"
            )
        return self


class VerifyJobConfig(_Model):
    """Scheduled verification of the plan's stored backups: each object re-read from the object
    store and its SHA-256 and tar members re-checked against bbr's metadata (no platform or
    jumpbox access). A backup found damaged is marked not restorable."""

    schedule: CronSchedule = Field(description=_CRON, examples=["0 8 * * *"])
    timezone: TimeZoneName = Field(description="Time zone of the schedule.", examples=["UTC"])
    mode: Literal["latest", "rolling"] = Field(
        default="latest",
        description=(
            "latest: re-read the newest succeeded backup of every target of the plan in full. "
            "rolling: re-read rolling_percent of the objects of every retained succeeded "
            "backup of the plan per run, so that all are covered within "
            "ceil(100 / rolling_percent) runs."
        ),
    )
    rolling_percent: int = Field(
        default=10,
        ge=1,
        le=100,
        description=(
            "In rolling mode: the share (1-100) of the stored objects checked per run. A "
            "backup is marked verified only by a run that read all of it; any run that finds "
            "a problem marks it not restorable."
        ),
    )


class EncryptionKeyConfig(_Model):
    """One key for client-side encryption. Keep a key here as long as any backup made with it
    is kept: restores, verifications and drills need it."""

    id: Name = Field(
        description="Key id, recorded in every object it encrypts and in the manifest.",
        examples=["key-2026-01"],
    )
    key: SecretRef = Field(
        description=(
            "The key: base64 of 32 random bytes (`head -c 32 /dev/urandom | base64`). "
            "Losing it loses every backup made with it."
        ),
        examples=[{"credential": "backup_key_2026_01"}],
    )


class EncryptionConfig(_Model):
    """Client-side encryption of stored backups: every object but manifest.json is encrypted
    while it streams (AES-256-GCM, each 64 KiB chunk authenticated) with the key its plan
    names; any backup is read with the key its objects name. Rotate by adding a key and
    pointing the plans at it; old backups stay readable while their key is listed."""

    keys: list[EncryptionKeyConfig] = Field(
        default_factory=list, description="Every key backups are or were encrypted with."
    )


class PlanConfig(_Model):
    """A scheduled backup of some targets, with retention and drills."""

    name: Name = Field(description="Name of the plan.", examples=["nightly"])
    targets: list[Name] = Field(
        min_length=1,
        description="Targets backed up together, in this order.",
        examples=[["bosh-director", "cf"]],
    )
    schedule: CronSchedule = Field(description=_CRON, examples=["0 2 * * *"])
    timezone: TimeZoneName = Field(description="Time zone of the schedule.", examples=["UTC"])
    paused: bool = Field(default=False, description="Keep the plan but do not fire it.")
    pre_backup_check: bool = Field(default=True, description="Run pre-backup-check first.")
    stop_on_failure: bool = Field(
        default=False, description="Skip the remaining targets after a failed one."
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    drills: list[DrillConfig] = Field(default_factory=list, description="Restore drills.")
    verify: VerifyJobConfig | None = Field(
        default=None,
        description=(
            "Scheduled verification of this plan's stored backups (none when not set; "
            "`bbr-orchestrator verify` works either way)."
        ),
    )
    encryption_key: Name | None = Field(
        default=None,
        description=(
            "Id of the encryption.keys entry this plan's backups are encrypted with (none: not "
            "encrypted). `run backup TARGET` uses the key of the first plan listing TARGET."
        ),
        examples=["key-2026-01"],
    )


class Config(_Model):
    """bbr-orchestrator configuration."""

    state_dir: Path = Field(
        default=Path("/var/lib/bbr-orchestrator"),
        description="Directory for local state (the default SQLite catalog lives here).",
    )
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    object_store: ObjectStoreConfig
    jumpboxes: list[JumpboxConfig] = Field(min_length=1, description="Jumpboxes that run bbr.")
    targets: list[Target] = Field(
        min_length=1, description="Directors, deployments and Ops Managers."
    )
    plans: list[PlanConfig] = Field(default_factory=list, description="Scheduled backups.")
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)

    def jumpbox(self, name: str) -> JumpboxConfig:
        return next(j for j in self.jumpboxes if j.name == name)

    def target(self, name: str) -> DirectorTarget | DeploymentTarget | OpsmanTarget:
        return next(t for t in self.targets if t.name == name)

    def catalog_url(self) -> str:
        """The catalog URL, defaulting to a SQLite file under ``state_dir``."""
        if self.catalog.url:
            return self.catalog.url
        return f"sqlite:///{self.state_dir / 'catalog.sqlite3'}"


__all__ = [
    "AddressingStyle",
    "CatalogConfig",
    "Config",
    "CredentialsConfig",
    "DaemonConfig",
    "DeploymentTarget",
    "DirectorTarget",
    "DrillConfig",
    "EncryptionConfig",
    "EncryptionKeyConfig",
    "JumpboxConfig",
    "LogFormat",
    "LoggingConfig",
    "MetricsConfig",
    "ObjectStoreConfig",
    "OpsmanTarget",
    "PlanConfig",
    "RequestChecksums",
    "RetentionConfig",
    "ServerSideEncryption",
    "Target",
    "VerifyJobConfig",
]
