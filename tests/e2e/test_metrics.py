"""The daemon's /metrics as a subprocess against real sshd + bbr simulator + SeaweedFS +
PostgreSQL: a mixed history shows the catalog's truth, and a restart scrapes the same."""

from __future__ import annotations

import secrets
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bbr_orchestrator.core.models import Run, RunFilter, RunKind, RunState
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox, running_sshd

from .daemon_kit import (
    CLIENT_SECRET,
    Bed,
    DaemonProcess,
    Scrape,
    free_port,
    postgres_database,
    scrape,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

P = "bbr_orchestrator_"
#: Differ between two daemons by nature: when each probe ran, and what each is doing now.
NOT_COMPARED = {P + "probe_timestamp_seconds", P + "daemon_steps"}


@pytest.fixture(scope="module")
def metrics_jumpbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Jumpbox, Path]]:
    """One real sshd with the bbr simulator on it."""
    base = tmp_path_factory.mktemp("metrics-jumpbox")
    bin_dir, state = base / "bin", base / "bbr-state"
    bbrsim.install(bin_dir, state)
    (state / "deployment_secret").write_text(CLIENT_SECRET, encoding="utf-8")
    with running_sshd(base / "sshd", bin_dir=bin_dir, env={"BBR_SIM_STATE": str(state)}) as box:
        yield box, state


@pytest.fixture
def bed(
    tmp_path: Path,
    metrics_jumpbox: tuple[Jumpbox, Path],
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> Iterator[Bed]:
    box, state = metrics_jumpbox
    bbrsim.clear_faults(state)
    with postgres_database() as url:
        test_bed = Bed(tmp_path, [box], state, seaweedfs, bucket(seaweedfs), url)
        try:
            yield test_bed
        finally:
            test_bed.stop_all()
            bbrsim.clear_faults(state)


def _host() -> str:
    """A director address no other test uses (the simulator keys directors by host)."""
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 2}"


def _runs(bed: Bed, target: str, kind: RunKind) -> list[Run]:
    """Finished runs of ``target`` and ``kind``, oldest first."""
    with bed.catalog() as catalog:
        found = catalog.list_runs(RunFilter(target=target, kind=kind, limit=500))
    done = [r for r in found if not r.state.active]
    return sorted(done, key=lambda r: r.finished_at or datetime.min.replace(tzinfo=UTC))


def _active(bed: Bed) -> bool:
    with bed.catalog() as catalog:
        runs = catalog.list_runs(RunFilter(states=frozenset({RunState.QUEUED, RunState.RUNNING})))
        points = catalog.list_restore_points(limit=500)
    return bool(runs) or any(p.state.active for p in points)


def _value(found: Scrape, name: str, **labels: str) -> float | None:
    want = tuple(sorted(labels.items()))
    return found.get((P + name, want))


def _wait_scrape(url: str, what: str, ok: Callable[[Scrape], bool]) -> Scrape:
    def probe() -> Scrape | None:
        found = scrape(url)
        return found if ok(found) else None

    return wait_until(what, probe, timeout=30)


def _start(bed: Bed, config: Path) -> tuple[DaemonProcess, str]:
    daemon = bed.start_daemon(config)
    url: str = daemon.wait_event("metrics_listening", timeout=60)["url"]
    return daemon, url


def _counts(runs: list[Run]) -> dict[str, int]:
    out: dict[str, int] = {}
    for run in runs:
        key = run.outcome or run.state.value
        out[key] = out.get(key, 0) + 1
    return out


