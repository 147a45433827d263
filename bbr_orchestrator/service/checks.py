"""``bbr-orchestrator check``: pre-flight checks of everything a backup needs, as records.

Checked: the catalog (reachable, at the migration head); each jumpbox in use (reachable with
a trusted host key, ``bbr version``, free space in the work root); each target (``bbr ...
pre-backup-check`` in a throwaway directory, not recorded as a run); the object store (a
probe object written, read back, compared and deleted; with object lock configured: the bucket
has lock and versioning enabled, and the probe, written with a retention of a few seconds, is
refused deletion until then and deleted after). Every ``OrchestratorError`` becomes a
CRITICAL record; only programming errors escape. One SSH connection per jumpbox.
"""

from __future__ import annotations

import secrets
import shlex
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

from bbr_orchestrator.adapters import catalog as sql_catalog
from bbr_orchestrator.adapters.s3 import RetryPolicy, S3ObjectStore
from bbr_orchestrator.config import Config
from bbr_orchestrator.config.schema import JumpboxConfig
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.checks import (
    CheckResult,
    CheckStatus,
    parse_df_available,
    space_check,
)
from bbr_orchestrator.core.models import LogStream, RunFilter, RunKind, RunState
from bbr_orchestrator.core.outcome import decode_exit
from bbr_orchestrator.core.retention import duration_text
from bbr_orchestrator.errors import DeleteFailed, OrchestratorError
from bbr_orchestrator.ports import Jumpbox, ObjectStore
from bbr_orchestrator.service import wiring

PROBE_DIR = ".bbr-orchestrator-check"
"""Probe objects go under ``{prefix}/.bbr-orchestrator-check/<random>``."""
_SHORT_TIMEOUT = 60.0
_TAIL_LINES = 5
_DETAIL_CHARS = 500
PROBE_RETENTION = timedelta(seconds=2)
"""Under object lock, the probe object is retained this long (and deleted after)."""
_PROBE_DELETE_TRIES = 5


def run_checks(
    config: Config, *, targets: list[str] | None = None, pre_backup_checks: bool = True
) -> list[CheckResult]:
    """Run every check for ``targets`` (all configured targets when None) and their jumpboxes;
    ``pre_backup_checks=False`` leaves out bbr's check of each target (a plan runs its own)."""
    known = [t.name for t in config.targets]
    wanted = known if targets is None else list(dict.fromkeys(targets))
    results = [
        _critical("target", name, "no such target in the config")
        for name in wanted
        if name not in known
    ]
    selected = [name for name in wanted if name in known]
    catalog_result, last_sizes = _check_catalog(config)
    results.append(catalog_result)
    results.extend(_check_object_store(config))
    for jumpbox in _jumpboxes_in_use(config, selected):
        on_it = [n for n in selected if config.target(n).jumpbox == jumpbox.name]
        sizes = [last_sizes.get(t.name) for t in config.targets if t.jumpbox == jumpbox.name]
        known_sizes = [s for s in sizes if s is not None]
        checked = [
            name
            for name in on_it
            if pre_backup_checks and config.target(name).kind in ("director", "deployment")
        ]
        results.extend(
            _check_jumpbox(
                config, jumpbox, on_it[0], checked, max(known_sizes) if known_sizes else None
            )
        )
    return results


def _critical(name: str, subject: str, detail: str) -> CheckResult:
    return CheckResult(name, subject, CheckStatus.CRITICAL, _clip(detail))


def _ok(name: str, subject: str, detail: str) -> CheckResult:
    return CheckResult(name, subject, CheckStatus.OK, _clip(detail))


def _clip(text: str) -> str:
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def _jumpboxes_in_use(config: Config, targets: Sequence[str]) -> list[JumpboxConfig]:
    names = dict.fromkeys(config.target(t).jumpbox for t in targets)
    return [config.jumpbox(name) for name in names]


# --- catalog ---------------------------------------------------------------------------------


def _check_catalog(config: Config) -> tuple[CheckResult, dict[str, int]]:
    """Catalog reachable and at head; also the size of each target's last good backup."""
    subject = sql_catalog.mask_url(config.catalog_url())
    try:
        with wiring.open_catalog(config) as catalog:
            sizes: dict[str, int] = {}
            for target in config.targets:
                runs = catalog.list_runs(
                    RunFilter(
                        target=target.name,
                        kind=RunKind.BACKUP,
                        state=RunState.SUCCEEDED,
                        limit=1,
                    )
                )
                if runs and runs[0].bytes_total is not None:
                    sizes[target.name] = runs[0].bytes_total
        revision = sql_catalog.head_revision()
    except OrchestratorError as exc:
        detail = str(exc)
        if "db upgrade" not in detail and "schema" in detail:
            detail += "; run `bbr-orchestrator db upgrade`"
        return _critical("catalog", subject, detail), {}
    return _ok("catalog", subject, f"reachable, schema at head ({revision})"), sizes


