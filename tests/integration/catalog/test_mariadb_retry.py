"""MySQL/MariaDB: transactions that hit a lock wait timeout (or deadlock) are re-run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from bbr_orchestrator.adapters.catalog import open_catalog, upgrade
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import runs
from bbr_orchestrator.core.models import NewRun, RunState

NewRunFactory = Callable[..., NewRun]


def test_lock_wait_timeout_is_retried_until_the_lock_is_released(
    create_database: Callable[[str], str], new_run: NewRunFactory
) -> None:
    """A transition blocked past innodb_lock_wait_timeout (1205) is retried and then wins."""
    url = create_database("mariadb")
    upgrade(url)
    impatient = (
        make_url(url)
        .update_query_dict({"init_command": "SET SESSION innodb_lock_wait_timeout = 1"})
        .render_as_string(hide_password=False)
    )
    blocker = Database(url)
    with open_catalog(impatient) as catalog:
        run = catalog.create_run(new_run())
        with blocker.engine.connect() as conn:
            holding = conn.begin()
            conn.execute(select(runs.c.id).where(runs.c.id == run.id).with_for_update())
            release = threading.Timer(1.6, holding.commit)
            release.start()
            try:
                with capture_logs() as logs:
                    started = time.monotonic()
                    won = catalog.transition(run.id, [RunState.QUEUED], RunState.RUNNING)
                    waited = time.monotonic() - started
            finally:
                release.join()
    blocker.dispose()

    assert won.state is RunState.RUNNING
    assert waited >= 1.0
    retries = [e for e in logs if e["event"] == "catalog_transaction_retried"]
    assert retries
    assert "1205" in retries[0]["reason"]