def test_mixed_history_scrapes_true_and_survives_a_restart(bed: Bed) -> None:
    """Scheduled success, failure and unlock-failed backups, then (plan paused) an operator
    backup whose unlock and automatic cleanup both fail: the scrape shows each outcome,
    one-hot last outcomes, counts per outcome and the platform possibly locked; the first
    scrape of a restarted daemon is identical; a successful backup-cleanup clears the lock."""
    token = secrets.token_hex(3)
    director, idle, host = f"dir-{token}", f"idle-{token}", _host()
    nightly, yearly = f"nightly-{token}", f"yearly-{token}"
    port = free_port()
    plans: list[dict[str, Any]] = [
        {
            "name": nightly,
            "targets": [director],
            "schedule": "*/4 * * * * *",
            "timezone": "Europe/Berlin",
            "pre_backup_check": False,
        },
        {"name": yearly, "targets": [idle], "schedule": "0 0 1 1 *", "timezone": "UTC"},
    ]
    targets = [bed.director(director, host), bed.director(idle, _host())]
    data = bed.with_metrics(bed.config(targets, plans), port)
    config = bed.write_config(data)
    assert bed.cli(config, "db", "upgrade").returncode == 0

    daemon, url = _start(bed, config)
    assert url == f"http://127.0.0.1:{port}/metrics"
    first = scrape(url)  # complete at once: the never-run targets of both plans show 0
    assert (
        _value(first, "last_success_timestamp_seconds", plan=yearly, target=idle, kind="backup")
        == 0
    )
    assert _value(first, "platform_possibly_locked", target=director) == 0

    wait_until("a scheduled backup", lambda: _runs(bed, director, RunKind.BACKUP), timeout=60)
    bbrsim.set_faults(
        bed.bbr_state,
        bbrsim.Faults(target=host, commands=["backup"], once=True, fail_scripts=["fake-db/backup"]),
    )
    wait_until(
        "a failed backup and its cleanup",
        lambda: _runs(bed, director, RunKind.BACKUP_CLEANUP),
        timeout=60,
    )
    bbrsim.set_faults(
        bed.bbr_state,
        bbrsim.Faults(
            target=host, commands=["backup"], once=True, fail_scripts=["fake-db/post-backup-unlock"]
        ),
    )
    wait_until(
        "an unlock-failed backup and its cleanup",
        lambda: len(_runs(bed, director, RunKind.BACKUP_CLEANUP)) >= 2,
        timeout=60,
    )
    # What really happens: the automatic backup-cleanup runs the unlock scripts again, they
    # succeed now, and so the platform is not left locked.
    cleanups = _runs(bed, director, RunKind.BACKUP_CLEANUP)
    assert [r.state for r in cleanups] == [RunState.SUCCEEDED, RunState.SUCCEEDED]
    unlock_failed = [
        r for r in _runs(bed, director, RunKind.BACKUP) if r.outcome == "unlock-failed"
    ]
    assert len(unlock_failed) == 1 and unlock_failed[0].state is RunState.FAILED
    _wait_scrape(
        url,
        "the unlock-failed backup and its cleanup in the scrape",
        lambda s: _value(s, "runs_total", plan=nightly, target=director, kind="backup-cleanup",
                         outcome="succeeded") == 2,
    )  # fmt: skip
    assert _value(scrape(url), "platform_possibly_locked", target=director) == 0

    # Pause the plan (a reload), let the last firing finish: the history is frozen.
    paused = {**data, "plans": [{**plans[0], "paused": True}, plans[1]]}
    bed.write_config(paused)
    daemon.signal(signal.SIGHUP)
    daemon.wait_event("config_reloaded", timeout=30)
    wait_until("no run in progress", lambda: not _active(bed), timeout=60)

    bbrsim.set_faults(
        bed.bbr_state,
        [
            bbrsim.Faults(target=host, commands=[c], once=True,
                          fail_scripts=["fake-db/post-backup-unlock"])
            for c in ("backup", "backup-cleanup")
        ],
    )  # fmt: skip
    result = bed.cli(config, "run", "backup", director)
    assert result.returncode != 0, result.stdout + result.stderr
    operator_cleanup = [r for r in _runs(bed, director, RunKind.BACKUP_CLEANUP) if r.plan is None]
    assert [r.outcome for r in operator_cleanup] == ["unlock-failed"]

    before = _wait_scrape(
        url,
        "the operator's runs in the scrape",
        lambda s: _value(s, "runs_total", plan="", target=director, kind="backup-cleanup",
                         outcome="unlock-failed") == 1,
    )  # fmt: skip
    _check_truth(bed, before, director, idle, nightly, yearly)

    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    restarted, url = _start(bed, config)
    after = scrape(url)  # the very first scrape, no waiting
    assert _comparable(after) == _comparable(before)
    assert {name for name, _ in before} & NOT_COMPARED == NOT_COMPARED

    result = bed.cli(config, "run", "backup-cleanup", director)
    assert result.returncode == 0, result.stdout + result.stderr
    _wait_scrape(
        url,
        "the lock cleared by a successful backup-cleanup",
        lambda s: _value(s, "platform_possibly_locked", target=director) == 0,
    )
    restarted.signal(signal.SIGTERM)
    assert restarted.wait_exit(60) == 0


