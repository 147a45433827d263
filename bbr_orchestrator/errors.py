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
