"""bbr's backup workflow, pre-backup-check and backup-cleanup for one target.

Order (bbr's orchestrator.NewBackuper): find -> pre-checks -> create artifact (metadata with
start_time) -> lock -> backup scripts -> unlock (always once locking started) -> drain (only
after successful backup scripts, even when unlocking failed) -> cleanup -> finish_time.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from . import tarball
from .clock import artifact_stamp, go_time_string, metadata_time, nap
from .metadata import Metadata
from .output import DRAIN, GENERAL, LOCK, UNLOCK, go_errors
from .steps import Run, backup_prechecks, cleanup, discover, lock_hook, run_scripts
from .world import Instance


def pre_backup_check(run: Run) -> bool:
    """Whether the target can be backed up; changes nothing."""
    discover(run)
    return backup_prechecks(run)


def backup(
    run: Run,
    parent: Path | None,
    start: dt.datetime,
    with_manifest: bool = False,
    lock_free: bool = False,
) -> Path | None:
    """Back ``run.target`` up into a new artifact under ``parent`` (None: the working directory).

    Returns the artifact directory when one was created (complete or partial).
    """
    discover(run)
    if not backup_prechecks(run, claim=True):
        cleanup(run, run.created_markers)
        return None
    run.log.info(f"Starting backup of {run.name}...")
    artifact = _create_artifact(run, parent, start)
    if artifact is None:
        cleanup(run, run.created_markers)
        return None
    metadata = Metadata(start_time=metadata_time(dt.datetime.now()))
    metadata.save(artifact / "metadata")
    if with_manifest:
        (artifact / "manifest.yml").write_text(run.target.manifest(), encoding="utf-8")
    pairs = run.target.ordered_jobs()
    if not lock_free:
        failed = run_scripts(run, "pre-backup-lock", pairs, before=lock_hook(True))
        if failed:
            run.fail(LOCK, failed)
            _unlock(run, successful=False)
            return _finish(run, artifact, metadata)
    failed = run_scripts(
        run, "backup", pairs, before=run.make_marker, parallel=True,
        delay=run.faults.backup_delay_seconds,
    )  # fmt: skip
    if run.faults.kill_during_backup:
        run.kill()
    if failed:
        run.fail(GENERAL, failed)
        if not lock_free:
            _unlock(run, successful=False)
        return _finish(run, artifact, metadata)
    if not lock_free:
        _unlock(run, successful=True)
    _drain(run, artifact, metadata)
    run.log.info(f"Backup created of {run.name} on {go_time_string(dt.datetime.now())}")
    return _finish(run, artifact, metadata)


def backup_cleanup(run: Run) -> bool:
    """Unlock every job and remove /var/vcap/store/bbr-backup; never touches local artifacts."""
    discover(run)
    _unlock(run, successful=False)
    if cleanup(run, run.target.instances, previous=True) and not run.errors:
        run.log.info(f"'{run.name}' cleaned up")
        return True
    return False


def _create_artifact(run: Run, parent: Path | None, start: dt.datetime) -> Path | None:
    name = f"{run.name}_{artifact_stamp(start)}"
    if parent is not None:
        if not parent.exists():
            run.fail(GENERAL, f"stat {parent}: no such file or directory")
            return None
        if not parent.is_dir():
            run.fail(GENERAL, f"artifact directory {parent} is not a directory")
            return None
    path = Path(name) if parent is None else parent / name
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        run.fail(GENERAL, f"failed creating directory: mkdir {path}: file exists")
        return None
    path.chmod(0o700)  # whatever the umask
    return path


def _unlock(run: Run, successful: bool) -> None:
    run.log.debug(f"BBR_AFTER_BACKUP_SCRIPTS_SUCCESSFUL={'true' if successful else 'false'}")
    pairs = list(reversed(run.target.ordered_jobs()))
    failed = run_scripts(run, "post-backup-unlock", pairs, on_success=lock_hook(False))
    if failed:
        run.fail(UNLOCK, failed)


def _finish(run: Run, artifact: Path, metadata: Metadata) -> Path:
    run.log.info("Cleaning up...")
    cleanup(run, run.created_markers)
    metadata.finish_time = metadata_time(dt.datetime.now())
    metadata.save(artifact / "metadata")
    return artifact


class _Progress:
    """bbr's LogPercentageWriter: a line each time the copy passes another 5%."""

    def __init__(self, run: Run, job: str, inst: Instance, total: int) -> None:
        self.run = run
        self.message = f"Copying backup for job {job} on {inst.ident} -- {{}}% complete"
        self.total = max(total, 1)
        self.last = 0
        self.done = False

    def emit(self, percent: int) -> None:
        if not self.done:
            self.run.log.info(self.message.format(percent))
            self.done = percent >= 100

    def bytes_written(self, count: int) -> None:
        percent = min(100 * count // self.total, 100)
        if count > self.total or percent >= self.last + 5:
            self.last = percent
            self.emit(100 if count > self.total else percent)

    def pace(self, seconds: float, interval: float) -> None:
        """A slow copy: spread ``seconds`` over progress lines (every ``interval`` or 5%)."""
        step = interval if interval > 0 else seconds / 20
        started = time.monotonic()
        while step > 0 and (elapsed := time.monotonic() - started) < seconds:
            nap(min(step, seconds - elapsed))
            percent = min(int(100 * (time.monotonic() - started) / seconds), 99)
            if interval > 0 or percent >= self.last + 5:
                self.last = max(self.last, percent)
                self.emit(self.last)


def _drain(run: Run, artifact: Path, metadata: Metadata) -> None:
    failures = []
    for inst, job in run.target.ordered_jobs():
        large = run.faults.large_artifacts.get(job, 0)
        usage = tarball.disk_usage(inst.job_dir(job), large)
        on = f"for job {job} on {inst.ident}"
        run.log.info(f"Copying backup -- {tarball.human_size(usage)} uncompressed -- {on}...")
        progress = _Progress(run, job, inst, tarball.content_size(inst.job_dir(job)) + large)
        progress.pace(run.faults.drain_delay_seconds, run.faults.progress_interval_seconds)
        tar_path = artifact / inst.artifact_name(job)
        seed = f"{run.name}/{inst.address}/{job}"
        result = tarball.write_job_tar(
            inst.job_dir(job), tar_path, large, seed, progress.bytes_written
        )
        run.log.info(f"Finished copying backup -- {on}...")
        run.log.info(f"Starting validity checks -- {on}...")
        for member in sorted(result.checksums):
            run.log.debug(f"Calculating shasum for local file {member}")
        run.log.debug("Comparing shasums")
        mismatched = _mismatched(result)
        if mismatched:
            run.log.debug(f"Checksums didn't match for:\n[{' '.join(mismatched)}]")
            failures.append(
                f"Backup is corrupted, checksum failed for {inst.ident} {job} - checksums don't "
                f"match for [{' '.join(mismatched[:10])}]. Checksum failed for "
                f"{len(mismatched)} files in total"
            )
            continue
        metadata.add_checksums(inst.group, inst.index, job, result.checksums)
        metadata.save(artifact / "metadata")
        if job in run.faults.corrupt_artifacts:
            tarball.corrupt(tar_path)
        if job in run.faults.truncate_artifacts:
            tarball.truncate(tar_path)
        run.log.info(f"Finished validity checks -- {on}...")
    if failures:
        run.fail(DRAIN, go_errors(failures))


def _mismatched(result: tarball.TarResult) -> list[str]:
    """Members whose checksum on the instance (``find -type f | shasum``) differs from the tar's.

    Symlinks are invisible to ``find -type f`` and names with spaces break the remote listing:
    both make a real bbr backup fail its validity check.
    """
    remote = {
        name: digest
        for name, digest in result.checksums.items()
        if name in result.regular and " " not in name
    }
    names = set(result.checksums) | set(remote)
    return sorted(name for name in names if result.checksums.get(name) != remote.get(name))
