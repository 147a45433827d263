"""Object keys, multipart part sizes and manifest.json (the commit marker) round trips."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bbr_orchestrator.core.bbr_metadata import MetadataSummary
from bbr_orchestrator.core.layout import (
    MANIFEST_NAME,
    MAX_OBJECT,
    Manifest,
    ManifestObject,
    MiB,
    artifact_prefix,
    manifest_json,
    manifest_key,
    object_key,
    parse_manifest,
    part_size,
)
from bbr_orchestrator.core.models import TargetKind
from bbr_orchestrator.errors import ManifestInvalid, ObjectTooLarge

DIR = "10.0.0.6_20261127T035353Z"


@pytest.mark.parametrize(
    ("prefix", "key"),
    [
        ("", f"director/{DIR}"),
        ("backups", f"backups/director/{DIR}"),
        ("/backups/prod/", f"backups/prod/director/{DIR}"),
    ],
)
def test_artifact_prefix(prefix: str, key: str) -> None:
    """{prefix}/{target}/{dir}, no leading/trailing slash, empty prefix allowed."""
    assert artifact_prefix(prefix, "director", DIR) == key


def test_object_and_manifest_keys() -> None:
    """A file's key sits under the artifact prefix; the manifest is manifest.json."""
    assert object_key("p", "t", DIR, "bosh-0-fake-db.tar") == f"p/t/{DIR}/bosh-0-fake-db.tar"
    assert manifest_key("p", "t", DIR) == f"p/t/{DIR}/{MANIFEST_NAME}"


@pytest.mark.parametrize(
    ("prefix", "target", "name"),
    [("a//b", "t", "f"), ("", "a/b", "f"), ("", "..", "f"), ("", "t", ""), ("x/../y", "t", "f")],
)
def test_bad_key_parts_are_rejected(prefix: str, target: str, name: str) -> None:
    """Empty, '.', '..' or slash-bearing components never make it into a key."""
    with pytest.raises(ValueError, match="path component"):
        object_key(prefix, target, DIR, name)


@pytest.mark.parametrize(
    ("size", "part"),
    [
        (0, 16 * MiB),
        (16 * MiB * 10_000, 16 * MiB),
        (16 * MiB * 10_000 + 1, 17 * MiB),
        (MAX_OBJECT, 525 * MiB),
    ],
)
def test_part_size_examples(size: int, part: int) -> None:
    """16 MiB until 10,000 parts no longer suffice, then the next whole MiB."""
    assert part_size(size) == part


