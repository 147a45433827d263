"""Artifacts and the run log: recording, uniqueness, ordering, limits, cascade on delete."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import MAX_LOG_LINE_BYTES, artifacts, run_log, runs
from bbr_orchestrator.core.models import Artifact, LogStream, NewRun
from bbr_orchestrator.errors import ArtifactConflict, RunNotFound

NewRunFactory = Callable[..., NewRun]
AT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
MISSING = "20260101T000000Z-00000000"


def _artifact(run_id: str, key: str, size: int = 1024) -> Artifact:
    return Artifact(
        run_id=run_id,
        object_key=key,
        size_bytes=size,
        sha256=hashlib.sha256(key.encode()).hexdigest(),
        member_checksums=3,
    )


def _lines(n: int, start: int = 0) -> list[tuple[datetime, LogStream, str]]:
    streams = [LogStream.STDOUT, LogStream.STDERR, LogStream.EVENT]
    return [(AT + timedelta(milliseconds=i), streams[i % 3], f"line {i}") for i in range(start, n)]


def test_artifacts_are_listed_by_object_key(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """add_artifacts stores every field; list_artifacts returns one run's, ordered by key."""
    run = catalog.create_run(new_run())
    other = catalog.create_run(new_run())
    big = _artifact(run.id, "b/director/bosh-0-blobstore.tar", size=6 * 2**40)
    small = _artifact(run.id, "b/director/bosh-0-bbr-credhubdb.tar", size=0)

    catalog.add_artifacts([big, small, _artifact(other.id, "a/other.tar")])

    assert catalog.list_artifacts(run.id) == [small, big]
    assert catalog.list_artifacts(MISSING) == []