def _comparable(found: Scrape) -> Scrape:
    return {key: value for key, value in found.items() if key[0] not in NOT_COMPARED}


def _check_truth(
    bed: Bed, found: Scrape, director: str, idle: str, nightly: str, yearly: str
) -> None:
    """The scrape against the catalog's own records."""
    backups = _runs(bed, director, RunKind.BACKUP)
    scheduled = [r for r in backups if r.plan == nightly]
    counts = _counts(scheduled)
    assert counts.get("failed") == 1 and counts.get("unlock-failed") == 1, counts
    assert counts.get("succeeded", 0) >= 1, counts
    series = {"plan": nightly, "target": director, "kind": "backup"}
    for outcome, count in counts.items():
        assert _value(found, "runs_total", outcome=outcome, **series) == count
    last = scheduled[-1].outcome
    for outcome in counts:
        assert _value(found, "last_outcome", outcome=outcome, **series) == (outcome == last)
    succeeded = [r for r in scheduled if r.state is RunState.SUCCEEDED]
    assert succeeded[-1].finished_at is not None
    last_success = _value(found, "last_success_timestamp_seconds", **series)
    assert last_success == pytest.approx(succeeded[-1].finished_at.timestamp(), abs=1e-3)
    assert (
        _value(found, "artifact_bytes", plan=nightly, target=director) == succeeded[-1].bytes_total
    )
    uploaded = sum(r.bytes_total or 0 for r in succeeded)
    assert _value(found, "uploaded_bytes_total", plan=nightly, target=director) == uploaded
    assert _value(found, "run_duration_seconds_count", **series) == len(scheduled)

    operator = {"plan": "", "target": director, "kind": "backup"}
    assert _value(found, "last_outcome", outcome="unlock-failed", **operator) == 1
    assert _value(found, "last_success_timestamp_seconds", **operator) == 0
    assert _value(found, "platform_possibly_locked", target=director) == 1
    assert _value(found, "platform_possibly_locked", target=idle) == 0
    assert (
        _value(found, "last_success_timestamp_seconds", plan=yearly, target=idle, kind="backup")
        == 0
    )

    assert _value(found, "plan_paused", plan=nightly) == 1
    assert _value(found, "plan_paused", plan=yearly) == 0
    assert _value(found, "next_run_timestamp_seconds", plan=nightly) is None
    next_year = datetime(datetime.now(UTC).year + 1, 1, 1, tzinfo=UTC)
    assert _value(found, "next_run_timestamp_seconds", plan=yearly) == next_year.timestamp()
    interval = _value(found, "schedule_expected_interval_seconds", plan=yearly)
    assert interval in (365 * 86400, 366 * 86400)
    assert _value(found, "storage_up") == 1
    assert _value(found, "catalog_up") == 1
    assert _value(found, "jumpbox_up", jumpbox="jumpbox-0") == 1
    assert [k for k in found if k[0] == P + "build_info"]
