"""Contract section 4: restore re-hashes everything first, then writes the backed-up files back."""

from __future__ import annotations

import shutil

import pytest

from bbr_orchestrator.sandbox.bbrsim import deployment_job_dir, director_job_dir, is_busy

from .simkit import HOST, Sim, tree

CORRUPTED = "1 error occurred:\nerror 1:\nBackup is corrupted"


def test_director_restore_round_trip(sim: Sim) -> None:
    """Back up, change and delete files, restore: the world has the backed-up files again."""
    db = director_job_dir(sim.state, HOST, "fake-db")
    blobs = director_job_dir(sim.state, HOST, "fake-blobstore")
    before = (tree(db), tree(blobs))
    assert sim.director("backup").returncode == 0
    (db / "dump.sql").write_text("DROP TABLE everything;\n")
    (db / "new-file").write_text("not in the backup")
    shutil.rmtree(blobs / "blobs")
    result = sim.director("restore", "--artifact-path", str(sim.only_artifact()))
    assert (result.returncode, result.stderr) == (0, "\n\n")
    assert (tree(db), tree(blobs)) == before
    assert not is_busy(sim.state, HOST)


def test_deployment_restore_round_trip(sim: Sim) -> None:
    """A deployment restore puts every instance's job files back."""
    job = deployment_job_dir(sim.state, "cf", "api/1", "cloud-controller-backup")
    before = tree(job)
    assert sim.deployment("backup").returncode == 0
    (job / "ccdb.sql").write_text("garbage")
    result = sim.deployment("restore", "--artifact-path", str(sim.only_artifact()))
    assert (result.returncode, result.stderr) == (0, "\n\n")
    assert tree(job) == before


@pytest.mark.parametrize("damage", ["corrupt_artifacts", "truncate_artifacts"])
def test_restore_refuses_damaged_tar_before_touching_the_world(sim: Sim, damage: str) -> None:
    """A tar changed after the backup (byte flipped, truncated) is refused, the world untouched."""
    sim.faults(**{damage: ["fake-db"]}, once=True)
    assert sim.director("backup").returncode == 0  # the damage happens after bbr checked it
    db = director_job_dir(sim.state, HOST, "fake-db")
    (db / "dump.sql").write_text("changed after the backup\n")
    before = tree(sim.state / "directors" / HOST)
    result = sim.director("restore", "--artifact-path", str(sim.only_artifact()))
    assert result.returncode == 1
    assert result.stderr.startswith(CORRUPTED)
    assert tree(sim.state / "directors" / HOST) == before
    assert "Locking" not in result.stdout
    assert sim.err_logs()


@pytest.mark.parametrize("missing", ["metadata", "bosh-0-fake-blobstore.tar"])
def test_restore_refuses_artifact_with_missing_file(sim: Sim, missing: str) -> None:
    """A missing metadata file or a missing tar makes restore refuse with `Backup is corrupted`."""
    assert sim.director("backup").returncode == 0
    artifact = sim.only_artifact()
    (artifact / missing).unlink()
    before = tree(sim.state / "directors" / HOST)
    result = sim.director("restore", "--artifact-path", str(artifact))
    assert result.returncode == 1
    assert result.stderr.startswith(CORRUPTED)
    assert tree(sim.state / "directors" / HOST) == before


def test_restore_refuses_edited_metadata_checksum(sim: Sim) -> None:
    """Changing one checksum in metadata is enough for restore to refuse the artifact."""
    assert sim.director("backup").returncode == 0
    metadata = sim.only_artifact() / "metadata"
    text = metadata.read_text()
    digest = text.split("./empty-file: ")[1].split("\n")[0]
    metadata.write_text(text.replace(digest, "0" * 64))
    result = sim.director("restore", "--artifact-path", str(sim.only_artifact()))
    assert (result.returncode, result.stderr) == (1, CORRUPTED + "\n\n")


def test_restore_of_missing_artifact_directory_fails(sim: Sim) -> None:
    """restore --artifact-path names the artifact directory itself; a missing one is exit 1."""
    result = sim.director("restore", "--artifact-path", str(sim.work / "nope"))
    assert result.returncode == 1
    assert "no such file or directory" in result.stderr


def test_restore_into_a_different_structure_fails(sim: Sim) -> None:
    """A deployment artifact whose instances the target lacks does not match: exit 1."""
    assert sim.deployment("backup").returncode == 0
    artifact = sim.only_artifact()
    result = sim.deployment("restore", "--artifact-path", str(artifact), deployment="p-mysql")
    assert result.returncode == 0, "same default structure restores fine"
    shutil.rmtree(sim.state / "deployments" / "p-mysql" / "instances" / "api" / "1")
    result = sim.deployment("restore", "--artifact-path", str(artifact), deployment="p-mysql")
    assert result.returncode == 1
    assert "does not match the structure of the provided backup" in result.stderr