def test_duplicate_artifact_key_is_refused_and_nothing_is_stored(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """A key already recorded for the run raises ArtifactConflict; the batch is rolled back."""
    run = catalog.create_run(new_run())
    first = _artifact(run.id, "k/metadata")
    catalog.add_artifacts([first])

    with pytest.raises(ArtifactConflict) as caught:
        catalog.add_artifacts([_artifact(run.id, "k/new.tar"), _artifact(run.id, "k/metadata")])

    assert (caught.value.run_id, caught.value.object_key) == (run.id, "k/metadata")
    assert catalog.list_artifacts(run.id) == [first]


def test_duplicate_key_within_one_batch_is_refused(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """The same key twice in one call raises ArtifactConflict and stores nothing."""
    run = catalog.create_run(new_run())

    with pytest.raises(ArtifactConflict, match=r"k/a\.tar"):
        catalog.add_artifacts([_artifact(run.id, "k/a.tar"), _artifact(run.id, "k/a.tar")])
    assert catalog.list_artifacts(run.id) == []


def test_same_key_in_two_runs_and_keys_differing_in_case_are_distinct(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """Uniqueness is per run and exact: `A.tar` and `a.tar` are two objects (also on MariaDB)."""
    one, two = catalog.create_run(new_run()), catalog.create_run(new_run())

    catalog.add_artifacts([_artifact(one.id, "x/A.tar"), _artifact(one.id, "x/a.tar")])
    catalog.add_artifacts([_artifact(two.id, "x/A.tar")])

    assert [a.object_key for a in catalog.list_artifacts(one.id)] == ["x/A.tar", "x/a.tar"]
    assert len(catalog.list_artifacts(two.id)) == 1


def test_artifacts_of_unknown_run_are_run_not_found(catalog: SqlCatalog) -> None:
    """Recording an artifact for a run that does not exist raises RunNotFound (foreign key)."""
    with pytest.raises(RunNotFound) as caught:
        catalog.add_artifacts([_artifact(MISSING, "k/a.tar")])
    assert caught.value.run_id == MISSING


def test_artifact_with_bad_checksum_is_a_value_error(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """A sha256 that is not 64 lowercase hex digits is refused before writing."""
    run = catalog.create_run(new_run())
    bad = Artifact(run.id, "k/a.tar", 1, "ABC", 0)
    with pytest.raises(ValueError, match="sha256"):
        catalog.add_artifacts([bad])


def test_log_lines_come_back_in_order_across_batches(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """Appends in several calls (one bigger than a page) read back as one gap-free sequence."""
    run = catalog.create_run(new_run())
    lines = _lines(1234)

    assert catalog.append_log(run.id, lines[:3]) == 3
    assert catalog.append_log(run.id, iter(lines[3:1200])) == 1197
    assert catalog.append_log(run.id, lines[1200:]) == 34

    read = list(catalog.read_log(run.id))
    assert [line.seq for line in read] == list(range(1, 1235))
    assert [(line.at, line.stream, line.text) for line in read] == lines
    assert all(line.run_id == run.id and line.at.tzinfo is UTC for line in read)


def test_read_log_after_seq_returns_only_newer_lines(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """read_log(after_seq=n) resumes after line n (how `runs log --follow` polls)."""
    run = catalog.create_run(new_run())
    catalog.append_log(run.id, _lines(10))

    assert [line.text for line in catalog.read_log(run.id, after_seq=7)] == [
        "line 7",
        "line 8",
        "line 9",
    ]
    assert list(catalog.read_log(run.id, after_seq=10)) == []


def test_logs_of_two_runs_are_separate(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """Each run has its own seq starting at 1; interleaved appends do not mix."""
    one, two = catalog.create_run(new_run()), catalog.create_run(new_run())
    catalog.append_log(one.id, _lines(2))
    catalog.append_log(two.id, _lines(3))
    catalog.append_log(one.id, _lines(4, start=2))

    assert [(x.seq, x.text) for x in catalog.read_log(one.id)] == [
        (i + 1, f"line {i}") for i in range(4)
    ]
    assert [x.seq for x in catalog.read_log(two.id)] == [1, 2, 3]


def test_empty_append_writes_nothing(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """Appending no lines returns 0 and leaves the log empty."""
    run = catalog.create_run(new_run())
    assert catalog.append_log(run.id, []) == 0
    assert list(catalog.read_log(run.id)) == []


def test_log_of_unknown_run_is_run_not_found(catalog: SqlCatalog) -> None:
    """Appending to or reading the log of a missing run raises RunNotFound."""
    with pytest.raises(RunNotFound):
        catalog.append_log(MISSING, _lines(1))
    with pytest.raises(RunNotFound):
        list(catalog.read_log(MISSING))


def test_awkward_log_text_is_stored_safely(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """4-byte UTF-8 survives; NUL and lone surrogates are replaced; huge lines are cut, marked."""
    run = catalog.create_run(new_run())
    huge = "é" * MAX_LOG_LINE_BYTES  # 2 bytes each: twice the limit
    catalog.append_log(
        run.id,
        [
            (AT, LogStream.STDOUT, "done ✅ 🗄️"),
            (AT, LogStream.STDERR, "nul\x00byte"),
            (AT, LogStream.STDERR, "bad \udcff byte"),
            (AT, LogStream.STDOUT, huge),
        ],
    )

    emoji, nul, surrogate, cut = (line.text for line in catalog.read_log(run.id))
    assert emoji == "done ✅ 🗄️"
    assert nul == "nul\ufffdbyte"
    assert surrogate == "bad ? byte"
    assert len(cut.encode()) <= MAX_LOG_LINE_BYTES
    assert cut.startswith("é" * 1000)
    assert cut.endswith(f"line cut: {2 * MAX_LOG_LINE_BYTES} bytes, kept {MAX_LOG_LINE_BYTES}]")


def test_deleting_a_run_removes_its_artifacts_and_log(
    catalog: SqlCatalog, new_run: NewRunFactory, migrated_url: str
) -> None:
    """ON DELETE CASCADE is in force on every backend (SQLite foreign keys are switched on)."""
    run = catalog.create_run(new_run())
    catalog.add_artifacts([_artifact(run.id, "k/a.tar")])
    catalog.append_log(run.id, _lines(3))

    db = Database(migrated_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(delete(runs).where(runs.c.id == run.id))
        with db.engine.connect() as conn:
            counts = [
                conn.scalar(select(func.count()).select_from(t).where(t.c.run_id == run.id))
                for t in (artifacts, run_log)
            ]
    finally:
        db.dispose()
    assert counts == [0, 0]
