"""bbr's restore workflow and restore-cleanup for one target.

Restore re-hashes every member of every tar named in ``metadata`` first and refuses
(``Backup is corrupted``) before touching the platform; then: find -> structure check ->
artifact-dir check -> pre-restore-lock -> copy -> restore scripts (rewrite the world's job
files) -> post-restore-unlock -> cleanup.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from . import tarball
from .metadata import Metadata, MetadataError
from .output import GENERAL, UNLOCK
from .steps import Run, check_artifact_dir, cleanup, discover, lock_hook, run_scripts
from .world import Instance
from .yamlish import YamlError


def validate(run: Run, artifact: Path) -> Metadata | None:
    """bbr's ValidateArtifactStep; on failure records the error and returns None."""
    if not artifact.is_dir():
        run.fail(GENERAL, f"Could not open backup: failed opening the directory: stat {artifact}: "
                          "no such file or directory")  # fmt: skip
        return None
    path = artifact / "metadata"
    try:
        metadata = Metadata.load(path)
    except FileNotFoundError:
        run.fail(GENERAL, f"Backup is corrupted: open {path}: no such file or directory")
        return None
    except (MetadataError, YamlError, UnicodeDecodeError) as exc:
        run.fail(GENERAL, f"Backup is corrupted: failed to unmarshal metadata: {exc}")
        return None
    expected = [
        (
            f"{inst.name}/{inst.index} {entry.name}",
            f"{inst.name}-{inst.index}-{entry.name}.tar",
            entry,
        )
        for inst in metadata.instances
        for entry in inst.artifacts
    ]
    expected += [(entry.name, f"{entry.name}.tar", entry) for entry in metadata.custom_artifacts]
    for label, file_name, entry in expected:
        tar_path, checksums = artifact / file_name, entry.checksums
        run.log.debug(f"Trying to open {tar_path}")
        try:
            actual = tarball.tar_checksums(tar_path)
        except FileNotFoundError:
            run.fail(GENERAL, f"Backup is corrupted: open {tar_path}: no such file or directory")
            return None
        except (tarfile.TarError, OSError, EOFError) as exc:
            run.fail(GENERAL, f"Backup is corrupted: error reading tar for {label}: {exc}")
            return None
        if actual != checksums:
            run.log.debug(f"Can't match checksums for {label}, in metadata: {checksums}, "
                          f"in actual file: {actual}")  # fmt: skip
            run.fail(GENERAL, "Backup is corrupted")
            return None
    return metadata


def restore(run: Run, artifact: Path) -> bool:
    run.log.info(f"Starting restore of {run.name}...")
    metadata = validate(run, artifact)
    if metadata is None:
        return False
    discover(run)
    pairs: list[tuple[Instance, str]] = []
    for entry in metadata.instances:
        inst = run.target.find_instance(entry.name, entry.index)
        if inst is None:
            run.fail(GENERAL, f"Deployment '{run.name}' does not match the structure of the "
                              "provided backup")  # fmt: skip
            return False
        pairs += [(inst, a.name) for a in entry.artifacts]
    if not check_artifact_dir(run, "Check artifact dir failed: ", claim=True):
        return False
    everything = run.target.ordered_jobs()
    failed = run_scripts(run, "pre-restore-lock", everything, before=lock_hook(True))
    if failed:
        run.fail(GENERAL, failed)
        return _unlock_and_clean(run)
    for inst, job in pairs:
        run.log.info(f"Copying backup for job {job} on {inst.ident}...")
        run.make_marker(inst, job)
        run.log.info(f"Finished copying backup for job {job} on {inst.ident}.")

    def put_back(inst: Instance, job: str) -> None:
        destination = inst.job_dir(job)
        shutil.rmtree(destination, ignore_errors=True)
        destination.mkdir(parents=True)
        tarball.extract(artifact / inst.artifact_name(job), destination)

    failed = run_scripts(run, "restore", pairs, on_success=put_back, parallel=True)
    if failed:
        run.fail(GENERAL, failed)
        return _unlock_and_clean(run)
    return _unlock_and_clean(run, completed=True)


def restore_cleanup(run: Run) -> bool:
    """Unlock every job after a restore and remove /var/vcap/store/bbr-backup."""
    discover(run)
    _unlock(run)
    if cleanup(run, run.target.instances, previous=True) and not run.errors:
        run.log.info(f"'{run.name}' cleaned up")
        return True
    return False


def _unlock(run: Run) -> None:
    pairs = list(reversed(run.target.ordered_jobs()))
    failed = run_scripts(run, "post-restore-unlock", pairs, on_success=lock_hook(False))
    if failed:
        run.fail(UNLOCK, failed)


def _unlock_and_clean(run: Run, completed: bool = False) -> bool:
    _unlock(run)
    if completed:
        run.log.info(f"Completed restore of {run.name}")
    run.log.info("Cleaning up...")
    cleanup(run, run.created_markers)
    return not run.errors