# --- object store ----------------------------------------------------------------------------


def _check_object_store(config: Config) -> list[CheckResult]:
    """Write, read back, compare and delete a small probe object under the prefix (and the
    bucket's object lock)."""
    settings = config.object_store
    subject = f"s3://{settings.bucket}/{settings.prefix}".rstrip("/")
    lock = _check_object_lock(config, subject)
    locked = settings.object_lock is not None and lock is not None and lock.status is CheckStatus.OK
    try:
        store = wiring.storage(_probe_config(config, locked=locked)).store
        key = f"{settings.prefix}/{PROBE_DIR}/{secrets.token_hex(8)}"
        detail = _probe_store(store, key, locked=locked)
    except OrchestratorError as exc:
        detail = str(exc)
    extra = [lock] if lock is not None else []
    if detail is not None:
        return [_critical("object-store", subject, f"bucket {settings.bucket}: {detail}"), *extra]
    done = "refused deletion until its retain-until date, then deleted" if locked else "deleted"
    return [_ok("object-store", subject, f"probe object written, read back and {done}"), *extra]


def _check_object_lock(config: Config, subject: str) -> CheckResult | None:
    """With ``object_lock`` set: the bucket must have object lock and versioning enabled. Without
    it: a warning when the bucket has object lock anyway (None: nothing to say)."""
    settings = config.object_store
    wanted = settings.object_lock
    try:
        retry = None if wanted else RetryPolicy(attempts=1)
        state = S3ObjectStore.from_config(settings, retry=retry).bucket_lock()
    except OrchestratorError as exc:
        return _critical("object-lock", subject, str(exc)) if wanted else None
    default = f"; bucket default {state.default_retention}" if state.default_retention else ""
    if wanted is None:
        if not state.enabled:
            return None
        return CheckResult(
            "object-lock",
            subject,
            CheckStatus.WARNING,
            _clip(
                f"bucket {settings.bucket} has object lock enabled{default}, but "
                "object_store.object_lock is not set: deletes only add delete markers (the "
                "data stays, billed); set object_lock to write retention and delete versions"
            ),
        )
    if not state.enabled or state.versioning != "Enabled":
        return _critical(
            "object-lock",
            subject,
            f"object_store.object_lock is set, but bucket {settings.bucket} has object lock "
            f"{'enabled' if state.enabled else 'not enabled'} and versioning "
            f"{state.versioning or 'never enabled'}: object lock needs a versioned bucket "
            "created with object lock enabled",
        )
    return _ok(
        "object-lock",
        subject,
        f"object lock and versioning enabled; objects retained in {wanted.mode.value} mode "
        f"for {duration_text(wanted.retain_for)}{default}",
    )


def _probe_config(config: Config, *, locked: bool) -> Config:
    """``config`` with the probe's retention: a few seconds (None when the lock check failed)."""
    settings = config.object_store
    if settings.object_lock is None:
        return config
    lock = settings.object_lock.model_copy(update={"retain_for": PROBE_RETENTION})
    probe = settings.model_copy(update={"object_lock": lock if locked else None})
    return config.model_copy(update={"object_store": probe})


def _probe_store(store: ObjectStore, key: str, *, locked: bool = False) -> str | None:
    """None when the probe round-trips (under object lock: and an early delete is refused);
    otherwise what went wrong (StorageError propagates)."""
    data = f"bbr-orchestrator check {key}\n".encode()
    # List first: some S3-compatible stores (SeaweedFS) create a missing bucket on PUT, which
    # would hide a misspelt bucket name; a listing fails on it (and needs the list permission
    # that pruning needs too).
    next(iter(store.list(key.rsplit("/", 1)[0])), None)
    store.put(key, data)
    try:
        got = _read_all(store, key, limit=len(data) + 1)
    finally:
        problem = _delete_probe(store, key, locked=locked)
    if got != data:
        return f"probe object {key} read back differs from what was written ({len(got)} bytes)"
    return problem


def _delete_probe(store: ObjectStore, key: str, *, locked: bool) -> str | None:
    """Delete the probe; under object lock at once (must be refused), then again after the
    retain-until date (must pass)."""
    if not locked:
        store.delete([key])
        return None
    head = store.head(key)
    until = head.retain_until if head is not None else None
    try:
        store.delete([key])
    except DeleteFailed as exc:
        if "retained until" not in exc.failures.get(key, ""):
            raise
    else:
        return (
            f"probe object {key} (retain-until {until}) was deleted at once: the store does "
            "not enforce object lock"
        )
    deadline = until or datetime.now(UTC) + PROBE_RETENTION
    for _ in range(_PROBE_DELETE_TRIES):  # 0.5 s apart: a little clock skew is fine
        time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)
        try:
            store.delete([key])
        except DeleteFailed:
            continue
        return None
    return (
        f"probe object {key} is still retained after its retain-until date {deadline}: "
        "is the clock of this host or of the store wrong?"
    )


