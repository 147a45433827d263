"""S3 Object Lock: retention on every write, deletes that remove every version, the bucket's state.

On a versioned bucket a delete without a version id only adds a delete marker: the data stays
(and stays billed) and the lock is never even asked. So with object lock configured, a delete
lists the versions (and delete markers) of each key and deletes each one by version id. A
version still under retention is refused by the store with a bare ``AccessDenied``; we look
its retention up and report "retained until <date>" for that key. Governance retention is
never bypassed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bbr_orchestrator.adapters.s3.failures import error_code
from bbr_orchestrator.config.object_store import ObjectLockMode
from bbr_orchestrator.errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Call = Callable[[str, str, Any], Any]
"""``store._call(operation, key, request)``: one request (a no-argument callable) with our
retries and error translation."""
_NO_LOCK_CODES = frozenset(
    {"ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"}
)


@dataclass(frozen=True)
class Retention:
    """Objects are written with ``mode`` retention until write time + ``retain_for``."""

    mode: ObjectLockMode
    retain_for: timedelta
    now: Callable[[], datetime]
    """UTC-aware current time (a ``Clock``'s ``now``)."""

    def params(self) -> dict[str, Any]:
        """boto3 parameters of a PutObject / CreateMultipartUpload carrying the retention."""
        return {
            "ObjectLockMode": self.mode.value.upper(),
            "ObjectLockRetainUntilDate": _ceil_second(self.now() + self.retain_for),
        }


def _ceil_second(when: datetime) -> datetime:
    """Stores keep whole seconds (and truncate): round up, so no object is retained too short."""
    whole = when.replace(microsecond=0)
    return whole if whole == when else whole + timedelta(seconds=1)


def retain_until(response: Any) -> datetime | None:
    """The ``ObjectLockRetainUntilDate`` of a HeadObject response, in UTC (None: not locked)."""
    value = response.get("ObjectLockRetainUntilDate")
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def retained_reason(until: datetime, mode: str | None) -> str:
    """The per-key failure text for a version the store keeps: ``retained until <date> ...``."""
    kind = f" ({mode.lower()} mode)" if mode else ""
    return f"retained until {until.astimezone(UTC).isoformat().replace('+00:00', 'Z')}{kind}"


@dataclass(frozen=True)
class BucketLock:
    """What the bucket says about object lock and versioning."""

    enabled: bool
    versioning: str
    """``Enabled``, ``Suspended`` or ``""`` (never enabled)."""
    default_retention: str | None = None
    """The bucket's default rule (``"GOVERNANCE 30 days"``), applied to objects written
    without a retention of their own; None: no default."""


def bucket_lock(client: S3Client, bucket: str, call: Call) -> BucketLock:
    """Object lock and versioning state of ``bucket`` (two requests)."""

    def lock_configuration() -> dict[str, Any]:
        try:
            return dict(client.get_object_lock_configuration(Bucket=bucket))
        except ClientError as exc:
            if error_code(exc) in _NO_LOCK_CODES:
                return {}
            raise

    config = call("GetObjectLockConfiguration", "", lock_configuration).get(
        "ObjectLockConfiguration", {}
    )
    versioning = call(
        "GetBucketVersioning", "", lambda: client.get_bucket_versioning(Bucket=bucket)
    )
    default = config.get("Rule", {}).get("DefaultRetention") or {}
    period = next(
        (f"{default[unit]} {unit.lower()}" for unit in ("Days", "Years") if unit in default), ""
    )
    return BucketLock(
        enabled=config.get("ObjectLockEnabled") == "Enabled",
        versioning=str(versioning.get("Status", "")),
        default_retention=f"{default.get('Mode', '?')} {period}".strip() if default else None,
    )


class VersionDeleter:
    """Deletes every version and delete marker of some keys (object lock configured)."""

    def __init__(self, client: S3Client, bucket: str, call: Call, batch: int) -> None:
        self._client = client
        self._bucket = bucket
        self._call = call
        self._batch = batch

    def delete(self, keys: Sequence[str]) -> dict[str, str]:
        """Delete all versions of ``keys`` (in the order given, so a commit marker named last
        goes last); returns ``{key: why}`` for each key the store kept a version of."""
        wanted = list(dict.fromkeys(keys))
        versions: dict[str, list[str]] = {key: [] for key in wanted}
        for prefix, delimiter in dict.fromkeys(_listing(key) for key in wanted):
            for key, version_id in self._versions(prefix, delimiter):
                if key in versions:
                    versions[key].append(version_id)
        entries = [(key, version_id) for key in wanted for version_id in versions[key]]
        refused: dict[str, list[tuple[str, str]]] = {}
        for start in range(0, len(entries), self._batch):
            batch = entries[start : start + self._batch]
            objects: list[Any] = [{"Key": k, "VersionId": v} for k, v in batch]
            response = self._call(
                "DeleteObjects",
                batch[0][0],
                lambda o=objects: self._client.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": o, "Quiet": True}
                ),
            )
            for error in response.get("Errors", []):
                key = str(error.get("Key", "?"))
                reason = f"{error.get('Code')}: {error.get('Message')}"
                refused.setdefault(key, []).append((str(error.get("VersionId", "")), reason))
        return {key: self._explain(key, failed) for key, failed in refused.items()}

    def _versions(self, prefix: str, delimiter: str) -> Iterator[tuple[str, str]]:
        """``(key, version id)`` of every version and delete marker listed under ``prefix``."""
        markers: dict[str, str] = {}
        while True:
            params: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix, **markers}
            if delimiter:
                params["Delimiter"] = delimiter
            page = self._call(
                "ListObjectVersions",
                prefix,
                lambda p=params: self._client.list_object_versions(**p),
            )
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                yield str(item["Key"]), str(item["VersionId"])
            if not page.get("IsTruncated"):
                return
            markers = {
                "KeyMarker": page.get("NextKeyMarker", ""),
                "VersionIdMarker": page.get("NextVersionIdMarker", ""),
            }

    def _explain(self, key: str, failed: list[tuple[str, str]]) -> str:
        """Why the versions of ``key`` stayed: their retention, legal hold, or the store's words."""
        latest: tuple[datetime, str | None] | None = None
        held = False
        for version_id, reason in failed:
            if not reason.startswith("AccessDenied") or not version_id:
                continue
            try:
                head = self._call(
                    "HeadObject",
                    key,
                    lambda v=version_id: self._client.head_object(
                        Bucket=self._bucket, Key=key, VersionId=v
                    ),
                )
            except StorageError:
                continue
            held = held or head.get("ObjectLockLegalHoldStatus") == "ON"
            until = retain_until(head)
            if until is not None and (latest is None or until > latest[0]):
                latest = (until, head.get("ObjectLockMode"))
        parts = [retained_reason(*latest)] if latest is not None else []
        if held:
            parts.append("under a legal hold")
        if not parts:
            return failed[0][1]
        return "; ".join(parts) + _kept(len(failed))


def _kept(count: int) -> str:
    return "" if count == 1 else f" ({count} versions kept)"


def _listing(key: str) -> tuple[str, str]:
    """``(prefix, delimiter)`` listing ``key``'s versions: its folder, direct children only."""
    if "/" not in key:
        return key, ""
    return key.rsplit("/", 1)[0] + "/", "/"
