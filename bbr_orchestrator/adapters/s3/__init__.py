"""The S3-compatible object store (the only place boto3 lives).

- :func:`make_client` builds the boto3 client from config (retries off in botocore).
- :class:`S3ObjectStore` implements ``ports.ObjectStore`` over full keys under the prefix.
- :class:`S3MultipartUpload` implements ``ports.MultipartUpload`` (thread-safe parts).
- :class:`ResumingReader` implements ``ports.ReadStream`` (ranged GETs resume after drops).
"""

from bbr_orchestrator.adapters.s3.client import ClientLimits, make_client
from bbr_orchestrator.adapters.s3.integrity import ChecksumMode
from bbr_orchestrator.adapters.s3.read import ResumingReader
from bbr_orchestrator.adapters.s3.retry import RetryPolicy
from bbr_orchestrator.adapters.s3.store import S3ObjectStore
from bbr_orchestrator.adapters.s3.upload import S3MultipartUpload

__all__ = [
    "ChecksumMode",
    "ClientLimits",
    "ResumingReader",
    "RetryPolicy",
    "S3MultipartUpload",
    "S3ObjectStore",
    "make_client",
]
