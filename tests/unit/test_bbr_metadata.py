"""bbr's metadata file as typed values, and tar members checked against it (bbr-contract 4)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bbr_orchestrator.core.bbr_metadata import (
    ArtifactChecksums,
    InstanceMetadata,
    expected_tar_checksums,
    parse_metadata,
    summarise,
    verify_members,
)
from bbr_orchestrator.core.tar_stream import TarHasher, TarMember
from bbr_orchestrator.errors import ArtifactCorrupt, MetadataInvalid

DUMP = "06dcaa2f76c4d00c7613f857dbcb3a2bcd45159570154810299521057081fb6b"
EMPTY = hashlib.sha256(b"").hexdigest()
CONTRACT_EXAMPLE = f"""
instances:
- name: bosh
  index: "0"
  artifacts:
  - name: fake-db
    checksums:
      ./dump.sql: {DUMP}
      ./empty-file: {EMPTY}
backup_activity:
  start_time: 2026/11/27 03:58:59 UTC
  finish_time: 2026/11/27 03:59:07 UTC
"""


def example() -> Any:
    return yaml.safe_load(CONTRACT_EXAMPLE)


def test_parses_the_contract_example() -> None:
    """The metadata example of bbr-contract.md parses into typed values, times kept as text."""
    meta = parse_metadata(example(), "metadata")
    artifact = ArtifactChecksums("fake-db", {"./dump.sql": DUMP, "./empty-file": EMPTY})
    assert meta.instances == (InstanceMetadata("bosh", "0", (artifact,)),)
    assert meta.custom_artifacts == ()
    assert (meta.start_time, meta.finish_time) == (
        "2026/11/27 03:58:59 UTC",
        "2026/11/27 03:59:07 UTC",
    )


def test_tar_names_for_jobs_and_custom_artifacts() -> None:
    """Job tars are <instance>-<index>-<job>.tar, custom ones <name>.tar."""
    data = example()
    data["instances"].append(
        {"name": "db", "index": 1, "artifacts": [{"name": "pg", "checksums": {}}]}
    )
    data["custom_artifacts"] = [{"name": "shared", "checksums": {"./x": DUMP.upper()}}]
    expected = expected_tar_checksums(parse_metadata(data, "metadata"))
    assert expected == {
        "bosh-0-fake-db.tar": {"./dump.sql": DUMP, "./empty-file": EMPTY},
        "db-1-pg.tar": {},
        "shared.tar": {"./x": DUMP},
    }


def test_partial_metadata_of_a_failed_backup_parses() -> None:
    """A failed backup's metadata (no instances, no finish_time) is still readable."""
    meta = parse_metadata({"backup_activity": {"start_time": "t"}}, "metadata")
    assert (meta.instances, meta.finish_time) == ((), None)
    assert summarise(meta).members == 0


def test_every_problem_is_reported_with_its_path() -> None:
    """Validation names each bad value by its path inside the metadata, all at once."""
    data = {
        "instances": [
            {
                "name": "bosh",
                "index": "0",
                "artifacts": [{"name": "a/b", "checksums": {"./f": "x"}}],
            },
            "nope",
            {"name": "", "index": True, "artifacts": [{"name": "j"}]},
        ],
        "custom_artifacts": {"not": "a list"},
        "backup_activity": {"finish_time": 5},
    }
    with pytest.raises(MetadataInvalid) as caught:
        parse_metadata(data, "s3://b/k/metadata")
    paths = [p.path for p in caught.value.problems]
    assert paths == [
        "instances[0].artifacts[0].name",
        "instances[0].artifacts[0].checksums['./f']",
        "instances[1]",
        "instances[2].name",
        "instances[2].index",
        "instances[2].artifacts[0].checksums",
        "custom_artifacts",
        "backup_activity.finish_time",
        "backup_activity.start_time",
    ]
    assert "s3://b/k/metadata" in str(caught.value)
    assert isinstance(caught.value, ArtifactCorrupt)


@pytest.mark.parametrize("data", [None, [], "text"])
def test_top_level_must_be_a_mapping(data: object) -> None:
    """A metadata file that is not a YAML mapping is invalid."""
    with pytest.raises(MetadataInvalid, match="top level"):
        parse_metadata(data, "metadata")


