"""Targets for integration tests: director and deployment specs pointing at the simulator."""

from __future__ import annotations

from pathlib import Path

from bbr_orchestrator.actions.bbr_operation import TargetRun
from bbr_orchestrator.actions.run_claim import Requester
from bbr_orchestrator.core.bbr_argv import (
    DeploymentSpec,
    DirectorSpec,
    Operation,
    deployment_argv,
    director_argv,
)
from bbr_orchestrator.core.models import TargetKind, Trigger

OPERATOR = Requester(Trigger.OPERATOR, "tester@ci")


def director(tmp_path: Path, host: str) -> TargetRun:
    """A director target whose bbr key is copied into each run directory."""

    def build(op: Operation, workdir: str, artifact: str | None) -> tuple[str, ...]:
        spec = DirectorSpec(host=host, username="bbr", private_key_path=f"{workdir}/key.pem")
        path = workdir if op is Operation.BACKUP else artifact
        return director_argv("bbr", spec, op, artifact_path=path)

    return TargetRun(
        target=f"director-{host}",
        target_kind=TargetKind.DIRECTOR,
        build_argv=build,
        work_root=str(tmp_path / "work"),
        run_files={"key.pem": b"-----BEGIN OPENSSH PRIVATE KEY-----\n"},
        timeout_seconds=120,
    )


def deployment(tmp_path: Path, name: str, secret: str = "any-secret") -> TargetRun:
    """A deployment target; the secret goes into bbr's environment only."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    spec = DeploymentSpec(
        target="https://10.9.0.4:25555",
        username="bbr_client",
        ca_cert=str(ca),
        deployment=name,
        with_manifest=True,
    )

    def build(op: Operation, workdir: str, artifact: str | None) -> tuple[str, ...]:
        path = workdir if op is Operation.BACKUP else artifact
        return deployment_argv("bbr", spec, op, artifact_path=path)

    return TargetRun(
        target=name,
        target_kind=TargetKind.DEPLOYMENT,
        build_argv=build,
        work_root=str(tmp_path / "work"),
        env={"BOSH_CLIENT_SECRET": secret},
    )
