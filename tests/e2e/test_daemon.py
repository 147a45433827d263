"""The daemon as a subprocess against real sshd + bbr simulator + SeaweedFS + PostgreSQL."""

from __future__ import annotations

import itertools
import json
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bbr_orchestrator.core.models import RestorePointState, RunFilter, RunKind, RunState
from bbr_orchestrator.sandbox import bbrsim, omsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox, running_sshd

from .daemon_kit import CLIENT_SECRET, Bed, postgres_database, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EVERY_4S = "*/4 * * * * *"


@pytest.fixture(scope="module")
def daemon_jumpboxes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[Jumpbox], Path]]:
    """Three jumpboxes (three real sshd) sharing one simulated platform."""
    base = tmp_path_factory.mktemp("daemon-jumpboxes")
    bin_dir, state = base / "bin", base / "bbr-state"
    bbrsim.install(bin_dir, state)
    omsim.install(bin_dir, base / "om-state")
    (state / "deployment_secret").write_text(CLIENT_SECRET, encoding="utf-8")
    env = {"BBR_SIM_STATE": str(state), omsim.STATE_ENV: str(base / "om-state")}
    with ExitStack() as stack:
        boxes = [
            stack.enter_context(running_sshd(base / f"sshd-{i}", bin_dir=bin_dir, env=env))
            for i in range(3)
        ]
        yield boxes, state


@pytest.fixture
def bed(
    tmp_path: Path,
    daemon_jumpboxes: tuple[list[Jumpbox], Path],
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> Iterator[Bed]:
    boxes, state = daemon_jumpboxes
    with postgres_database() as url:
        test_bed = Bed(tmp_path, boxes, state, seaweedfs, bucket(seaweedfs), url)
        try:
            yield test_bed
        finally:
            test_bed.stop_all()


def _token() -> str:
    return secrets.token_hex(3)


def _host() -> str:
    """A director address no other test uses (the simulator keys directors by host)."""
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 2}"


def _migrated(bed: Bed, data: dict[str, Any], name: str = "config.yml") -> Path:
    config = bed.write_config(data, name)
    result = bed.cli(config, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    return config


def _points(bed: Bed, plan: str, state: RestorePointState | None = None) -> list[Any]:
    with bed.catalog() as catalog:
        found = catalog.list_restore_points(plan=plan, limit=500)
    return [p for p in found if state is None or p.state is state]


def _bucket_keys(bed: Bed) -> list[str]:
    client = bed.s3.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bed.bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _open_uploads(bed: Bed) -> list[str]:
    client = bed.s3.client()
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bed.bucket).get("Uploads", [])]