def _read_all(store: ObjectStore, key: str, *, limit: int) -> bytes:
    reader = store.open_read(key)
    try:
        buffer = bytearray(limit)
        view = memoryview(buffer)
        filled = 0
        while filled < limit:
            n = reader.readinto(view[filled:])
            if n == 0:
                break
            filled += n
        return bytes(buffer[:filled])
    finally:
        reader.close()


# --- jumpboxes and targets -------------------------------------------------------------------


def _check_jumpbox(
    config: Config,
    jumpbox: JumpboxConfig,
    via: str,
    targets: Sequence[str],
    last_backup: int | None,
) -> list[CheckResult]:
    """Connect once (as for target ``via``); then bbr version, work-root space, and each of
    ``targets``' pre-backup-check."""
    subject = jumpbox.name
    address = f"{jumpbox.user}@{jumpbox.host}:{jumpbox.port}"
    try:
        shell = wiring.jumpbox_connector(config, via)()
    except OrchestratorError as exc:
        unreachable = f"not checked: jumpbox {jumpbox.name} is unreachable"
        return [
            _critical("ssh", subject, str(exc)),
            _critical("bbr-version", subject, unreachable),
            _critical("work-space", subject, unreachable),
            *(_critical("pre-backup-check", t, unreachable) for t in targets),
        ]
    try:
        results = [_ok("ssh", subject, f"connected to {address}, host key trusted")]
        results.append(_guard("bbr-version", subject, lambda: _bbr_version(shell, jumpbox)))
        results.append(
            _guard("work-space", subject, lambda: _work_space(shell, jumpbox, last_backup))
        )
        for name in targets:
            check = partial(_pre_backup_check, config, shell, name)
            results.append(_guard("pre-backup-check", name, check))
        return results
    finally:
        shell.close()


def _guard(name: str, subject: str, check: Callable[[], CheckResult]) -> CheckResult:
    try:
        return check()
    except OrchestratorError as exc:
        return _critical(name, subject, str(exc))


class _Tail:
    """Keeps the last few output lines of a remote command."""

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


def _bbr_version(shell: Jumpbox, jumpbox: JumpboxConfig) -> CheckResult:
    tail = _Tail()
    code = shell.run((jumpbox.bbr_path, "version"), on_line=tail, timeout=_SHORT_TIMEOUT)
    if code != 0:
        return _critical(
            "bbr-version",
            jumpbox.name,
            f"`{jumpbox.bbr_path} version` exited {code}: {tail.text()}",
        )
    return _ok("bbr-version", jumpbox.name, tail.text())


def _work_space(shell: Jumpbox, jumpbox: JumpboxConfig, last_backup: int | None) -> CheckResult:
    root = jumpbox.work_root
    for argv in (("mkdir", "-p", "-m", "0700", root), ("df", "-Pk", root)):
        tail = _Tail()
        code = shell.run(argv, on_line=tail, timeout=_SHORT_TIMEOUT)
        if code != 0:
            return _critical(
                "work-space", jumpbox.name, f"`{shlex.join(argv)}` exited {code}: {tail.text()}"
            )
    try:
        free = parse_df_available(tail.stdout)
    except ValueError as exc:
        return _critical("work-space", jumpbox.name, str(exc))
    return space_check(jumpbox.name, root, free, last_backup)


def _pre_backup_check(config: Config, shell: Jumpbox, target: str) -> CheckResult:
    """``bbr ... pre-backup-check`` in a throwaway directory, removed afterwards. Not a run."""
    spec = wiring.target_run(config, target)
    workdir = f"{spec.work_root.rstrip('/')}/check-{secrets.token_hex(6)}"
    tail = _Tail()
    if shell.run(("mkdir", "-p", "-m", "0700", workdir), on_line=tail, timeout=_SHORT_TIMEOUT):
        return _critical("pre-backup-check", target, f"cannot create {workdir}: {tail.text()}")
    try:
        for name, data in spec.run_files.items():
            shell.write_file(f"{workdir}/{name}", data, 0o600)
        argv = spec.build_argv(Operation.PRE_BACKUP_CHECK, workdir, None)
        code = shell.run(
            argv, on_line=tail, cwd=workdir, env=spec.env, timeout=spec.timeout_seconds
        )
    finally:
        shell.run(("rm", "-rf", workdir), on_line=_Tail(), timeout=_SHORT_TIMEOUT)
    outcome = decode_exit(code)
    if not outcome.succeeded:
        return _critical(
            "pre-backup-check", target, f"bbr exited {code} ({outcome.name}): {tail.text()}"
        )
    return _ok("pre-backup-check", target, "pre-backup-check passed")