@settings(max_examples=200, deadline=None)
@given(size=st.integers(0, MAX_OBJECT), minimum_mib=st.integers(5, 64))
def test_part_size_is_the_smallest_fitting_mib_multiple(size: int, minimum_mib: int) -> None:
    """The part is a MiB multiple >= minimum, fits in 10,000 parts, and 1 MiB less would not."""
    part = part_size(size, minimum=minimum_mib * MiB)
    assert part % MiB == 0 and part >= minimum_mib * MiB
    assert -(-size // part) <= 10_000
    smaller = part - MiB
    assert smaller < minimum_mib * MiB or -(-size // smaller) > 10_000


def test_part_size_limits() -> None:
    """Above 5 TiB, or parts above 5 GiB, is ObjectTooLarge; bad arguments are ValueError."""
    with pytest.raises(ObjectTooLarge, match="5 TiB"):
        part_size(MAX_OBJECT + 1)
    with pytest.raises(ObjectTooLarge, match="5 GiB"):
        part_size(MAX_OBJECT, max_parts=10)
    with pytest.raises(ValueError, match="5 MiB"):
        part_size(1, minimum=MiB)
    with pytest.raises(ValueError, match=">= 0"):
        part_size(-1)


def manifest() -> Manifest:
    return Manifest(
        run_id="01JD8Z",
        target="director",
        target_kind=TargetKind.DIRECTOR,
        bbr_version="1.9.70",
        artifact_dir=DIR,
        objects=(
            ManifestObject(
                "bosh-0-fake-db.tar", f"p/director/{DIR}/bosh-0-fake-db.tar", 10240, "a" * 64, 2
            ),
            ManifestObject("metadata", f"p/director/{DIR}/metadata", 300, "b" * 64, 0),
        ),
        metadata=MetadataSummary(1, 1, 0, ("fake-db",), 2),
        started_at=datetime(2026, 11, 27, 3, 53, 53, tzinfo=UTC),
        finished_at=datetime(2026, 11, 27, 4, 0, 1, 500, tzinfo=timezone(timedelta(hours=1))),
        orchestrator_version="0.1.0",
    )


def test_manifest_round_trips() -> None:
    """parse_manifest(manifest_json(m)) == m, times normalised to UTC."""
    original = manifest()
    parsed = parse_manifest(manifest_json(original), "manifest.json")
    assert parsed == original
    assert parsed.finished_at.tzinfo == UTC
    assert (
        parse_manifest(manifest_json(replace(original, bbr_version=None)), "m").bbr_version is None
    )


def test_manifest_json_is_stable() -> None:
    """Sorted keys, indent 2, UTC 'Z' times, trailing newline: same manifest, same bytes."""
    raw = manifest_json(manifest())
    assert raw == manifest_json(manifest())
    text = raw.decode()
    assert text.endswith("}\n") and '\n  "artifact_dir"' in text
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data["finished_at"] == "2026-11-27T03:00:01.000500Z"
    assert data["format_version"] == 1 and data["target_kind"] == "director"


def test_naive_times_are_refused() -> None:
    """A manifest cannot be built with timezone-naive times."""
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(manifest(), started_at=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\xff", "not UTF-8 JSON"),
        (b"{", "not UTF-8 JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"format_version": 2}', "format_version: is 2"),
    ],
)
def test_unreadable_manifests(raw: bytes, problem: str) -> None:
    """Garbage, non-objects and future format versions are refused with a clear reason."""
    with pytest.raises(ManifestInvalid, match=problem):
        parse_manifest(raw, "s3://bucket/manifest.json")


def test_every_manifest_problem_is_named_by_path() -> None:
    """All bad fields are reported at once, each with its path."""
    data = json.loads(manifest_json(manifest()))
    data["target_kind"] = "cluster"
    data["objects"][1]["sha256"] = "XYZ"
    data["objects"][0]["size"] = -1
    del data["run_id"]
    data["metadata"]["jobs"] = [1]
    data["started_at"] = "2026-11-27T03:53:53"
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(json.dumps(data).encode(), "s3://bucket/manifest.json")
    assert [p.path for p in caught.value.problems] == [
        "run_id",
        "target_kind",
        "objects[0].size",
        "objects[1].sha256",
        "metadata.jobs",
        "started_at",
    ]
    assert "s3://bucket/manifest.json" in str(caught.value)


ORIGIN = {
    "plan": "nightly",
    "restore_point_id": "20261127T020000Z-0a1b2c3d",
    "step": 2,
    "trigger": "schedule",
    "triggered_by": "plan nightly",
    "encryption_key_id": "key-2026",
}


def test_manifest_with_origin_fields_round_trips() -> None:
    """Plan, restore point, step, trigger, who and the key id are written and read back."""
    original = replace(manifest(), **ORIGIN)  # type: ignore[arg-type]
    raw = manifest_json(original)
    assert {k: v for k, v in json.loads(raw).items() if k in ORIGIN} == ORIGIN
    assert parse_manifest(raw, "m") == original


def test_manifest_without_origin_fields_omits_them() -> None:
    """Fields left None are not written at all (older readers see the format they know)."""
    data = json.loads(manifest_json(manifest()))
    assert not set(ORIGIN) & set(data)
    assert parse_manifest(manifest_json(manifest()), "m") == manifest()


def test_an_older_manifest_without_origin_fields_still_parses() -> None:
    """A manifest written before the optional fields existed reads with them all None."""
    data = json.loads(manifest_json(replace(manifest(), **ORIGIN)))  # type: ignore[arg-type]
    for key in ORIGIN:
        del data[key]
    parsed = parse_manifest(json.dumps(data).encode(), "old/manifest.json")
    assert all(getattr(parsed, key) is None for key in ORIGIN)
    assert parsed == manifest()


def test_origin_fields_of_the_wrong_type_are_named_by_path() -> None:
    """An optional field present with the wrong type (a null, a bool step) is a problem."""
    data = json.loads(manifest_json(manifest()))
    data.update(plan=None, step=True, trigger=3)
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(json.dumps(data).encode(), "m")
    assert [p.path for p in caught.value.problems] == ["plan", "step", "trigger"]