def test_scheduled_plan_produces_a_complete_restore_point(bed: Bed) -> None:
    """A firing exports Ops Manager, then backs up the director, then both deployments, as one
    complete restore point, every artifact in the bucket behind its manifest."""
    token = _token()
    opsman, director = f"om-{token}", f"dir-{token}"
    cf, mysql = f"cf-{token}", f"mysql-{token}"
    targets = [
        bed.opsman(opsman),
        bed.deployment(cf, f"cf-{token}"),
        bed.director(director, _host()),
        bed.deployment(mysql, f"p-mysql-{token}"),
    ]
    plan = {
        "name": f"nightly-{token}",
        "targets": [opsman, cf, director, mysql],
        "schedule": EVERY_4S,
        "timezone": "Europe/Berlin",
    }
    config = _migrated(bed, bed.config(targets, [plan]))
    daemon = bed.start_daemon(config)
    daemon.wait_event("daemon_started", timeout=30)
    point = wait_until(
        "a complete restore point",
        lambda: _points(bed, plan["name"], RestorePointState.COMPLETE),
        timeout=90,
    )[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(90) == 0
    with bed.catalog() as catalog:
        steps = catalog.list_runs(RunFilter(restore_point_id=point.id, limit=50))
        steps.sort(key=lambda r: r.step or 0)
        artifacts = {
            r.target: catalog.list_artifacts(r.id)
            for r in steps
            if r.kind in (RunKind.BACKUP, RunKind.OPSMAN_EXPORT)
        }
    assert [(r.kind, r.target) for r in steps] == [
        (RunKind.OPSMAN_EXPORT, opsman),
        (RunKind.PRE_BACKUP_CHECK, director),
        (RunKind.BACKUP, director),
        (RunKind.PRE_BACKUP_CHECK, cf),
        (RunKind.BACKUP, cf),
        (RunKind.PRE_BACKUP_CHECK, mysql),
        (RunKind.BACKUP, mysql),
    ]
    assert all(r.state is RunState.SUCCEEDED for r in steps), [(r.target, r.outcome) for r in steps]
    assert point.scheduled_for is not None and point.scheduled_for.second % 4 == 0
    keys = _bucket_keys(bed)
    assert any(a.object_key.endswith("/installation.zip") for a in artifacts[opsman])
    for target in (opsman, director, cf, mysql):
        stored = [a.object_key for a in artifacts[target]]
        assert any(k.endswith("/manifest.json") for k in stored), stored
        assert set(stored) <= set(keys)
    assert _open_uploads(bed) == []


def test_two_daemons_run_each_firing_exactly_once(bed: Bed) -> None:
    """Two daemons on one PostgreSQL catalog: every firing runs once, targets never overlap;
    when one daemon is killed, the other keeps the schedule and reaps its leftovers."""
    token = _token()
    director = f"dir-{token}"
    host = _host()
    plan = {
        "name": f"ha-{token}",
        "targets": [director],
        "schedule": "*/3 * * * * *",
        "timezone": "UTC",
        "pre_backup_check": False,
    }
    data = bed.config([bed.director(director, host)], [plan])
    config = _migrated(bed, data)
    first, second = bed.start_daemon(config, "a"), bed.start_daemon(config, "b")
    first.wait_event("daemon_started", timeout=30)
    second.wait_event("daemon_started", timeout=30)

    def shared() -> bool:
        complete = _points(bed, plan["name"], RestorePointState.COMPLETE)
        return len(complete) >= 4 and len({p.daemon_instance for p in complete}) == 2

    # Who claims a firing is a race: wait until both daemons have won some (not a fixed count,
    # which one daemon may win alone).
    wait_until("four complete firings, taken by both daemons", shared, timeout=90)
    first.stop()  # SIGKILL: the survivor must keep the schedule
    killed_at = time.time()
    wait_until(
        "three more complete firings after the kill",
        lambda: (
            len(
                [
                    p
                    for p in _points(bed, plan["name"], RestorePointState.COMPLETE)
                    if p.created_at.timestamp() > killed_at + 5
                ]
            )
            >= 3
        ),
        timeout=90,
    )
    second.signal(signal.SIGTERM)
    assert second.wait_exit(90) == 0
    points = _points(bed, plan["name"])
    firings = sorted(p.scheduled_for for p in points if p.scheduled_for is not None)
    assert len(firings) == len(set(firings)), "a firing ran twice"
    _assert_no_gaps(firings, seconds=3)
    owners = {p.daemon_instance for p in points if p.state is RestorePointState.COMPLETE}
    assert len(owners) == 2, "both daemons took firings"
    late = {
        p.daemon_instance
        for p in points
        if p.state is RestorePointState.COMPLETE and p.created_at.timestamp() > killed_at + 5
    }
    assert len(late) == 1, "after the kill only the survivor ran firings"
    assert all(not p.state.active for p in points), [(p.id, p.state) for p in points]
    _assert_no_overlap(bed.bbr_state, host)
    assert not bbrsim.is_busy(bed.bbr_state, host)


def _assert_no_gaps(firings: list[datetime], seconds: int) -> None:
    for before, after in itertools.pairwise(firings):
        assert (after - before).total_seconds() == seconds, (before, after)


def _assert_no_overlap(state: Path, host: str) -> None:
    """bbr never ran twice at once against ``host`` (from the simulator's own records)."""
    spans = sorted(
        (r["started_at"], r["finished_at"])
        for r in bbrsim.invocations(state)
        if r.get("target") == host
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, f"two bbr runs overlapped on {host}: ended {end}, next began {start}"


def _running_backup(bed: Bed, target: str) -> Any:
    with bed.catalog() as catalog:
        found = catalog.list_runs(
            RunFilter(target=target, kind=RunKind.BACKUP, state=RunState.RUNNING, limit=1)
        )
    return found[0] if found else None


def _slow_backup_once(bed: Bed, host: str, seconds: float) -> None:
    bbrsim.set_faults(
        bed.bbr_state,
        bbrsim.Faults(target=host, commands=["backup"], once=True, backup_delay_seconds=seconds),
    )


def test_sigkill_mid_backup_then_restart_leaves_a_truthful_catalog(bed: Bed) -> None:
    """A daemon killed mid-backup: its successor marks the run interrupted, stops the orphaned
    bbr, aborts its uploads, runs backup-cleanup and removes the work dir — all recorded."""
    token = _token()
    director, host = f"dir-{token}", _host()
    plan = {
        "name": f"crash-{token}",
        "targets": [director],
        "schedule": "*/5 * * * * *",
        "timezone": "UTC",
        "pre_backup_check": False,
    }
    config = _migrated(bed, bed.config([bed.director(director, host)], [plan]))
    _slow_backup_once(bed, host, 60)
    first = bed.start_daemon(config, "doomed")
    victim = wait_until("a running backup", lambda: _running_backup(bed, director), timeout=60)
    wait_until("bbr locking the director", lambda: bbrsim.locked_jobs(bed.bbr_state, host))
    first.stop()  # SIGKILL
    work_dir = bed.base / "work-0" / victim.id
    assert work_dir.is_dir()
    second = bed.start_daemon(config, "successor")
    second.wait_event("run_reaped", timeout=60)
    with bed.catalog() as catalog:
        reaped = catalog.get_run(victim.id)
        notes = [line.text for line in catalog.read_log(victim.id)]
        cleanups = catalog.list_runs(
            RunFilter(target=director, kind=RunKind.BACKUP_CLEANUP, limit=10)
        )
        point = catalog.get_restore_point(victim.restore_point_id or "")
    assert reaped.state is RunState.INTERRUPTED and reaped.outcome == "interrupted"
    assert point.state is RestorePointState.INTERRUPTED
    assert [c.state for c in cleanups] == [RunState.SUCCEEDED], cleanups
    assert any("stopping orphaned process" in n for n in notes), notes
    assert any("aborted" in n and "multipart" in n for n in notes), notes
    assert any(f"removed {work_dir}" in n for n in notes), notes
    assert not work_dir.exists()
    assert not bbrsim.is_busy(bed.bbr_state, host)
    assert bbrsim.locked_jobs(bed.bbr_state, host) == []
    assert bbrsim.running(bed.bbr_state) == []
    assert _open_uploads(bed) == []
    # The successor keeps the schedule: a later firing completes on the released target.
    wait_until(
        "a complete restore point after recovery",
        lambda: _points(bed, plan["name"], RestorePointState.COMPLETE),
        timeout=60,
    )
    second.signal(signal.SIGTERM)
    assert second.wait_exit(60) == 0


def test_sigterm_lets_a_running_backup_finish_within_the_grace(bed: Bed) -> None:
    """SIGTERM during a backup: no new work starts, the backup finishes, the daemon exits 0."""
    token = _token()
    director, host = f"dir-{token}", _host()
    plan = {
        "name": f"stop-{token}",
        "targets": [director],
        "schedule": "*/2 * * * * *",
        "timezone": "UTC",
        "pre_backup_check": False,
    }
    config = _migrated(bed, bed.config([bed.director(director, host)], [plan]))
    _slow_backup_once(bed, host, 6)
    daemon = bed.start_daemon(config)
    run = wait_until("a running backup", lambda: _running_backup(bed, director), timeout=60)
    daemon.signal(signal.SIGTERM)
    sent = time.monotonic()
    assert daemon.wait_exit(60) == 0
    assert time.monotonic() - sent < 30
    with bed.catalog() as catalog:
        finished = catalog.get_run(run.id)
        later = catalog.list_runs(RunFilter(target=director, kind=RunKind.BACKUP, limit=50))
    assert finished.state is RunState.SUCCEEDED, finished
    assert all(not r.state.active for r in later)
    assert all(
        r.state is RunState.CANCELLED for r in later if r.id != run.id and r.started_at is None
    )
    assert not bbrsim.is_busy(bed.bbr_state, host)


def test_sigterm_past_the_grace_cancels_bbr_and_cleans_up(bed: Bed) -> None:
    """A backup outlasting the shutdown grace is cancelled (SIGTERM to bbr) and cleaned up."""
    token = _token()
    director, host = f"dir-{token}", _host()
    plan = {
        "name": f"grace-{token}",
        "targets": [director],
        "schedule": "*/2 * * * * *",
        "timezone": "UTC",
        "pre_backup_check": False,
    }
    data = bed.config([bed.director(director, host)], [plan], daemon={"shutdown_grace": "2s"})
    config = _migrated(bed, data)
    _slow_backup_once(bed, host, 120)
    daemon = bed.start_daemon(config)
    run = wait_until("a running backup", lambda: _running_backup(bed, director), timeout=60)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    with bed.catalog() as catalog:
        cancelled = catalog.get_run(run.id)
        cleanups = catalog.list_runs(
            RunFilter(target=director, kind=RunKind.BACKUP_CLEANUP, limit=10)
        )
    assert cancelled.state is RunState.CANCELLED
    assert [c.state for c in cleanups] == [RunState.SUCCEEDED]
    assert not bbrsim.is_busy(bed.bbr_state, host)
    assert bbrsim.locked_jobs(bed.bbr_state, host) == []
    assert bbrsim.running(bed.bbr_state) == []


def _once_soon(seconds_ahead: int) -> str:
    """A 6-field schedule that fires once, ``seconds_ahead`` from now (UTC, daily)."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds_ahead)
    return f"{moment.second} {moment.minute} {moment.hour} * * *"


def _max_concurrency(spans: list[tuple[str, str]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def test_twenty_targets_on_three_jumpboxes_respect_the_limits(bed: Bed) -> None:
    """A burst of 20 firings is queued (visibly), runs 4 at a time and 2 per jumpbox, and
    never two runs on one target."""
    token = _token()
    hosts = {f"d{i:02d}-{token}": _host() for i in range(20)}
    targets = [
        bed.director(name, host, jumpbox=i % 3) for i, (name, host) in enumerate(hosts.items())
    ]
    plans = [
        {"name": f"p-{name}", "targets": [name], "timezone": "UTC", "pre_backup_check": False}
        for name in hosts
    ]
    data = bed.config(targets, plans, daemon={"max_parallel": 4}, max_parallel_per_jumpbox=2)
    config = _migrated(bed, {**data, "plans": [{**p, "schedule": "0 0 1 1 *"} for p in plans]})
    schedule = _once_soon(10)  # one burst, soon after the daemon is up
    for plan in plans:
        plan["schedule"] = schedule
    bed.write_config(data)
    bbrsim.set_faults(
        bed.bbr_state,
        [
            bbrsim.Faults(target=h, commands=["backup"], backup_delay_seconds=2)
            for h in hosts.values()
        ],
    )
    daemon = bed.start_daemon(config)
    daemon.wait_event("daemon_started", timeout=30)

    def queue_busy() -> dict[str, Any] | None:
        listed = bed.cli(config, "queue", "--json")
        assert listed.returncode == 0, listed.stderr
        shown = json.loads(listed.stdout or "{}")
        states = [s["state"] for p in shown.get("restore_points", []) for s in p["steps"]]
        return shown if "queued" in states and "running" in states else None

    shown = wait_until("a visible queue with running and queued steps", queue_busy, timeout=60)
    assert len(shown["restore_points"]) >= 5
    wait_until(
        "20 complete restore points",
        lambda: sum(len(_points(bed, p["name"], RestorePointState.COMPLETE)) for p in plans) == 20,
        timeout=180,
    )
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    records = [
        r
        for r in bbrsim.invocations(bed.bbr_state)
        if r.get("target") in set(hosts.values()) and r["subcommand"] == "backup"
    ]
    assert len(records) == 20
    spans = [(r["started_at"], r["finished_at"]) for r in records]
    assert _max_concurrency(spans) == 4
    for i in range(3):
        on_box = [
            (r["started_at"], r["finished_at"]) for r in records if f"/work-{i}/" in r["cwd"] + "/"
        ]
        assert on_box and _max_concurrency(on_box) <= 2, i
    for host in hosts.values():
        _assert_no_overlap(bed.bbr_state, host)


def test_invalid_config_on_reload_is_rejected_and_the_old_schedule_keeps_running(
    bed: Bed,
) -> None:
    """A broken config: `reload` refuses it (exit 2) and so does the daemon on SIGHUP, errors
    by path, old schedule still firing; a valid `reload` then takes effect (plan paused)."""
    token = _token()
    director = f"dir-{token}"
    plan = {
        "name": f"reload-{token}",
        "targets": [director],
        "schedule": "*/3 * * * * *",
        "timezone": "UTC",
        "pre_backup_check": False,
    }
    data = bed.config([bed.director(director, _host())], [plan])
    config = _migrated(bed, data)
    daemon = bed.start_daemon(config)
    wait_until(
        "a first complete firing",
        lambda: _points(bed, plan["name"], RestorePointState.COMPLETE),
        timeout=60,
    )
    broken = json.loads(json.dumps(data))
    broken["plans"][0]["schedule"] = "every night"
    broken["jumpboxes"][0]["port"] = 0
    bed.write_config(broken)
    refused = bed.cli(config, "reload")
    assert refused.returncode == 2 and "plans[0].schedule" in refused.stderr, refused.stderr
    daemon.signal(signal.SIGHUP)  # straight to the daemon: it must validate too
    rejected = daemon.wait_event("config_reload_rejected", timeout=30)
    assert any(e.startswith("plans[0].schedule") for e in rejected["errors"]), rejected
    assert any(e.startswith("jumpboxes[0].port") for e in rejected["errors"]), rejected
    before = len(_points(bed, plan["name"], RestorePointState.COMPLETE))
    wait_until(
        "two more firings on the old schedule",
        lambda: len(_points(bed, plan["name"], RestorePointState.COMPLETE)) >= before + 2,
        timeout=60,
    )
    paused = json.loads(json.dumps(data))
    paused["plans"][0]["paused"] = True
    bed.write_config(paused)
    asked = bed.cli(config, "reload")
    assert asked.returncode == 0, asked.stderr
    daemon.wait_event("config_reloaded", timeout=30)
    time.sleep(1)
    settled = len(_points(bed, plan["name"]))
    time.sleep(7)
    assert len(_points(bed, plan["name"])) == settled
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_firings_missed_while_down_are_recorded_and_the_latest_runs_once(bed: Bed) -> None:
    """Down for longer than the misfire grace: the firings older than the grace are recorded
    as missed, the newest runs once on start, and no firing goes unaccounted for."""
    token = _token()
    director = f"dir-{token}"
    plan = {
        "name": f"missed-{token}",
        "targets": [director],
        "schedule": "*/2 * * * * *",
        "timezone": "UTC",
        "pre_backup_check": False,
    }
    data = bed.config([bed.director(director, _host())], [plan], daemon={"misfire_grace": "3s"})
    config = _migrated(bed, data)
    first = bed.start_daemon(config, "before")
    wait_until(
        "a first complete firing",
        lambda: _points(bed, plan["name"], RestorePointState.COMPLETE),
        timeout=60,
    )
    first.signal(signal.SIGTERM)
    assert first.wait_exit(60) == 0
    time.sleep(10)
    restarted = time.time()
    second = bed.start_daemon(config, "after")
    caught = second.wait_event("firing_caught_up", timeout=30)
    wait_until(
        "a complete firing after the restart",
        lambda: [
            p
            for p in _points(bed, plan["name"], RestorePointState.COMPLETE)
            if p.created_at.timestamp() >= restarted
        ],
        timeout=60,
    )
    second.signal(signal.SIGTERM)
    assert second.wait_exit(60) == 0
    points = _points(bed, plan["name"])
    missed = [p for p in points if p.state is RestorePointState.MISSED]
    assert len(missed) >= 3, [(p.scheduled_for, p.state) for p in points]
    assert all("no daemon was running" in (p.summary or "") for p in missed)
    caught_up = [
        p
        for p in points
        if p.scheduled_for and p.scheduled_for.isoformat() == caught["scheduled_for"]
    ]
    assert [p.state for p in caught_up] == [RestorePointState.COMPLETE]
    firings = sorted(p.scheduled_for for p in points if p.scheduled_for is not None)
    assert len(firings) == len(set(firings)), "a firing was recorded twice"
    _assert_no_gaps(firings, seconds=2)


def test_sigkill_mid_upload_leaves_no_open_multipart_upload(bed: Bed) -> None:
    """A daemon killed while streaming an artifact to S3: its successor aborts the open
    multipart upload, cleans up, and the catalog says interrupted (no half backup claimed)."""
    token = _token()
    director, host = f"dir-{token}", _host()
    plan = {
        "name": f"upload-{token}",
        "targets": [director],
        "schedule": "0 0 1 1 *",
        "timezone": "UTC",
        "pre_backup_check": False,
    }
    data = bed.config([bed.director(director, host)], [plan])
    config = _migrated(bed, data)
    bbrsim.set_faults(
        bed.bbr_state,
        bbrsim.Faults(
            target=host,
            commands=["backup"],
            once=True,
            large_artifacts={"fake-blobstore": 400 * 1024 * 1024},
        ),
    )
    plan["schedule"] = _once_soon(6)
    bed.write_config(data)
    first = bed.start_daemon(config, "doomed")
    victim = wait_until("a running backup", lambda: _running_backup(bed, director), timeout=60)
    wait_until("an open multipart upload", lambda: _open_uploads(bed), timeout=120)
    first.stop()  # SIGKILL mid-upload
    assert _open_uploads(bed), "the upload was still open when the daemon died"
    second = bed.start_daemon(config, "successor")
    second.wait_event("run_reaped", timeout=60)
    with bed.catalog() as catalog:
        reaped = catalog.get_run(victim.id)
        notes = [line.text for line in catalog.read_log(victim.id)]
        stored = catalog.list_artifacts(victim.id)
    assert reaped.state is RunState.INTERRUPTED
    assert any("aborted 1 open multipart upload(s)" in n for n in notes), notes
    assert _open_uploads(bed) == []
    assert not any(k.endswith("/manifest.json") for k in _bucket_keys(bed))
    assert not any(a.object_key.endswith("/manifest.json") for a in stored)
    assert not bbrsim.is_busy(bed.bbr_state, host)
    second.signal(signal.SIGTERM)
    assert second.wait_exit(60) == 0


def test_the_daemon_speaks_the_systemd_notify_protocol(bed: Bed, tmp_path: Path) -> None:
    """Under systemd ($NOTIFY_SOCKET): READY=1, STATUS lines, WATCHDOG=1 pings at half the
    watchdog interval, RELOADING=1 on SIGHUP, STOPPING=1 on SIGTERM."""
    token = _token()
    director = f"dir-{token}"
    plan = {
        "name": f"notify-{token}",
        "targets": [director],
        "schedule": "0 0 1 1 *",
        "timezone": "UTC",
    }
    config = _migrated(bed, bed.config([bed.director(director, _host())], [plan]))
    received: list[str] = []
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(0.5)

        def listen() -> None:
            while not stopped.is_set():
                try:
                    received.append(server.recv(4096).decode())
                except TimeoutError:
                    continue

        stopped = threading.Event()
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}
        daemon = bed.start_daemon(config, env=env)
        wait_until("READY=1", lambda: any("READY=1" in m for m in received), timeout=30)
        wait_until(
            "three watchdog pings",
            lambda: sum("WATCHDOG=1" in m for m in received) >= 3,
            timeout=15,
        )
        daemon.signal(signal.SIGHUP)
        wait_until("RELOADING=1", lambda: any("RELOADING=1" in m for m in received), timeout=15)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(30) == 0
        stopped.set()
        listener.join(5)
    assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for m in received), received
    assert any("STOPPING=1" in m for m in received), received
    ready = next(i for i, m in enumerate(received) if "READY=1" in m)
    stopping = next(i for i, m in enumerate(received) if "STOPPING=1" in m)
    assert ready < stopping
