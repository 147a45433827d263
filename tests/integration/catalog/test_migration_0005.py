"""Migration 0005 (retention: pins and deletion marks on runs, deletion marks on restore points)
on catalogs holding data: rows survive the upgrade, and the downgrade gives back 0004's schema
with every row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from bbr_orchestrator.adapters.catalog import downgrade, head_revision, open_catalog, upgrade
from tests.integration.catalog.schema_shape import describe_schema
from tests.integration.catalog.test_migration_0003 import (
    AT,
    BACKUP,
    BACKUP_ID,
    POINT_ID,
    _counts,
    _write_0002_rows,
)

CreateDatabase = Callable[[str], str]


def test_rows_written_at_0004_survive_and_take_pins_and_deletion_marks(empty_url: str) -> None:
    """A 0004 catalog's backup reads back unpinned and not deleted at head, and can then be
    pinned, unpinned, deleted and its restore point marked."""
    upgrade(empty_url, "0004")
    _write_0002_rows(empty_url)

    assert upgrade(empty_url) == ("0004", head_revision())

    with open_catalog(empty_url) as catalog:
        backup = catalog.get_run(BACKUP_ID)
        assert backup == BACKUP
        assert (backup.pinned, backup.deletion_started) == (False, False)
        assert catalog.get_restore_point(POINT_ID).deleted_at is None
        assert catalog.pin_run(BACKUP_ID, "alice", "audit", AT).pin_reason == "audit"
        catalog.unpin_run(BACKUP_ID)
        catalog.begin_deletion(BACKUP_ID, "outside keep-last 7")
        assert catalog.mark_deleted(BACKUP_ID, AT + timedelta(days=9)).deleted_at is not None
        point = catalog.mark_restore_point_deleted(POINT_ID, "outside keep-last 7", AT)
        assert point.delete_reason == "outside keep-last 7"
    assert _counts(empty_url) == (1, 2, 2, 3)


def test_downgrade_to_0004_gives_back_its_schema_and_rows(
    create_database: CreateDatabase, backend: str
) -> None:
    """Head -> 0004 leaves exactly 0004's schema and every row (a deleted backup's included, its
    marks dropped), and upgrades again."""
    reference = create_database(backend)
    upgrade(reference, "0004")
    url = create_database(backend)
    upgrade(url, "0004")
    _write_0002_rows(url)
    upgrade(url)
    with open_catalog(url) as catalog:
        catalog.begin_deletion(BACKUP_ID, "outside keep-last 7")
        catalog.mark_deleted(BACKUP_ID, AT + timedelta(days=9))
        catalog.mark_restore_point_deleted(POINT_ID, "outside keep-last 7", AT)

    assert downgrade(url, "0004") == (head_revision(), "0004")

    assert describe_schema(url) == describe_schema(reference)
    assert _counts(url) == (1, 2, 2, 3)
    assert upgrade(url) == ("0004", head_revision())
    with open_catalog(url) as catalog:
        assert catalog.get_run(BACKUP_ID) == BACKUP
        assert catalog.get_restore_point(POINT_ID).deleted_at is None
