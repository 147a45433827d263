"""A restore preview (``restore --dry-run``): what a restore would put back, and whether it can.

Nothing on the platform is touched and no bbr command runs: the stored backup is re-checked
from the object store (``verify_backup``: every object's SHA-256 and every tar member against
bbr's metadata), the destination's jumpbox gets read-only shell commands only (``true``, a
``df`` of the work root, a TCP connect to the director), and a deployment's instance groups are
compared with those of the destination's newest stored backup. Nothing is recorded in the
catalog and the backup's ``restorable`` flag is left alone (``verify_run`` is what sets it).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import structlog

from bbr_orchestrator.actions.bbr_operation import TargetRun
from bbr_orchestrator.actions.restore_backup import RestoreRefused, restore_plan
from bbr_orchestrator.actions.store_artifact import load_metadata
from bbr_orchestrator.actions.stored_backup import METADATA, check_digest, read_small
from bbr_orchestrator.actions.verify_backup import SMALL_LIMIT, verify_backup
from bbr_orchestrator.actions.verify_run import manifest_key_of
from bbr_orchestrator.core.bbr_metadata import BbrMetadata
from bbr_orchestrator.core.checks import CheckResult, CheckStatus, parse_df_available
from bbr_orchestrator.core.layout import Manifest, ManifestObject, parse_manifest
from bbr_orchestrator.core.models import (
    LogStream,
    RestorePoint,
    Run,
    RunFilter,
    RunKind,
    RunState,
    TargetKind,
)
from bbr_orchestrator.core.preview import (
    InstanceJobs,
    Part,
    compare_instance_groups,
    decide,
    df_nearest_argv,
    group_indexes,
    instance_jobs,
    integrity_records,
    parts_check,
    restore_parts,
    restore_space_check,
    tcp_probe_argv,
)
from bbr_orchestrator.errors import OrchestratorError
from bbr_orchestrator.ports import Catalog, Jumpbox, ObjectStore, ShellFactory

log = structlog.get_logger(__name__)

PROBE_TIMEOUT = 10
"""Seconds the TCP probe of the director may take (enforced on the jumpbox by ``timeout``)."""
_COMMAND_TIMEOUT = 60.0
_TAIL_LINES = 5
_DESTINATION_BACKUPS = 20
"""How many of the destination's newest succeeded backups are tried for its instance groups."""

_Check = Callable[[], CheckResult]


@dataclass(frozen=True)
class Destination:
    """Where the preview's restore would go: the target, its jumpbox, and the director as bbr
    would reach it from the jumpbox (``bbr director --host``, or a deployment's BOSH API)."""

    spec: TargetRun
    jumpbox: str
    director: tuple[str, int] | None


@dataclass(frozen=True)
class Preview:
    """Everything a restore preview found, and its verdict."""

    backup: Run
    destination: str
    manifest_key: str | None
    restore_point: RestorePoint | None
    parts: tuple[Part, ...]
    objects: tuple[ManifestObject, ...]
    bbr_version: str | None
    instances: tuple[InstanceJobs, ...]
    custom_artifacts: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    go: bool
    reasons: tuple[str, ...]

    @property
    def size(self) -> int | None:
        """Bytes the restore would fetch (the manifest's objects; else the run's record)."""
        if self.objects:
            return sum(o.size for o in self.objects)
        return self.backup.bytes_total


