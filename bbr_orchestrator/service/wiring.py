"""The composition root: builds real adapters and action inputs from config.

The only module that knows both the adapters and the actions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from bbr_orchestrator.actions.backup_storage import Storage
from bbr_orchestrator.actions.bbr_operation import TargetRun, run_operation
from bbr_orchestrator.actions.opsman_export import OpsmanRun
from bbr_orchestrator.actions.progress import ProgressDisplay
from bbr_orchestrator.actions.recovery import CleanupRunner, RecoveryTarget, TargetResolver
from bbr_orchestrator.actions.run_claim import Requester
from bbr_orchestrator.adapters import catalog as sql_catalog
from bbr_orchestrator.adapters.encryption import EncryptingStore, KeyLoader, Keyring, decode_key
from bbr_orchestrator.adapters.metrics import DaemonMetrics
from bbr_orchestrator.adapters.s3 import ClientLimits, RetryPolicy, S3ObjectStore
from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings
from bbr_orchestrator.adapters.systemd import SystemdNotifier
from bbr_orchestrator.config import Config
from bbr_orchestrator.config.schema import (
    DeploymentTarget,
    DirectorTarget,
    JumpboxConfig,
    OpsmanTarget,
)
from bbr_orchestrator.config.secrets import resolve_secret
from bbr_orchestrator.config.types import SecretReference
from bbr_orchestrator.core.bbr_argv import (
    DeploymentSpec,
    DirectorSpec,
    Operation,
    deployment_argv,
    director_argv,
)
from bbr_orchestrator.core.layout import target_prefix
from bbr_orchestrator.core.models import Run, TargetKind
from bbr_orchestrator.core.om_argv import OmConnection, export_installation_argv, om_environment
from bbr_orchestrator.errors import InvalidOperation
from bbr_orchestrator.ports import Catalog, Clock, ShellFactory


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


def storage(
    config: Config,
    display: ProgressDisplay | None = None,
    *,
    plan: str | None = None,
    target: str | None = None,
) -> Storage:
    """The object store backups stream to, as the bbr actions take it. It decrypts any backup
    whose key is in ``encryption.keys``, and encrypts new ones with the key of ``plan`` (or,
    for a backup outside a plan, of the first plan listing ``target``) when it names one; that
    key's secret is resolved now (``EncryptionKeyUnavailable`` before anything runs)."""
    from bbr_orchestrator import __version__

    key_id = encryption_key_id(config, plan, target)
    store = EncryptingStore(
        S3ObjectStore.from_config(config.object_store),
        keyring(config),
        key_id,
        prefix=config.object_store.prefix,
    )
    return Storage(
        store=store,
        prefix=config.object_store.prefix,
        orchestrator_version=__version__,
        display=display,
        encryption_key_id=key_id,
    )


def encryption_key_id(
    config: Config, plan: str | None = None, target: str | None = None
) -> str | None:
    """The key new backups are encrypted with: ``plan``'s; without a plan, that of the first
    plan listing ``target``; None: not encrypted."""
    if plan is not None:
        return next((p.encryption_key for p in config.plans if p.name == plan), None)
    return next((p.encryption_key for p in config.plans if target in p.targets), None)


def keyring(config: Config) -> Keyring:
    """Every configured encryption key, its secret resolved when the key is first needed."""

    def loader(ref: SecretReference) -> KeyLoader:
        return lambda: decode_key(resolve_secret(ref).reveal(), ref.describe())

    return Keyring({key.id: loader(key.key) for key in config.encryption.keys})


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
    if isinstance(target, OpsmanTarget):
        raise InvalidOperation(
            "run", f"{target_name} is an Ops Manager: it is exported with om, not backed up by bbr"
        )
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


def recovery_resolver(
    config: Config, catalog: Catalog, clock: Clock, requester: Requester
) -> TargetResolver:
    """How crash recovery reaches a target's jumpbox, uploads and cleanup (None: unknown)."""
    store = S3ObjectStore.from_config(config.object_store)

    def resolve(name: str) -> RecoveryTarget | None:
        target = next((t for t in config.targets if t.name == name), None)
        if target is None:
            return None
        connect = jumpbox_connector(config, name)
        cleanup: CleanupRunner | None = None
        if target.kind in ("director", "deployment"):

            def cleanup(operation: Operation, running: Run) -> Run:
                spec = target_run(config, name, running.plan)
                return run_operation(
                    catalog, connect, clock, spec, operation, requester, running=running
                )

        upload_prefix = target_prefix(config.object_store.prefix, name)
        return RecoveryTarget(
            connect=connect,
            work_root=config.jumpbox(target.jumpbox).work_root,
            store=store,
            upload_prefix=upload_prefix,
            cleanup=cleanup,
        )

    return resolve


def notifier(environ: Mapping[str, str]) -> SystemdNotifier:
    """systemd's notify socket from the environment (a no-op when not under systemd)."""
    return SystemdNotifier.from_env(environ)


def daemon_metrics() -> DaemonMetrics:
    """The daemon's metrics registry (nothing per process in it: a restart scrapes the same)."""
    return DaemonMetrics.create()


def storage_probe(config: Config, timeout: float) -> Callable[[], None]:
    """Lists at most one key under the prefix (one request, no retry); raises when the store
    does not answer, refuses the credentials or has no such bucket."""
    store = S3ObjectStore.from_config(
        config.object_store,
        limits=ClientLimits(connect_timeout=timeout, read_timeout=timeout, parallel_parts=1),
        retry=RetryPolicy(attempts=1),
    )
    prefix = config.object_store.prefix

    def probe() -> None:
        next(iter(store.list(prefix, page_size=1)), None)

    return probe


def jumpbox_probe(config: Config, jumpbox: str, timeout: float) -> Callable[[], None]:
    """Opens an SSH connection to the jumpbox (host key verified) and closes it at once."""
    settings = ssh_settings(config.jumpbox(jumpbox))
    settings = replace(settings, connect_timeout=min(settings.connect_timeout, timeout))

    def probe() -> None:
        SshJumpbox.connect(settings).close()

    return probe


def opsman_run(config: Config, target_name: str, plan: str | None = None) -> OpsmanRun:
    """What the installation export needs for one Ops Manager target; resolves its secrets
    now (they travel in om's environment, never its command line)."""
    target = config.target(target_name)
    if not isinstance(target, OpsmanTarget):
        raise InvalidOperation(
            "opsman-export", f"{target_name} is a {target.kind} target, not an Ops Manager"
        )
    jumpbox = config.jumpbox(target.jumpbox)
    connection = OmConnection(
        url=target.url,
        ca_cert_path=target.ca_cert_path,
        skip_ssl_validation=target.skip_ssl_validation,
        request_timeout_seconds=max(1, int(target.request_timeout.total_seconds())),
    )

    def reveal(ref: SecretReference | None) -> str | None:
        return None if ref is None else resolve_secret(ref).reveal()

    env = om_environment(
        username=target.username,
        password=reveal(target.password),
        client_id=target.client_id,
        client_secret=reveal(target.client_secret),
        decryption_passphrase=reveal(target.decryption_passphrase),
    )

    def build(output_file: str) -> tuple[str, ...]:
        return export_installation_argv(target.om_path, connection, output_file)

    return OpsmanRun(
        target=target.name,
        build_argv=build,
        work_root=jumpbox.work_root,
        env=env,
        timeout_seconds=jumpbox.command_timeout.total_seconds(),
        plan=plan,
        keep_failed_workdirs=jumpbox.keep_failed_workdirs,
    )
