"""Build the boto3 S3 client from ``ObjectStoreConfig``.

Retry decision: botocore's own retries are OFF (``total_max_attempts=1``). Every retry is
made by :func:`~bbr_orchestrator.adapters.s3.retry.call_with_retries` (and, for downloads,
:class:`~bbr_orchestrator.adapters.s3.read.ResumingReader`), so each one is bounded by one
``RetryPolicy``, logged as an event naming what was retried, and a part is retried with
its checksum computed once instead of botocore re-reading and re-hashing the body.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from bbr_orchestrator.config.schema import ObjectStoreConfig, RequestChecksums
from bbr_orchestrator.config.secrets import resolve_secret
from bbr_orchestrator.errors import StorageAccessDenied

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_CHECKSUM_HEADERS = ("x-amz-checksum-", "x-amz-sdk-checksum-")


@dataclass(frozen=True)
class ClientLimits:
    """Timeouts and pool size of the client (per request, not per transfer)."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    """Longest silence on an open connection (a part upload waiting for its response)."""
    parallel_parts: int = 8
    """Parts in flight at once; the connection pool gets this many plus 2 for other calls."""


def _session(config: ObjectStoreConfig) -> boto3.session.Session:
    creds = config.credentials
    if creds.source == "secrets" and creds.access_key_id and creds.secret_access_key:
        return boto3.session.Session(
            aws_access_key_id=resolve_secret(creds.access_key_id).reveal(),
            aws_secret_access_key=resolve_secret(creds.secret_access_key).reveal(),
            region_name=config.region,
        )
    core = botocore.session.Session()
    if creds.source == "profile":
        if creds.credentials_file is not None:
            # Set on this session only: no process-wide AWS_SHARED_CREDENTIALS_FILE.
            core.set_config_variable("credentials_file", str(creds.credentials_file))
        core.set_config_variable("profile", creds.profile)
    return boto3.session.Session(botocore_session=core, region_name=config.region)


def make_client(config: ObjectStoreConfig, limits: ClientLimits | None = None) -> S3Client:
    """A thread-safe S3 client for ``config``: signing, addressing, TLS, timeouts, pool.

    Raises ``StorageAccessDenied`` when the named profile does not exist, ``SecretError``
    when a secret reference cannot be resolved.
    """
    lim = limits or ClientLimits()
    checksums: Literal["when_supported", "when_required"] = (
        "when_required"
        if config.request_checksums is RequestChecksums.WHEN_REQUIRED
        else "when_supported"
    )
    botocore_config = Config(
        region_name=config.region,
        signature_version="s3v4",
        s3={"addressing_style": config.addressing_style.value},
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=lim.connect_timeout,
        read_timeout=lim.read_timeout,
        max_pool_connections=lim.parallel_parts + 2,
        tcp_keepalive=True,
        request_checksum_calculation=checksums,
        response_checksum_validation=checksums,
        user_agent_extra="bbr-orchestrator",
    )
    verify: bool | str = config.verify_tls
    if config.verify_tls and config.ca_bundle is not None:
        verify = str(config.ca_bundle)
    try:
        client = _session(config).client(
            "s3", endpoint_url=config.endpoint_url, verify=verify, config=botocore_config
        )
    except BotoCoreError as exc:
        raise StorageAccessDenied(config.bucket, "", f"cannot build the S3 client: {exc}") from exc
    if checksums == "when_required":
        client.meta.events.register("before-sign.s3.DeleteObjects", _content_md5_instead)
    return client


def _content_md5_instead(request: Any, **_kwargs: Any) -> None:
    """DeleteObjects must carry a checksum; botocore >= 1.36 always sends CRC32 for it, which
    the stores that need ``when_required`` reject. Give them the classic Content-MD5 instead."""
    for name in [h for h in request.headers if h.lower().startswith(_CHECKSUM_HEADERS)]:
        del request.headers[name]
    body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
    digest = hashlib.md5(body, usedforsecurity=False).digest()
    request.headers["Content-MD5"] = base64.b64encode(digest).decode("ascii")
