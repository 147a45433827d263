"""``bbr-orchestrator check``: pre-flight checks of everything a backup needs, as records.

Checked: the catalog (reachable, at the migration head); each jumpbox in use (reachable with
a trusted host key, ``bbr version``, free space in the work root); each target (``bbr ...
pre-backup-check`` in a throwaway directory, not recorded as a run); the object store (a
probe object written, read back, compared and deleted). Every ``OrchestratorError`` becomes a
CRITICAL record; only programming errors escape. One SSH connection per jumpbox.
"""

from __future__ import annotations

import secrets
import shlex
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial

from bbr_orchestrator.adapters import catalog as sql_catalog
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
from bbr_orchestrator.errors import OrchestratorError
from bbr_orchestrator.ports import Jumpbox, ObjectStore
from bbr_orchestrator.service import wiring

PROBE_DIR = ".bbr-orchestrator-check"
"""Probe objects go under ``{prefix}/.bbr-orchestrator-check/<random>``."""
_SHORT_TIMEOUT = 60.0
_TAIL_LINES = 5
_DETAIL_CHARS = 500


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
    """Write, read back, compare and delete a small probe object under the prefix."""
    settings = config.object_store
    subject = f"s3://{settings.bucket}/{settings.prefix}".rstrip("/")
    try:
        store = wiring.storage(config).store
        detail = _probe_store(store, f"{settings.prefix}/{PROBE_DIR}/{secrets.token_hex(8)}")
    except OrchestratorError as exc:
        return [_critical("object-store", subject, f"bucket {settings.bucket}: {exc}")]
    if detail is not None:
        return [_critical("object-store", subject, f"bucket {settings.bucket}: {detail}")]
    return [_ok("object-store", subject, "probe object written, read back and deleted")]


def _probe_store(store: ObjectStore, key: str) -> str | None:
    """None when the probe round-trips; otherwise what went wrong (StorageError propagates)."""
    data = f"bbr-orchestrator check {key}\n".encode()
    # List first: some S3-compatible stores (SeaweedFS) create a missing bucket on PUT, which
    # would hide a misspelt bucket name; a listing fails on it (and needs the list permission
    # that pruning needs too).
    next(iter(store.list(key.rsplit("/", 1)[0])), None)
    store.put(key, data)
    try:
        got = _read_all(store, key, limit=len(data) + 1)
    finally:
        store.delete([key])
    if got != data:
        return f"probe object {key} read back differs from what was written ({len(got)} bytes)"
    return None


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