def preview_restore(
    catalog: Catalog,
    store: ObjectStore,
    connect: ShellFactory,
    destination: Destination,
    backup: Run,
) -> Preview:
    """Preview restoring ``backup`` into ``destination``; never raises for a failed check (a
    store or jumpbox that cannot be reached is a CRITICAL record)."""
    target = destination.spec.target
    checks: list[CheckResult] = []
    try:
        key: str | None = restore_plan(catalog, destination.spec, backup)
    except RestoreRefused as exc:
        checks.append(CheckResult("restorable", backup.id, CheckStatus.CRITICAL, exc.reason))
        key = manifest_key_of(catalog, backup)
    point, parts = _parts(catalog, backup)
    if point is not None:
        checks.append(parts_check(point.id, parts))
    manifest, meta = _read_backup(store, key) if key is not None else (None, None)
    if key is not None:
        checks.extend(_integrity(store, key))
    size = sum(o.size for o in manifest.objects) if manifest else backup.bytes_total
    checks.extend(_jumpbox_checks(connect, destination, size))
    if destination.spec.target_kind is TargetKind.DEPLOYMENT and meta is not None:
        checks.append(_instance_groups(catalog, store, target, meta))
    go, reasons = decide(checks)
    log.info("restore_previewed", run_id=backup.id, target=target, go=go, reasons=len(reasons))
    return Preview(
        backup=backup,
        destination=target,
        manifest_key=key,
        restore_point=point,
        parts=parts,
        objects=manifest.objects if manifest else (),
        bbr_version=manifest.bbr_version if manifest else None,
        instances=instance_jobs(meta) if meta else (),
        custom_artifacts=tuple(a.name for a in meta.custom_artifacts) if meta else (),
        checks=tuple(checks),
        go=go,
        reasons=reasons,
    )


def _parts(catalog: Catalog, backup: Run) -> tuple[RestorePoint | None, tuple[Part, ...]]:
    if backup.restore_point_id is None:
        return None, restore_parts((), backup)
    try:
        point = catalog.get_restore_point(backup.restore_point_id)
    except OrchestratorError:
        return None, restore_parts((), backup)
    runs = catalog.list_runs(RunFilter(restore_point_id=point.id, limit=500))
    return point, restore_parts(runs, backup)


def _read_backup(store: ObjectStore, key: str) -> tuple[Manifest | None, BbrMetadata | None]:
    """The manifest and bbr's metadata, for display; a damaged or unreadable one is left to the
    integrity checks to report."""
    try:
        found = store.head(key)
        if found is None:
            return None, None
        manifest = parse_manifest(read_small(store, key, found.size, SMALL_LIMIT), key)
    except OrchestratorError:
        return None, None
    return manifest, _read_metadata(store, manifest)


def _read_metadata(store: ObjectStore, manifest: Manifest) -> BbrMetadata | None:
    obj = next((o for o in manifest.objects if o.name == METADATA), None)
    if obj is None:
        return None
    try:
        raw = read_small(store, obj.key, obj.size, SMALL_LIMIT)
        check_digest(obj, len(raw), hashlib.sha256(raw).hexdigest())
        return load_metadata(raw, obj.key)
    except OrchestratorError:
        return None


def _integrity(store: ObjectStore, key: str) -> list[CheckResult]:
    """Two records from one ``verify_backup`` pass: the objects (presence, size, SHA-256) and
    the tar members against bbr's metadata."""
    try:
        report = verify_backup(store, key)
    except OrchestratorError as exc:
        unread = f"the object store could not be read: {exc}"
        return [
            CheckResult("objects", key, CheckStatus.CRITICAL, unread),
            CheckResult("tar-members", key, CheckStatus.CRITICAL, unread),
        ]
    problems = [(p.key, p.member, str(p)) for p in report.problems]
    counts = (report.objects_checked, report.bytes_checked, report.members_checked)
    return list(integrity_records(key, counts, problems))


