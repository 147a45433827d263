"""Contract section 4: the artifact directory, its tars and its metadata."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from bbr_orchestrator.sandbox.bbrsim import deployment_job_dir, director_job_dir

from .simkit import HOST, Sim, member_hashes

TIME = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \S+"


def listing(tar_path: Path) -> list[str]:
    """Member names as GNU tar lists them (independent of Python's tarfile)."""
    result = subprocess.run(
        ["tar", "-tf", str(tar_path)], capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def test_artifact_directory_name_and_mode(sim: Sim) -> None:
    """The artifact is `<host>_<YYYYMMDD>T<HHMMSS>Z` (UTC at command start), mode 0700."""
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert sim.director("backup", host=f"{HOST}:2222").returncode == 0
    after = dt.datetime.now(dt.UTC)
    artifact = sim.only_artifact()
    match = re.fullmatch(rf"{re.escape(HOST)}_(\d{{8}}T\d{{6}}Z)", artifact.name)
    assert match
    stamp = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert before <= stamp <= after
    assert stat.S_IMODE(artifact.stat().st_mode) == 0o700


def test_director_tar_names_and_members(sim: Sim) -> None:
    """Director tars are `bosh-0-<job>.tar` with members `./`, `./file`, `./dir/`, `./dir/file`."""
    assert sim.director("backup").returncode == 0
    artifact = sim.only_artifact()
    assert sorted(p.name for p in artifact.iterdir()) == [
        "bosh-0-fake-blobstore.tar", "bosh-0-fake-db.tar", "metadata"]  # fmt: skip
    assert listing(artifact / "bosh-0-fake-db.tar") == ["./", "./dump.sql", "./empty-file"]
    assert listing(artifact / "bosh-0-fake-blobstore.tar") == [
        "./", "./blobs/", "./blobs/aa/", "./blobs/aa/blob1"]  # fmt: skip


def test_tar_is_plain_uncompressed_gnu_tar(sim: Sim) -> None:
    """Job tars are uncompressed tar archives in GNU tar's format."""
    assert sim.director("backup").returncode == 0
    header = (sim.only_artifact() / "bosh-0-fake-db.tar").read_bytes()[:512]
    assert header[257:265] == b"ustar  \x00"
    assert header[:2] != b"\x1f\x8b"
    assert header[:100].rstrip(b"\x00") == b"./"


def test_deployment_tar_names(sim: Sim) -> None:
    """Deployment tars are `<instance_group>-<index>-<job>.tar`, one per job per instance."""
    assert sim.deployment("backup").returncode == 0
    artifact = sim.only_artifact()
    assert artifact.name.startswith("cf_")
    assert sorted(p.name for p in artifact.glob("*.tar")) == [
        "api-0-cloud-controller-backup.tar",
        "api-1-cloud-controller-backup.tar",
        "database-0-mysql-backup.tar",
    ]


def test_metadata_has_the_contract_shape(sim: Sim) -> None:
    """metadata is the contract's YAML: instances (name, quoted index, artifacts), times."""
    assert sim.director("backup").returncode == 0
    artifact = sim.only_artifact()
    db = member_hashes(artifact / "bosh-0-fake-db.tar")
    blobs = member_hashes(artifact / "bosh-0-fake-blobstore.tar")
    expected = (
        'instances:\n- name: bosh\n  index: "0"\n  artifacts:\n'
        "  - name: fake-db\n    checksums:\n"
        f"      ./dump.sql: {db['./dump.sql']}\n      ./empty-file: {db['./empty-file']}\n"
        "  - name: fake-blobstore\n    checksums:\n"
        f"      ./blobs/aa/blob1: {blobs['./blobs/aa/blob1']}\n"
        f"backup_activity:\n  start_time: {TIME}\n  finish_time: {TIME}\n"
    )
    text = (artifact / "metadata").read_text()
    assert re.fullmatch(re.escape(expected).replace(re.escape(TIME), TIME), text), text


def test_every_checksum_is_the_sha256_of_its_member(sim: Sim) -> None:
    """Every metadata checksum is the SHA-256 of its member's content; no directory listed."""
    assert sim.deployment("backup").returncode == 0
    artifact = sim.only_artifact()
    recorded: dict[str, dict[str, str]] = {}
    current = ""
    for line in (artifact / "metadata").read_text().splitlines():
        if line.startswith("- name: "):
            group = line.split(": ")[1]
        elif line.startswith("  index: "):
            index = line.split(": ")[1].strip('"')
        elif line.startswith("  - name: "):
            current = f"{group}-{index}-{line.split(': ')[1]}.tar"
            recorded[current] = {}
        elif line.startswith("      ./"):
            member, digest = line.strip().split(": ")
            recorded[current][member] = digest
    assert sorted(recorded) == sorted(p.name for p in artifact.glob("*.tar"))
    for name, checksums in recorded.items():
        assert checksums == member_hashes(artifact / name)


def test_failed_backup_leaves_partial_artifact(sim: Sim) -> None:
    """A failed backup leaves its artifact dir with only metadata (start and finish times)."""
    sim.faults(fail_scripts=["fake-db/backup"])
    assert sim.director("backup").returncode == 1
    artifact = sim.only_artifact()
    assert [p.name for p in artifact.iterdir()] == ["metadata"]
    text = (artifact / "metadata").read_text()
    assert re.fullmatch(f"backup_activity:\n  start_time: {TIME}\n  finish_time: {TIME}\n", text)


def test_metadata_gains_checksums_as_each_copy_finishes(sim: Sim) -> None:
    """While bbr drains, metadata already lists the jobs copied so far and has no finish_time."""
    sim.faults(drain_delay_seconds=1.0, progress_interval_seconds=0.05)
    process = sim.popen(sim.director_args("backup"))
    assert process.stdout is not None
    for line in process.stdout:
        if "for job fake-blobstore on bosh/0 -- " in line:
            break
    text = (sim.only_artifact() / "metadata").read_text()
    process.terminate()
    process.communicate(timeout=10)
    assert "start_time:" in text
    assert "name: fake-db" in text
    assert "name: fake-blobstore" not in text
    assert "finish_time:" not in text


def test_same_second_backups_collide(sim: Sim) -> None:
    """Two backups of one target in the same second collide: the second fails with exit 1."""
    sim.faults(start_time="2026-11-27T03:58:59Z")
    assert sim.director("backup").returncode == 0
    second = sim.director("backup")
    assert second.returncode == 1
    assert f"{HOST}_20261127T035859Z: file exists" in second.stderr
    assert [p.name for p in sim.artifacts()] == [f"{HOST}_20261127T035859Z"]


def test_with_manifest_writes_manifest(sim: Sim) -> None:
    """`deployment backup --with-manifest` adds `manifest.yml` next to the tars."""
    assert sim.deployment("backup", "--with-manifest").returncode == 0
    manifest = (sim.only_artifact() / "manifest.yml").read_text()
    assert "name: cf" in manifest and "- name: database" in manifest


def test_large_artifact_has_requested_size_and_checksum(sim: Sim) -> None:
    """The large-artifact fault adds a member of exactly the requested size, checksummed."""
    size = 16 * 1024 * 1024 + 123
    sim.faults(large_artifacts={"fake-db": size})
    assert sim.director("backup").returncode == 0
    tar_path = sim.only_artifact() / "bosh-0-fake-db.tar"
    with tarfile.open(tar_path) as tar:
        member = tar.getmember("./large-artifact.bin")
        assert member.size == size
        handle = tar.extractfile(member)
        assert handle is not None
        sha = hashlib.sha256()
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    assert f"./large-artifact.bin: {sha.hexdigest()}" in (tar_path.parent / "metadata").read_text()


@pytest.mark.parametrize("pitfall", ["symlink", "space"])
def test_symlink_or_space_in_job_files_fails_the_backup(sim: Sim, pitfall: str) -> None:
    """A symlink or a file name with a space in a job's files fails the backup (exit 1)."""
    job = director_job_dir(sim.state, HOST, "fake-db")
    if pitfall == "symlink":
        (job / "link").symlink_to("dump.sql")
    else:
        (job / "my dump.sql").write_text("x")
    result = sim.director("backup")
    assert result.returncode == 1
    assert "Backup is corrupted, checksum failed for bosh/0 fake-db" in result.stderr
    assert "bbr backup-cleanup" in result.stderr
    assert "name: fake-db" not in (sim.only_artifact() / "metadata").read_text()


def test_deployment_job_files_are_what_gets_backed_up(sim: Sim) -> None:
    """A file added to a deployment job's world appears in that instance's tar."""
    (deployment_job_dir(sim.state, "cf", "api/1", "cloud-controller-backup") / "extra").write_text(
        "1"
    )
    assert sim.deployment("backup").returncode == 0
    tar_path = sim.only_artifact() / "api-1-cloud-controller-backup.tar"
    assert "./extra" in listing(tar_path)
