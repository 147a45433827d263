"""The object store section of the config: bucket, endpoint, credentials, encryption, lock."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bbr_orchestrator.config.base import Model as _Model
from bbr_orchestrator.config.types import Duration, SecretRef


class AddressingStyle(StrEnum):
    AUTO = "auto"
    PATH = "path"
    VIRTUAL = "virtual"


class ServerSideEncryption(StrEnum):
    NONE = "none"
    S3 = "AES256"
    KMS = "aws:kms"


class RequestChecksums(StrEnum):
    WHEN_SUPPORTED = "when_supported"
    WHEN_REQUIRED = "when_required"


MAX_RETAIN_FOR = timedelta(days=3650)
"""Ten years: longer is taken for a typo (a compliance-mode lock cannot be shortened)."""


class ObjectLockMode(StrEnum):
    GOVERNANCE = "governance"
    COMPLIANCE = "compliance"


class ObjectLockConfig(_Model):
    """S3 Object Lock: every object written is retained (no one can delete it) until a date."""

    mode: ObjectLockMode = Field(
        description=(
            "compliance: no one, not even the account root, can delete an object or shorten its "
            "retention before the date; governance: only users granted "
            "s3:BypassGovernanceRetention can (bbr-orchestrator never uses that permission)."
        ),
        examples=["compliance"],
    )
    retain_for: Duration = Field(
        default=timedelta(days=30),
        description=(
            "Every object is written with retain-until = write time + this. Set it at least to "
            "the longest retention horizon of the plans, so that a backup cannot be deleted "
            "before retention would delete it; pruning reports backups whose objects are still "
            "retained and deletes them on a later run."
        ),
    )

    @field_validator("retain_for")
    @classmethod
    def _sane_retention(cls, value: timedelta) -> timedelta:
        if value > MAX_RETAIN_FOR:
            # A typo here cannot be undone in compliance mode: every object would stay for it.
            raise ValueError(f"at most {MAX_RETAIN_FOR.days} days")
        return value


class CredentialsConfig(_Model):
    """How to authenticate to the object store."""

    source: Literal["default", "profile", "secrets"] = Field(
        default="default",
        description=(
            "default: the standard AWS chain (env vars, shared files, instance role); "
            "profile: a named profile from a credentials file; secrets: the two secrets below."
        ),
    )
    profile: str | None = Field(default=None, description="Profile name (source: profile).")
    credentials_file: Path | None = Field(
        default=None, description="Shared credentials file for the profile (source: profile)."
    )
    access_key_id: SecretRef | None = Field(
        default=None,
        description="Access key id (source: secrets).",
        examples=[{"credential": "s3_access_key_id"}],
    )
    secret_access_key: SecretRef | None = Field(
        default=None,
        description="Secret access key (source: secrets).",
        examples=[{"credential": "s3_secret_access_key"}],
    )

    @model_validator(mode="after")
    def _consistent(self) -> CredentialsConfig:
        if self.source == "profile" and not self.profile:
            raise ValueError("source 'profile' needs a profile name")
        if self.source == "secrets" and (
            self.access_key_id is None or self.secret_access_key is None
        ):
            raise ValueError("source 'secrets' needs access_key_id and secret_access_key")
        return self


class ObjectStoreConfig(_Model):
    """The S3-compatible bucket the artifacts go to."""

    endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible store (MinIO, Ceph, ECS). Empty: AWS S3.",
        examples=["https://s3.example.internal:9000"],
    )
    bucket: str = Field(description="Bucket name.", examples=["foundation-backups"])
    prefix: str = Field(default="bbr", description="Key prefix under which all objects go.")
    region: str = Field(default="us-east-1", description="Region name for request signing.")
    addressing_style: AddressingStyle = Field(
        default=AddressingStyle.AUTO,
        description="auto, path (most S3-compatible stores) or virtual.",
    )
    credentials: CredentialsConfig = Field(default_factory=CredentialsConfig)
    server_side_encryption: ServerSideEncryption = Field(
        default=ServerSideEncryption.NONE, description="none, AES256 (SSE-S3) or aws:kms (SSE-KMS)."
    )
    sse_kms_key_id: str | None = Field(
        default=None, description="KMS key id or ARN (server_side_encryption: aws:kms)."
    )
    request_checksums: RequestChecksums = Field(
        default=RequestChecksums.WHEN_SUPPORTED,
        description=(
            "when_supported (SDK default) or when_required: turn off the newer default request "
            "checksums that some S3-compatible stores reject."
        ),
    )
    verify_tls: bool = Field(default=True, description="Verify the endpoint's TLS certificate.")
    ca_bundle: Path | None = Field(default=None, description="CA bundle for the endpoint.")
    object_lock: ObjectLockConfig | None = Field(
        default=None,
        description=(
            "S3 Object Lock (none when not set): every object is written with retain-until = "
            "write time + retain_for (default 30d), before which no one can delete or overwrite "
            "it, not even with our own credentials. mode: compliance (no one can lift it) or "
            "governance (users with s3:BypassGovernanceRetention could; we never do). Set "
            "retain_for at least to the longest retention horizon of the plans, so that a backup "
            "cannot be deleted before retention would delete it. Needs a versioned bucket "
            "created with object lock enabled; deletes then remove every version of an object "
            "(a plain delete would only hide it behind a delete marker), and a delete before the "
            "date is refused by the store (pruning retries it on a later run)."
        ),
        examples=[{"mode": "compliance", "retain_for": "35d"}],
    )

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not (3 <= len(value) <= 63) or not all(c.isalnum() or c in ".-" for c in value):
            raise ValueError("a bucket name has 3-63 letters, digits, '.' or '-'")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return value.strip("/")

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _kms(self) -> ObjectStoreConfig:
        if self.sse_kms_key_id and self.server_side_encryption is not ServerSideEncryption.KMS:
            raise ValueError("sse_kms_key_id is set but server_side_encryption is not aws:kms")
        return self
