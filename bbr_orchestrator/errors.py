"""One root error type; every subclass carries the data an operator needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class OrchestratorError(Exception):
    """Root of every error bbr-orchestrator raises on purpose."""

    exit_code: int = 1


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file, located by its dotted path (``plans[1].schedule``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(OrchestratorError):
    """The config file is missing, unreadable or invalid; carries every problem at once."""

    exit_code = 2

    def __init__(self, source: str, problems: Sequence[ConfigProblem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        noun = "error" if len(self.problems) == 1 else "errors"
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} config {noun}:\n{lines}")


class SecretError(OrchestratorError):
    """A secret reference (env var or file) cannot be resolved."""

    exit_code = 2

    def __init__(self, reference: str, reason: str) -> None:
        self.reference = reference
        self.reason = reason
        super().__init__(f"secret {reference}: {reason}")


class CatalogError(OrchestratorError):
    """The catalog database cannot be reached or used."""

    exit_code = 3

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"catalog {url}: {reason}")


class CatalogNotAtHead(CatalogError):
    """The catalog schema is not at the migration head this version needs."""

    def __init__(self, url: str, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        have = current or "empty (no schema)"
        super().__init__(
            url,
            f"schema revision is {have}, this version needs {head}; "
            "run `bbr-orchestrator db upgrade` to migrate it",
        )


class RunNotFound(OrchestratorError):
    """No run with this id (or id prefix) is in the catalog."""

    exit_code = 4

    def __init__(self, run_id: str, reason: str = "no such run") -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id}: {reason}")


class RunConflict(OrchestratorError):
    """A compare-and-set on a run's state lost: the run was not in the expected state."""

    exit_code = 5

    def __init__(self, run_id: str, expected: Sequence[str], actual: str | None) -> None:
        self.run_id = run_id
        self.expected = tuple(expected)
        self.actual = actual
        super().__init__(
            f"run {run_id}: expected state in {', '.join(self.expected)}, found {actual}"
        )


class TargetBusy(RunConflict):
    """Another run holds the target (the catalog allows one running run per target)."""

    def __init__(self, run_id: str, target: str, holder: str | None) -> None:
        self.target = target
        self.holder = holder
        OrchestratorError.__init__(
            self, f"run {run_id}: target {target} is busy with run {holder or '(unknown)'}"
        )
        self.run_id = run_id
        self.expected = ()
        self.actual = None


class FiringTaken(OrchestratorError):
    """This plan firing already has a restore point (another daemon, or this one, claimed it)."""

    exit_code = 5

    def __init__(self, plan: str, scheduled_for: str, holder: str | None) -> None:
        self.plan = plan
        self.scheduled_for = scheduled_for
        self.holder = holder
        super().__init__(
            f"plan {plan} firing {scheduled_for}: already claimed by restore point {holder}"
        )


class DrillRefused(OrchestratorError):
    """A restore drill cannot run: the plan has no complete restore point with a restorable
    backup of the drill's source (nothing was run or recorded)."""

    def __init__(self, plan: str, source: str, reason: str) -> None:
        self.plan = plan
        self.source = source
        self.reason = reason
        super().__init__(f"drill of plan {plan} (source {source}) refused: {reason}")


class RestorePointNotFound(OrchestratorError):
    """No restore point with this id is in the catalog."""

    exit_code = 4

    def __init__(self, restore_point_id: str) -> None:
        self.restore_point_id = restore_point_id
        super().__init__(f"restore point {restore_point_id}: no such restore point")


class DaemonNotRunning(OrchestratorError):
    """No daemon answers at the pid file (for ``reload``)."""

    def __init__(self, pid_file: str, reason: str) -> None:
        self.pid_file = pid_file
        super().__init__(f"no running daemon found by {pid_file}: {reason}")


class ArtifactConflict(OrchestratorError):
    """An artifact with this object key is already recorded for the run."""

    exit_code = 5

    def __init__(self, run_id: str, object_key: str) -> None:
        self.run_id = run_id
        self.object_key = object_key
        super().__init__(f"run {run_id}: artifact {object_key} is already recorded")


class SandboxError(OrchestratorError):
    """A local sandbox process (sshd, S3 server) failed to start or answer."""

    exit_code = 6

    def __init__(self, component: str, reason: str) -> None:
        self.component = component
        self.reason = reason
        super().__init__(f"sandbox {component}: {reason}")


class InvalidOperation(OrchestratorError):
    """A bbr operation that cannot be asked for (bad flag combination)."""

    exit_code = 2

    def __init__(self, operation: str, reason: str) -> None:
        self.operation = operation
        self.reason = reason
        super().__init__(f"bbr {operation}: {reason}")


class SshError(OrchestratorError):
    """The jumpbox cannot be reached, refuses us, or the session broke."""

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        super().__init__(f"jumpbox {host}: {reason}")


class HostKeyError(SshError):
    """The jumpbox's host key is unknown or differs from the trusted one: connection refused."""

    def __init__(self, host: str, fingerprint: str, reason: str) -> None:
        self.fingerprint = fingerprint
        super().__init__(host, f"{reason} (host key seen: {fingerprint}); connection refused")