def test_two_artifacts_sharing_a_tar_name_are_rejected() -> None:
    """Instance a/0-b and instance a-0/b, both with job c, would share a-0-b-c.tar: an error."""
    data = example()
    data["instances"] = [
        {"name": "a", "index": "0-b", "artifacts": [{"name": "c", "checksums": {}}]},
        {"name": "a-0", "index": "b", "artifacts": [{"name": "c", "checksums": {}}]},
    ]
    with pytest.raises(MetadataInvalid, match=r"a-0-b-c\.tar is also named by"):
        parse_metadata(data, "metadata")


def test_summary_counts() -> None:
    """The manifest summary counts instances, tars, distinct jobs and members."""
    data = example()
    data["instances"].append(
        {"name": "db", "index": "0", "artifacts": [{"name": "fake-db", "checksums": {"./a": DUMP}}]}
    )
    data["custom_artifacts"] = [{"name": "c", "checksums": {"./b": DUMP}}]
    summary = summarise(parse_metadata(data, "metadata"))
    assert (summary.instances, summary.artifacts, summary.custom_artifacts) == (2, 2, 1)
    assert (summary.jobs, summary.members) == (("fake-db",), 4)


def members(**digests: str) -> list[TarMember]:
    return [TarMember(f"./{n}", 1, d) for n, d in digests.items()]


EXPECTED = {"./dump.sql": DUMP, "./empty-file": EMPTY}


def test_matching_members_pass() -> None:
    """Members equal to the metadata pass, names compared in normalised form."""
    verify_members(
        "bosh-0-fake-db.tar", members(**{"dump.sql": DUMP, "empty-file": EMPTY}), EXPECTED
    )
    verify_members("t.tar", members(**{"dump.sql": DUMP}), {"dump.sql": DUMP.upper()})


@pytest.mark.parametrize(
    ("found", "member", "reason"),
    [
        ({"dump.sql": EMPTY, "empty-file": EMPTY}, "./dump.sql", "content SHA-256 is e3b0"),
        ({"dump.sql": DUMP}, "./empty-file", "missing from the tar"),
        ({"dump.sql": DUMP, "empty-file": EMPTY, "x": DUMP}, "./x", "not listed in the metadata"),
    ],
)
def test_bad_members_name_the_tar_and_the_member(
    found: dict[str, str], member: str, reason: str
) -> None:
    """Mismatch, missing and extra members raise ArtifactCorrupt naming tar and member."""
    with pytest.raises(ArtifactCorrupt, match=reason) as caught:
        verify_members("bosh-0-fake-db.tar", members(**found), EXPECTED)
    assert (caught.value.file, caught.value.member) == ("bosh-0-fake-db.tar", member)
    assert "bosh-0-fake-db.tar" in str(caught.value) and member in str(caught.value)


def test_duplicate_member_and_further_problems_are_counted() -> None:
    """A member stored twice is corrupt; the message counts the other problems too."""
    twice = [TarMember("./dump.sql", 1, DUMP), TarMember("./dump.sql", 1, DUMP)]
    with pytest.raises(ArtifactCorrupt, match=r"appears twice in the tar \(and 1 more problem\)"):
        verify_members("t.tar", twice, EXPECTED)


def test_real_gnu_tar_verifies_against_its_metadata(tmp_path: Path) -> None:
    """End to end: a `tar -C DIR -c .` artifact streams through TarHasher and verifies."""
    root = tmp_path / "fake-db"
    root.mkdir()
    (root / "dump.sql").write_bytes(b"SELECT 1;\n" * 1000)
    (root / "empty-file").write_bytes(b"")
    tar = subprocess.run(
        ["tar", "-C", str(root), "-c", "-f", "-", "."], check=True, capture_output=True
    ).stdout
    data = example()
    data["instances"][0]["artifacts"][0]["checksums"]["./dump.sql"] = hashlib.sha256(
        b"SELECT 1;\n" * 1000
    ).hexdigest()
    expected = expected_tar_checksums(parse_metadata(data, "metadata"))
    hasher = TarHasher("bosh-0-fake-db.tar")
    hasher.feed(tar)
    verify_members("bosh-0-fake-db.tar", hasher.close(), expected["bosh-0-fake-db.tar"])
