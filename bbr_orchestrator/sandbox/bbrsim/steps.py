"""Workflow steps shared by backup, restore and the cleanups: scripts, pre-checks, cleanup."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .clock import nap
from .faults import Faults
from .output import ARTIFACT_DIR, CLEANUP, GENERAL, Log, StepError, go_errors
from .world import ARTIFACT_DIRECTORY, Instance, Target, remove_busy_marker

if TYPE_CHECKING:
    Hook = Callable[[Instance, str], None]

_STARTED = {
    "pre-backup-lock": "Locking {job} on {on} for backup...",
    "backup": "Backing up {job} on {on}...",
    "post-backup-unlock": "Unlocking {job} on {on}...",
    "pre-restore-lock": "Locking {job} on {on} for restore...",
    "restore": "Restoring {job} on {on}...",
    "post-restore-unlock": "Unlocking {job} on {on}...",
}


def _finished(started: str) -> str:
    """``Locking x on y for backup...`` -> ``Finished locking x on y for backup.``"""
    return "Finished " + started[0].lower() + started[1:-3] + "."


@dataclass
class Run:
    """One bbr operation against one target."""

    target: Target
    log: Log
    faults: Faults
    kill: Callable[[], None]
    """Die as a SIGKILLed bbr would (records the invocation first)."""
    errors: list[StepError] = field(default_factory=list)
    created_markers: list[Instance] = field(default_factory=list)
    """Instances where this run created /var/vcap/store/bbr-backup (only those are cleaned up)."""

    @property
    def name(self) -> str:
        return self.target.name

    def fail(self, kind: str, message: str) -> None:
        self.errors.append(StepError(kind, message))

    def make_marker(self, inst: Instance, job: str) -> None:
        """Create the job's staging dir (``sudo mkdir -p /var/vcap/store/bbr-backup/<job>``)."""
        inst.staging_dir(job).mkdir(parents=True, exist_ok=True)
        if inst not in self.created_markers:
            self.created_markers.append(inst)


def discover(run: Run) -> None:
    """bbr's find-deployment step: list the scripts, detect the locking order."""
    run.log.info("Looking for scripts")
    for fact in run.target.detected_orders():
        run.log.info(f"Detected order: {fact} during backup")
    for inst, job in sorted(run.target.ordered_jobs(), key=lambda pair: pair[1]):
        scripts = ["backup", "post-backup-unlock", "post-restore-unlock", "pre-backup-lock",
                   "pre-restore-lock", "restore"]  # fmt: skip
        if job in run.target.lock_order[:-1]:  # the jobs whose metadata declares an order
            scripts.insert(1, "metadata")
        for script in scripts:
            run.log.info(f"{inst.ident}/{job}/{script}")


def backup_prechecks(run: Run, claim: bool = False) -> bool:
    """bbr's backupable step; the same check pre-backup-check reports on."""
    run.log.info(f"Running pre-checks for backup of {run.name}...")
    if run.faults.pre_backup_check_fails:
        run.fail(GENERAL, f"Deployment '{run.name}' has no backup scripts")
        return False
    return check_artifact_dir(run, claim=claim)


def check_artifact_dir(run: Run, prefix: str = "", claim: bool = False) -> bool:
    """Fail when /var/vcap/store/bbr-backup exists on any instance.

    With ``claim`` the check creates the directory atomically (mkdir), so of two runs started
    at once against one target exactly one goes on: they always collide, as the contract says.
    """
    busy = []
    for inst in run.target.instances:
        if not claim:
            if inst.busy_marker.exists():
                busy.append(inst)
            continue
        inst.busy_marker.parent.mkdir(parents=True, exist_ok=True)
        try:
            inst.busy_marker.mkdir()
            run.created_markers.append(inst)
        except FileExistsError:
            busy.append(inst)
    if not busy:
        return True
    for inst in run.created_markers:  # give back what this run claimed: it was never used
        remove_busy_marker(inst)
    run.created_markers.clear()
    lines = [f"Directory {ARTIFACT_DIRECTORY} already exists on instance {i.ident}" for i in busy]
    run.fail(ARTIFACT_DIR, prefix + "\n".join(lines))
    return False


def run_scripts(
    run: Run,
    script: str,
    pairs: Sequence[tuple[Instance, str]],
    *,
    before: Hook | None = None,
    on_success: Hook | None = None,
    parallel: bool = False,
    delay: float = 0.0,
) -> str | None:
    """Run ``script`` for every (instance, job); return bbr's composite error text, if any.

    Locking and unlocking go one job after the other (bbr's ordered batches); backup and
    restore scripts run "in parallel": every start line, then ``delay``, then the results.
    """
    start = _STARTED[script]
    done = _finished(start)
    run.log.info(f"Running {script} scripts...")
    failures: list[str] = []

    def begin(inst: Instance, job: str) -> None:
        run.log.info(start.format(job=job, on=inst.ident))
        command = f"/var/vcap/jobs/{job}/bin/bbr/{script}"
        if script in ("backup", "restore"):
            staging = f"{ARTIFACT_DIRECTORY}/{job}/"
            command = f"BBR_ARTIFACT_DIRECTORY={staging} ARTIFACT_DIRECTORY={staging} {command}"
        run.log.debug(f"> sudo {command}")
        if before is not None:
            before(inst, job)

    def finish(inst: Instance, job: str) -> None:
        fails = run.faults.script_fails(job, script, inst.address)
        run.log.debug("Stdout: ")
        run.log.debug(f"Stderr: {f'injected failure in {job}/{script}' if fails else ''}")
        if fails:
            message = (
                f"Error attempting to run {script} for job {job} on {inst.ident}: "
                f"injected failure in {job}/{script} - exit code 1"
            )
            run.log.error(message)
            failures.append(message)
            return
        if on_success is not None:
            on_success(inst, job)
        run.log.info(done.format(job=job, on=inst.ident))

    if parallel:
        for inst, job in pairs:
            begin(inst, job)
        nap(delay)
        for inst, job in pairs:
            finish(inst, job)
    else:
        for inst, job in pairs:
            begin(inst, job)
            finish(inst, job)
    run.log.info(f"Finished running {script} scripts.")
    return go_errors(failures) if failures else None


def lock_hook(locked: bool) -> Hook:
    def hook(inst: Instance, job: str) -> None:
        inst.set_locked(job, locked)

    return hook


def cleanup(run: Run, instances: Sequence[Instance], previous: bool = False) -> bool:
    """``rm -rf /var/vcap/store/bbr-backup`` on ``instances``; fails on demand (bit 16).

    The final cleanup of a backup or restore only really removes something where a script
    ran (bbr's artifactDirCreated); ``previous`` (backup-cleanup, restore-cleanup) removes
    whatever is there.
    """
    present = [inst for inst in instances if inst.busy_marker.exists()]
    used = [inst for inst in present if previous or any(inst.busy_marker.iterdir())]
    failing = used if run.faults.cleanup_fails else []
    for inst in present:
        if inst not in failing:
            remove_busy_marker(inst)
    if not failing:
        return True
    reasons = [
        f"Unable to clean up backup artifact on {inst.ident}: rm: cannot remove "
        f"'{ARTIFACT_DIRECTORY}': Device or resource busy - exit code 1"
        for inst in failing
    ]
    what = "cleaning up a previous run" if previous else "cleaning up"
    message = f"Deployment '{run.name}' failed while {what} with error: {go_errors(reasons)}"
    run.log.error(message)
    run.fail(CLEANUP, message)
    return False