class _Tail:
    """The last few output lines of a remote command, and all of its stdout."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=_TAIL_LINES)
        self.stdout: list[str] = []

    def __call__(self, stream: LogStream, line: str) -> None:
        if line.strip():
            self.lines.append(line)
        if stream is LogStream.STDOUT:
            self.stdout.append(line)

    def text(self) -> str:
        return " / ".join(self.lines) or "no output"


def _jumpbox_checks(
    connect: ShellFactory, destination: Destination, size: int | None
) -> list[CheckResult]:
    """SSH with a trusted host key (``true``), work-root space, director reachable: all
    read-only shell commands, none of them bbr."""
    name = destination.jumpbox
    director = destination.director
    director_subject = f"{director[0]}:{director[1]}" if director else destination.spec.target
    try:
        shell = connect()
    except OrchestratorError as exc:
        unreachable = f"not checked: jumpbox {name} is unreachable"
        return [
            CheckResult("ssh", name, CheckStatus.CRITICAL, str(exc)),
            CheckResult("work-space", name, CheckStatus.CRITICAL, unreachable),
            CheckResult("director-reachable", director_subject, CheckStatus.CRITICAL, unreachable),
        ]
    try:
        work_root = destination.spec.work_root
        results = [
            _guard("ssh", name, partial(_ssh, shell, name)),
            _guard("work-space", name, partial(_space, shell, name, work_root, size)),
        ]
        if director is not None:
            probe = partial(_director, shell, name, director)
            results.append(_guard("director-reachable", director_subject, probe))
        return results
    finally:
        shell.close()


def _guard(name: str, subject: str, check: _Check) -> CheckResult:
    try:
        return check()
    except OrchestratorError as exc:
        return CheckResult(name, subject, CheckStatus.CRITICAL, str(exc))


def _ssh(shell: Jumpbox, name: str) -> CheckResult:
    tail = _Tail()
    code = shell.run(("true",), on_line=tail, timeout=_COMMAND_TIMEOUT)
    if code != 0:
        detail = f"`true` exited {code}: {tail.text()}"
        return CheckResult("ssh", name, CheckStatus.CRITICAL, detail)
    return CheckResult("ssh", name, CheckStatus.OK, f"connected to {shell.host}, host key trusted")


def _space(shell: Jumpbox, name: str, work_root: str, size: int | None) -> CheckResult:
    tail = _Tail()
    code = shell.run(df_nearest_argv(work_root), on_line=tail, timeout=_COMMAND_TIMEOUT)
    if code != 0:
        detail = f"`df` of {work_root} exited {code}: {tail.text()}"
        return CheckResult("work-space", name, CheckStatus.CRITICAL, detail)
    try:
        free = parse_df_available(tail.stdout)
    except ValueError as exc:
        return CheckResult("work-space", name, CheckStatus.CRITICAL, str(exc))
    return restore_space_check(name, work_root, free, size)


def _director(shell: Jumpbox, name: str, address: tuple[str, int]) -> CheckResult:
    host, port = address
    tail = _Tail()
    argv = tcp_probe_argv(host, port, PROBE_TIMEOUT)
    code = shell.run(argv, on_line=tail, timeout=PROBE_TIMEOUT + _COMMAND_TIMEOUT)
    subject = f"{host}:{port}"
    if code == 0:
        return CheckResult(
            "director-reachable", subject, CheckStatus.OK, f"TCP connect from jumpbox {name}"
        )
    why = f"no answer within {PROBE_TIMEOUT}s" if code == 124 else tail.text()
    detail = f"no TCP connection from jumpbox {name} (exit {code}): {why}"
    return CheckResult("director-reachable", subject, CheckStatus.CRITICAL, detail)


def _instance_groups(
    catalog: Catalog, store: ObjectStore, target: str, meta: BbrMetadata
) -> CheckResult:
    """The backup's instance groups and indexes against the destination's newest stored
    backup (``bosh instances`` would need the director: bbr's metadata stands in for it)."""
    artifact = group_indexes((i.name, i.index) for i in meta.instances)
    backups = catalog.list_runs(
        RunFilter(
            target=target, kind=RunKind.BACKUP, state=RunState.SUCCEEDED, limit=_DESTINATION_BACKUPS
        )
    )
    for newest in backups:
        key = manifest_key_of(catalog, newest)
        current = _read_backup(store, key)[1] if key is not None else None
        if current is not None:
            now = group_indexes((i.name, i.index) for i in current.instances)
            source = f"{target}'s newest stored backup {newest.id}"
            return compare_instance_groups(target, artifact, now, source)
    unknown = f"{target} has no readable stored backup to compare with"
    return compare_instance_groups(target, artifact, None, unknown)
