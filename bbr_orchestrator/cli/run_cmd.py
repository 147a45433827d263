"""``run OPERATION TARGET``: one bbr operation now, recorded like a scheduled one."""

from __future__ import annotations

import getpass
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bbr_orchestrator.cli.app import Context, pass_context
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import LogStream, RunState, Trigger
from bbr_orchestrator.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from bbr_orchestrator.ports import Catalog

T = TypeVar("T")

_OPERATIONS = [
    Operation.PRE_BACKUP_CHECK,
    Operation.BACKUP,
    Operation.BACKUP_CLEANUP,
    Operation.RESTORE_CLEANUP,
]


def operator() -> str:
    """Who is asking: ``user@host``."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


@contextmanager
def cancel_on_signals() -> Iterator[threading.Event]:
    """The first Ctrl-C (or SIGTERM) asks the run to stop cleanly; a second one aborts."""
    cancel = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, _frame: FrameType | None) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        click.echo(
            "\ncancelling: bbr gets SIGTERM, then the matching cleanup runs "
            "(press Ctrl-C again to abandon it)",
            err=True,
        )

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield cancel
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Bar:
    """The rich progress bar as a ``ProgressDisplay``."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._task = bar.add_task("upload", total=None)

    def start(self, total_bytes: int) -> None:
        self._bar.update(self._task, total=total_bytes, completed=0)

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)


@contextmanager
def upload_progress(enabled: bool) -> Iterator[_Bar | None]:
    """A progress bar with bytes, rate and ETA while an artifact uploads, on a terminal."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        yield _Bar(bar)


def _echo_line(stream: LogStream, text: str) -> None:
    prefix = {LogStream.STDOUT: "", LogStream.STDERR: "bbr! ", LogStream.EVENT: "==> "}[stream]
    click.echo(prefix + text, err=True)


@click.command("run")
@click.argument("operation", type=click.Choice([o.value for o in _OPERATIONS]))
@click.argument("target")
@click.option(
    "--live/--quiet",
    default=None,
    help="Show bbr's output as it arrives (default: when stderr is a terminal).",
)
@click.option(
    "--wait",
    "wait_for",
    default=None,
    metavar="DURATION",
    help=(
        "When another run holds TARGET, wait up to DURATION (e.g. 30m) for it instead of "
        "refusing at once."
    ),
)
@pass_context
def run(ctx: Context, operation: str, target: str, live: bool | None, wait_for: str | None) -> None:
    """Run bbr OPERATION against TARGET now, on its jumpbox.

    The run is recorded in the catalog with bbr's output. A failed or cancelled backup is
    followed by backup-cleanup; Ctrl-C cancels cleanly. Two runs never hold one target: when
    another run (a daemon's or an operator's) holds it, this one is refused (exit 5, naming the
    holder) or, with --wait, waits for it. Exits 0 when bbr succeeded, 1 otherwise.
    """
    from bbr_orchestrator.actions.bbr_operation import run_operation
    from bbr_orchestrator.actions.heartbeat import Heartbeat, owner_id
    from bbr_orchestrator.actions.run_claim import Requester
    from bbr_orchestrator.adapters.clock import SystemClock
    from bbr_orchestrator.service.wiring import (
        jumpbox_connector,
        open_catalog,
        storage,
        target_run,
    )

    config = ctx.config()
    patience = _patience(wait_for)
    if target not in {t.name for t in config.targets}:
        known = ", ".join(t.name for t in config.targets)
        problem = ConfigProblem("targets", f"no target {target!r} (known: {known})")
        raise ConfigError(str(ctx.config_path), [problem])
    spec = target_run(config, target)
    show = sys.stderr.isatty() if live is None else live
    clock = SystemClock()
    owner = owner_id("cli")
    beat_every = config.daemon.heartbeat_interval.total_seconds()
    with (
        open_catalog(config) as catalog,
        Heartbeat(catalog, clock, owner, beat_every),
        cancel_on_signals() as cancel,
        upload_progress(sys.stderr.isatty()) as progress,
    ):
        finished = _when_free(
            lambda: run_operation(
                catalog,
                jumpbox_connector(config, target),
                clock,
                spec,
                Operation(operation),
                Requester(Trigger.OPERATOR, operator(), owner),
                cancel=cancel,
                observer=_echo_line if show else None,
                storage=(
                    storage(config, progress, target=target)
                    if operation == Operation.BACKUP
                    else None
                ),
            ),
            lambda: _holder(catalog, target),
            patience,
            cancel,
        )
    click.echo(
        f"run {finished.id}: {operation} of {target} {finished.state.value} ({finished.outcome})"
    )
    if finished.state is not RunState.SUCCEEDED:
        if finished.error_summary:
            click.echo(finished.error_summary, err=True)
        click.echo(f"details: bbr-orchestrator runs show {finished.id}", err=True)
        raise click.exceptions.Exit(1)


_BUSY_POLL_SECONDS = 2.0


def _patience(wait_for: str | None) -> float:
    """Seconds to wait for a busy target (0: refuse at once)."""
    if wait_for is None:
        return 0.0
    from bbr_orchestrator.config.types import parse_duration

    try:
        return parse_duration(wait_for).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--wait") from exc


def _when_free(
    start: Callable[[], T],
    holder: Callable[[], str | None],
    patience: float,
    cancel: threading.Event,
) -> T:
    """``start()`` once the target is free, waiting up to ``patience`` seconds while
    ``holder()`` names a run holding it. Only a start that loses a race records a refused
    (cancelled) run, so waiting leaves no trail of refusals in the catalog."""
    from bbr_orchestrator.errors import TargetBusy

    deadline = time.monotonic() + patience
    told = False
    while True:
        busy_with = holder() if patience else None
        if busy_with is None:
            try:
                return start()
            except TargetBusy as exc:
                if cancel.is_set() or time.monotonic() >= deadline:
                    raise
                busy_with = exc.holder
        if cancel.is_set() or time.monotonic() >= deadline:
            return start()  # refused (TargetBusy, recorded) unless it was just released
        if not told:
            click.echo(f"waiting for the target: it is busy with run {busy_with}", err=True)
            told = True
        cancel.wait(min(_BUSY_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _holder(catalog: Catalog, target: str) -> str | None:
    """The id of a running run holding ``target`` (None: free)."""
    from bbr_orchestrator.core.models import RunFilter

    running = catalog.list_runs(RunFilter(target=target, state=RunState.RUNNING, limit=10))
    return next((r.id for r in running if r.holds_target), None)