class RemoteTimeout(SshError):
    """A remote command ran past its timeout and was stopped."""

    def __init__(self, host: str, command: str, seconds: float) -> None:
        self.command = command
        self.seconds = seconds
        super().__init__(host, f"`{command}` ran longer than {seconds:.0f}s and was stopped")


class ArtifactCorrupt(OrchestratorError):
    """A backup artifact fails verification; names the file and, when known, the tar member."""

    def __init__(self, file: str, member: str | None, reason: str) -> None:
        self.file = file
        self.member = member
        self.reason = reason
        where = f"artifact {file}" + (f", member {member}" if member is not None else "")
        super().__init__(f"{where}: {reason}")


class TarStreamError(ArtifactCorrupt):
    """A streamed tar is truncated or malformed; ``offset`` is the byte where parsing stopped."""

    def __init__(self, file: str, offset: int, reason: str, member: str | None = None) -> None:
        self.offset = offset
        super().__init__(file, member, f"{reason} (at byte {offset})")


class MetadataInvalid(ArtifactCorrupt):
    """bbr's ``metadata`` file is malformed; carries every problem, located by its path."""

    def __init__(self, source: str, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        lines = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(source, None, f"invalid bbr metadata:{lines}")


class ManifestInvalid(ArtifactCorrupt):
    """A stored ``manifest.json`` is malformed; carries every problem, located by its path."""

    def __init__(self, source: str, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        lines = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(source, None, f"invalid manifest:{lines}")


class ObjectTooLarge(OrchestratorError):
    """A file cannot be stored as one S3 object (5 TiB per object, 5 GiB per part)."""

    def __init__(self, size: int, reason: str) -> None:
        self.size = size
        self.reason = reason
        super().__init__(f"object of {size} bytes cannot be uploaded: {reason}")


class StorageError(OrchestratorError):
    """An object-store request failed; names the bucket and key (never credentials)."""

    exit_code = 7

    def __init__(self, bucket: str, key: str, reason: str) -> None:
        self.bucket = bucket
        self.key = key
        self.reason = reason
        where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
        super().__init__(f"{where}: {reason}")


class StorageUnavailable(StorageError):
    """The store stayed unreachable or overloaded (timeouts, 5xx, SlowDown) through every retry."""

    def __init__(self, bucket: str, key: str, reason: str, attempts: int) -> None:
        self.attempts = attempts
        self.cause = reason
        noun = "attempt" if attempts == 1 else "attempts"
        super().__init__(bucket, key, f"{reason} (gave up after {attempts} {noun})")


class StorageAccessDenied(StorageError):
    """The store refused our credentials or their permissions (not retried)."""


class ObjectNotFound(StorageError):
    """The object (or the bucket) does not exist."""


class UploadAborted(StorageError):
    """The multipart upload no longer exists (aborted, or completed elsewhere)."""


class UploadRejected(StorageError):
    """The store refused the parts of a multipart upload (too small, missing, out of order)."""


class ObjectCorrupt(StorageError):
    """Bytes did not arrive intact (checksum mismatch), or the object changed while being read."""


class DeleteFailed(StorageError):
    """Some objects of a batch delete were not deleted; ``failures`` maps key to the reason."""

    def __init__(self, bucket: str, failures: dict[str, str]) -> None:
        self.failures = dict(failures)
        shown = "; ".join(f"{key}: {why}" for key, why in list(self.failures.items())[:5])
        more = f"; and {len(self.failures) - 5} more" if len(self.failures) > 5 else ""
        super().__init__(bucket, "", f"{len(self.failures)} objects not deleted: {shown}{more}")


class RemoteFileError(SshError):
    """A file on the jumpbox cannot be read or written as asked (missing, not a regular file,
    changed while read, short write): retrying the same request will not help."""

    def __init__(self, host: str, path: str, reason: str) -> None:
        self.path = path
        super().__init__(host, f"{path}: {reason}")


class TransferInterrupted(SshError):
    """A file transfer broke mid-way (connection lost, remote reader killed, no data for too
    long). For a read, ``offset`` is the exact byte to resume from on a new connection; for a
    write it is None (the file must be written again)."""

    def __init__(self, host: str, path: str, offset: int | None, reason: str) -> None:
        self.path = path
        self.offset = offset
        at = "" if offset is None else f" at byte {offset}"
        super().__init__(host, f"{path}: transfer interrupted{at}: {reason}")


class TruncatedFile(OrchestratorError):
    """A file's bytes did not match its listed size (it changed while being copied)."""

    def __init__(self, path: str, expected: int, got: int) -> None:
        self.path = path
        self.expected = expected
        self.got = got
        super().__init__(f"{path}: ended after {got} of {expected} bytes")


class BackupIncomplete(OrchestratorError):
    """A stored backup cannot be restored: its manifest (the commit marker) or an object the
    manifest lists is missing from the store; ``key`` is the missing object's key."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"incomplete backup: {reason} ({key})")
