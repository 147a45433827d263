"""Translate botocore / urllib3 exceptions into our ``StorageError`` family, naming bucket and key.

Only the error code and the server's message reach our errors: never request headers,
signatures or credentials.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from urllib3.exceptions import HTTPError as Urllib3Error

from bbr_orchestrator.errors import (
    ObjectCorrupt,
    ObjectNotFound,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
    UploadAborted,
    UploadRejected,
)

S3_FAILURES: tuple[type[Exception], ...] = (ClientError, BotoCoreError, Urllib3Error)
"""Everything a boto3 call (or reading a response body) may raise that we translate."""

TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "OperationAborted",
        "RequestLimitExceeded",
        "RequestTimeout",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
    }
)
ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
        "403",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "NotFound", "404"})
CORRUPT_CODES = frozenset(
    {"BadDigest", "InvalidDigest", "InvalidChecksum", "XAmzContentSHA256Mismatch"}
)
REJECTED_CODES = frozenset({"EntityTooLarge", "EntityTooSmall", "InvalidPart", "InvalidPartOrder"})
_TRANSIENT_BOTOCORE = (BotoConnectionError, HTTPClientError, IncompleteReadError, Urllib3Error)


def error_code(exc: ClientError) -> str:
    """The S3 error code of a ClientError (``"404"`` for a bodiless HEAD)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def translate(
    exc: Exception, *, bucket: str, key: str, operation: str, attempts: int = 1
) -> StorageError:
    """The ``StorageError`` for ``exc``; transient failures become ``StorageUnavailable``."""
    if isinstance(exc, ClientError):
        return _client_error(exc, bucket=bucket, key=key, operation=operation, attempts=attempts)
    reason = f"{operation}: {type(exc).__name__}: {exc}"
    if isinstance(exc, _TRANSIENT_BOTOCORE):
        return StorageUnavailable(bucket, key, reason, attempts)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | ProfileNotFound):
        return StorageAccessDenied(bucket, key, reason)
    if isinstance(exc, FlexibleChecksumError):
        return ObjectCorrupt(bucket, key, reason)
    return StorageError(bucket, key, reason)


def _client_error(
    exc: ClientError, *, bucket: str, key: str, operation: str, attempts: int
) -> StorageError:
    code, status = error_code(exc), _status(exc)
    message = str(exc.response.get("Error", {}).get("Message", "")) or f"HTTP {status}"
    reason = f"{operation}: {code or status}: {message}"
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return StorageUnavailable(bucket, key, reason, attempts)
    if code in ACCESS_CODES or status == 403:
        return StorageAccessDenied(bucket, key, f"{reason} (check the credentials and policy)")
    if code in NOT_FOUND_CODES or status == 404:
        return ObjectNotFound(bucket, key, reason)
    if code == "NoSuchUpload":
        return UploadAborted(bucket, key, reason)
    if code in CORRUPT_CODES:
        return ObjectCorrupt(bucket, key, reason)
    if code in REJECTED_CODES:
        return UploadRejected(bucket, key, reason)
    return StorageError(bucket, key, reason)
