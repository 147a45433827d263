"""The composition root: builds real adapters and action inputs from config.

The only module that knows both the adapters and the actions.
"""

from __future__ import annotations

from bbr_orchestrator.actions.backup_storage import Storage
from bbr_orchestrator.actions.bbr_operation import TargetRun
from bbr_orchestrator.actions.progress import ProgressDisplay
from bbr_orchestrator.adapters import catalog as sql_catalog
from bbr_orchestrator.adapters.s3 import S3ObjectStore
from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings
from bbr_orchestrator.config import Config
from bbr_orchestrator.config.schema import DeploymentTarget, DirectorTarget, JumpboxConfig
from bbr_orchestrator.config.secrets import resolve_secret
from bbr_orchestrator.core.bbr_argv import (
    DeploymentSpec,
    DirectorSpec,
    Operation,
    deployment_argv,
    director_argv,
)
from bbr_orchestrator.core.models import TargetKind
from bbr_orchestrator.ports import ShellFactory


def catalog_url(config: Config) -> str:
    """The catalog URL with its password (from a secret reference) filled in, if any."""
    url = config.catalog_url()
    if url.startswith("sqlite"):
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if config.catalog.password_secret is None:
        return url
    password = resolve_secret(config.catalog.password_secret).reveal()
    return sql_catalog.with_password(url, password)


def open_catalog(config: Config, *, require_head: bool = True) -> sql_catalog.SqlCatalog:
    """Open the configured catalog; refuses one that is not at the migration head."""
    return sql_catalog.open_catalog(catalog_url(config), require_head=require_head)


def storage(config: Config, display: ProgressDisplay | None = None) -> Storage:
    """The object store backups stream to, as the bbr actions take it."""
    from bbr_orchestrator import __version__

    return Storage(
        store=S3ObjectStore.from_config(config.object_store),
        prefix=config.object_store.prefix,
        orchestrator_version=__version__,
        display=display,
    )


def ssh_settings(jumpbox: JumpboxConfig) -> SshSettings:
    passphrase = (
        resolve_secret(jumpbox.private_key_passphrase).reveal()
        if jumpbox.private_key_passphrase
        else None
    )
    return SshSettings(
        host=jumpbox.host,
        port=jumpbox.port,
        user=jumpbox.user,
        private_key_file=jumpbox.private_key_file,
        known_hosts_file=jumpbox.known_hosts_file,
        host_key_fingerprint=jumpbox.host_key_fingerprint,
        private_key_passphrase=passphrase,
        connect_timeout=jumpbox.connect_timeout.total_seconds(),
        keepalive_interval=jumpbox.keepalive_interval.total_seconds(),
    )


def jumpbox_connector(config: Config, target_name: str) -> ShellFactory:
    """Opens SSH sessions to the jumpbox that runs bbr for ``target_name``."""
    settings = ssh_settings(config.jumpbox(config.target(target_name).jumpbox))
    return lambda: SshJumpbox.connect(settings)


DIRECTOR_KEY_FILE = "director_key.pem"


def target_run(config: Config, target_name: str, plan: str | None = None) -> TargetRun:
    """What the bbr actions need to run against one target; resolves its secrets now."""
    target = config.target(target_name)
    jumpbox = config.jumpbox(target.jumpbox)
    timeout = jumpbox.command_timeout.total_seconds()
    if isinstance(target, DirectorTarget):
        return _director_run(target, jumpbox, timeout, plan)
    return _deployment_run(target, jumpbox, timeout, plan)


def _director_run(
    target: DirectorTarget, jumpbox: JumpboxConfig, timeout: float, plan: str | None
) -> TargetRun:
    files: dict[str, bytes] = {}
    if target.private_key is not None:
        key = resolve_secret(target.private_key).reveal()
        files[DIRECTOR_KEY_FILE] = (key.rstrip("\n") + "\n").encode()

    def build(op: Operation, workdir: str, artifact_path: str | None) -> tuple[str, ...]:
        key_path = target.private_key_path or f"{workdir}/{DIRECTOR_KEY_FILE}"
        spec = DirectorSpec(target.host, target.ssh_user, key_path)
        return director_argv(
            jumpbox.bbr_path, spec, op, artifact_path=_artifact(op, workdir, artifact_path)
        )

    return TargetRun(
        target=target.name,
        target_kind=TargetKind.DIRECTOR,
        build_argv=build,
        work_root=jumpbox.work_root,
        run_files=files,
        timeout_seconds=timeout,
        plan=plan,
        keep_failed_workdirs=jumpbox.keep_failed_workdirs,
    )


def _deployment_run(
    target: DeploymentTarget, jumpbox: JumpboxConfig, timeout: float, plan: str | None
) -> TargetRun:
    spec = DeploymentSpec(
        target=target.bosh_target,
        username=target.client,
        ca_cert=target.ca_cert_path,
        deployment=target.deployment,
        all_deployments=target.all_deployments,
        with_manifest=target.with_manifest,
    )
    secret = resolve_secret(target.client_secret)

    def build(op: Operation, workdir: str, artifact_path: str | None) -> tuple[str, ...]:
        return deployment_argv(
            jumpbox.bbr_path, spec, op, artifact_path=_artifact(op, workdir, artifact_path)
        )

    return TargetRun(
        target=target.name,
        target_kind=TargetKind.DEPLOYMENT,
        build_argv=build,
        work_root=jumpbox.work_root,
        env={"BOSH_CLIENT_SECRET": secret.reveal()},
        timeout_seconds=timeout,
        plan=plan,
        keep_failed_workdirs=jumpbox.keep_failed_workdirs,
    )


def _artifact(op: Operation, workdir: str, artifact_path: str | None) -> str | None:
    """bbr's --artifact-path: a backup goes into the run directory; a restore names its artifact."""
    if op is Operation.BACKUP:
        return workdir
    return artifact_path if op is Operation.RESTORE else None
