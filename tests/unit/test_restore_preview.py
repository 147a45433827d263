"""Restore preview (``restore --dry-run``): the pure go / no-go and instance-group comparison,
and the action against in-memory fakes (no bbr command, nothing recorded)."""

from __future__ import annotations

import hashlib
import io
import shlex
import tarfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import pytest
import yaml

from bbr_orchestrator.actions.bbr_operation import TargetRun
from bbr_orchestrator.actions.restore_preview import Destination, Preview, preview_restore
from bbr_orchestrator.actions.run_claim import Requester, RunRequest, new_run
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.bbr_metadata import MetadataSummary
from bbr_orchestrator.core.checks import CheckResult, CheckStatus
from bbr_orchestrator.core.layout import Manifest, ManifestObject, manifest_json, object_key
from bbr_orchestrator.core.models import (
    Artifact,
    NewRestorePoint,
    Run,
    RunKind,
    RunState,
    TargetKind,
    Trigger,
)
from bbr_orchestrator.core.preview import (
    compare_instance_groups,
    decide,
    group_indexes,
    integrity_records,
    restore_parts,
    restore_space_check,
    split_host_port,
    tcp_probe_argv,
    url_address,
)
from bbr_orchestrator.errors import SshError
from bbr_orchestrator.ports import Jumpbox, LineSink, LogStream, ObjectStore
from tests.unit.fakes import FakeClock, MemoryCatalog, ScriptedShell
from tests.unit.fetch_fakes import FakeReadStore

OPERATOR = Requester(Trigger.OPERATOR, "alice@laptop")
DF = [
    "Filesystem     1024-blocks    Used Available Capacity Mounted on",
    "/dev/sda1        100000000 1000000  50000000       2% /",
]
Instances = Sequence[tuple[str, str, Sequence[str]]]


# --- pure ------------------------------------------------------------------------------------


def _check(name: str, status: CheckStatus) -> CheckResult:
    return CheckResult(name, "s", status, f"{name} detail")


def test_go_unless_critical_with_warnings_as_caveats() -> None:
    """GO when nothing is critical (the warnings are its reasons); NO-GO lists only the
    critical checks."""
    ok, warn = _check("a", CheckStatus.OK), _check("b", CheckStatus.WARNING)
    crit = _check("c", CheckStatus.CRITICAL)
    assert decide([ok, warn]) == (True, ("b (s): b detail",))
    assert decide([ok]) == (True, ())
    assert decide([ok, warn, crit]) == (False, ("c (s): c detail",))
    assert decide([]) == (True, ())


def test_instance_groups_differing_in_groups_or_counts_are_critical_naming_them() -> None:
    """A group only on one side or with another count is CRITICAL and named; same groups and
    counts on other indexes is a WARNING; the same is OK; no destination data is 'unknown'."""
    backup = group_indexes([("diego_cell", "0"), ("diego_cell", "1"), ("database", "0")])
    now = group_indexes([("diego_cell", "0"), ("router", "0")])
    result = compare_instance_groups("cf", backup, now, "cf's newest stored backup r1")
    assert result.status is CheckStatus.CRITICAL
    assert "database (1) only in the backup" in result.detail
    assert "router (1) only in the destination" in result.detail
    assert "diego_cell: 2 instance(s) in the backup, 1 in the destination" in result.detail
    moved = group_indexes([("diego_cell", "0"), ("diego_cell", "3"), ("database", "0")])
    shifted = compare_instance_groups("cf", backup, moved, "src")
    assert shifted.status is CheckStatus.WARNING and "diego_cell: indexes 0,1" in shifted.detail
    same = compare_instance_groups("cf", backup, dict(backup), "src")
    assert same.status is CheckStatus.OK and "database x1, diego_cell x2" in same.detail
    unknown = compare_instance_groups("cf", backup, None, "cf was never backed up")
    assert unknown.status is CheckStatus.WARNING and unknown.detail.startswith("unknown")


def test_group_indexes_sort_numerically_and_collapse_repeats() -> None:
    """Indexes are distinct and in numeric order (10 after 2), groups by name."""
    got = group_indexes([("b", "10"), ("b", "2"), ("a", "0"), ("b", "2")])
    assert got == {"a": ("0",), "b": ("2", "10")}


def _run(kind: RunKind, target: str, target_kind: TargetKind, step: int, state: RunState) -> Run:
    return Run(
        id=f"r{step}",
        kind=kind,
        target=target,
        target_kind=target_kind,
        trigger=Trigger.SCHEDULE,
        triggered_by="daemon",
        state=state,
        created_at=datetime(2026, 11, 27, 2, step, tzinfo=UTC),
        step=step,
        bytes_total=step * 100,
    )


def test_restore_parts_are_opsman_director_deployments_without_checks() -> None:
    """Parts come in the documented restore order whatever the step numbers, pre-backup-checks
    are left out, and the one this restore uses is marked."""
    ok = RunState.SUCCEEDED
    runs = [
        _run(RunKind.BACKUP, "cf", TargetKind.DEPLOYMENT, 5, RunState.FAILED),
        _run(RunKind.PRE_BACKUP_CHECK, "cf", TargetKind.DEPLOYMENT, 4, ok),
        _run(RunKind.BACKUP, "bosh", TargetKind.DIRECTOR, 3, ok),
        _run(RunKind.OPSMAN_EXPORT, "opsman", TargetKind.OPSMAN, 1, ok),
        _run(RunKind.BACKUP, "mysql", TargetKind.DEPLOYMENT, 2, ok),
    ]
    parts = restore_parts(runs, runs[2])
    assert [(p.target, p.kind, p.selected) for p in parts] == [
        ("opsman", RunKind.OPSMAN_EXPORT, False),
        ("bosh", RunKind.BACKUP, True),
        ("mysql", RunKind.BACKUP, False),
        ("cf", RunKind.BACKUP, False),
    ]
    assert [p.size for p in parts] == [100, 300, 200, 500]


def test_addresses_default_their_ports() -> None:
    """bbr director's --host defaults to port 22; a BOSH URL to 25555; explicit ports win."""
    assert split_host_port("10.0.0.6", 22) == ("10.0.0.6", 22)
    assert split_host_port("10.0.0.6:2222", 22) == ("10.0.0.6", 2222)
    assert url_address("https://10.0.0.6:25555") == ("10.0.0.6", 25555)
    assert url_address("https://bosh.internal") == ("bosh.internal", 25555)
    assert url_address("10.0.0.6:8443") == ("10.0.0.6", 8443)
    with pytest.raises(ValueError, match="port"):
        split_host_port("10.0.0.6:0", 22)


def test_tcp_probe_keeps_host_and_port_out_of_the_script() -> None:
    """The probe's script is constant; a hostile host name travels as an argument and stays
    one shell word after shlex.join."""
    argv = tcp_probe_argv("evil;rm -rf /", 22, 5)
    assert argv[:5] == ("timeout", "5", "bash", "-c", 'exec 3<>"/dev/tcp/$1/$2"')
    assert argv[-2:] == ("evil;rm -rf /", "22")
    assert shlex.split(shlex.join(argv)) == list(argv)


def test_space_below_the_artifact_size_is_critical() -> None:
    """The work root must hold the artifact being fetched; an unknown size is a warning."""
    assert restore_space_check("jb", "/w", 99, 100).status is CheckStatus.CRITICAL
    assert restore_space_check("jb", "/w", 100, 100).status is CheckStatus.OK
    assert restore_space_check("jb", "/w", 100, None).status is CheckStatus.WARNING


def test_a_bad_member_fails_both_its_object_and_the_member_check() -> None:
    """A member problem is CRITICAL in tar-members and its object is CRITICAL in objects; a
    missing object alone leaves tar-members as a WARNING (not every tar was read)."""
    member = [("k/a.tar", "./x", "k/a.tar member ./x: differs")]
    objects, members = integrity_records("m", (2, 10, 3), member)
    assert objects.status is members.status is CheckStatus.CRITICAL
    assert "k/a.tar: content changed" in objects.detail and "./x" in members.detail
    missing = [("k/b.tar", None, "k/b.tar: missing")]
    objects, members = integrity_records("m", (1, 5, 1), missing)
    assert (objects.status, members.status) == (CheckStatus.CRITICAL, CheckStatus.WARNING)
    objects, members = integrity_records("m", (2, 10, 3), [])
    assert objects.status is members.status is CheckStatus.OK


# --- the action against fakes ----------------------------------------------------------------


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


MEMBERS = {"./dump.sql": b"create table t;\n" * 50, "./blobs/b1": b"blob" * 300}


def _store_backup(store: FakeReadStore, run: Run, instances: Instances, artifact_dir: str) -> str:
    """Put a committed backup of ``run`` into ``store``: one tar per job per instance, bbr's
    metadata and the manifest; returns the manifest key."""
    files: dict[str, bytes] = {}
    meta: list[dict[str, object]] = []
    for name, index, jobs in instances:
        artifacts = []
        for job in jobs:
            files[f"{name}-{index}-{job}.tar"] = _tar(MEMBERS)
            sums = {m: hashlib.sha256(d).hexdigest() for m, d in MEMBERS.items()}
            artifacts.append({"name": job, "checksums": sums})
        meta.append({"name": name, "index": index, "artifacts": artifacts})
    doc = {"instances": meta, "backup_activity": {"start_time": "2026/11/27 02:00:00 UTC"}}
    files["metadata"] = yaml.safe_dump(doc).encode()

    def entry(name: str, data: bytes) -> ManifestObject:
        key = object_key("bbr", run.target, artifact_dir, name)
        count = len(MEMBERS) if name.endswith(".tar") else 0
        return ManifestObject(name, key, len(data), hashlib.sha256(data).hexdigest(), count)

    manifest = Manifest(
        run_id=run.id,
        target=run.target,
        target_kind=run.target_kind,
        bbr_version="1.9.79",
        artifact_dir=artifact_dir,
        objects=tuple(entry(n, d) for n, d in sorted(files.items())),
        metadata=MetadataSummary(len(instances), len(files) - 1, 0, (), 2 * (len(files) - 1)),
        started_at=datetime(2026, 11, 27, 2, 0, tzinfo=UTC),
        finished_at=datetime(2026, 11, 27, 2, 5, tzinfo=UTC),
        orchestrator_version="test",
    )
    for obj in manifest.objects:
        store.put(obj.key, files[obj.name])
    key = object_key("bbr", run.target, artifact_dir, "manifest.json")
    store.put(key, manifest_json(manifest))
    return key


def _backup(
    catalog: MemoryCatalog,
    clock: FakeClock,
    store: FakeReadStore,
    target: str = "bosh-director",
    kind: TargetKind = TargetKind.DIRECTOR,
    instances: Instances = (("bosh", "0", ("fake-db", "fake-blobstore")),),
    restore_point_id: str | None = None,
    step: int | None = None,
) -> Run:
    """A succeeded backup in the catalog whose manifest is recorded and stored."""
    request = RunRequest(RunKind.BACKUP, target, kind, "nightly", restore_point_id, step)
    run = catalog.create_run(replace(new_run(clock, request, OPERATOR), state=RunState.RUNNING))
    key = _store_backup(store, run, instances, f"{target}_{run.id[:16]}")
    catalog.add_artifacts([Artifact(run.id, key, 1, "00" * 32)])
    return catalog.transition(run.id, [RunState.RUNNING], RunState.SUCCEEDED)


def _no_bbr(op: Operation, workdir: str, artifact_path: str | None) -> tuple[str, ...]:
    raise AssertionError(f"a preview built a bbr command line ({op.value})")


def _destination(
    target: str = "bosh-director",
    kind: TargetKind = TargetKind.DIRECTOR,
    director: tuple[str, int] | None = ("10.0.0.6", 22),
) -> Destination:
    spec = TargetRun(target, kind, _no_bbr, "/home/ubuntu/bbr-orchestrator")
    return Destination(spec, "jumpbox-1", director)


def _jumpbox(reachable: bool = True, free_kib: int = 50_000_000) -> ScriptedShell:
    """Answers ``true``, the ``df`` of the work root and the director probe; nothing else."""

    def respond(argv: Sequence[str], sink: LineSink) -> int:
        if tuple(argv) == ("true",):
            return 0
        if argv[0] == "sh" and "df -Pk" in argv[2]:
            sink(LogStream.STDOUT, DF[0])
            sink(LogStream.STDOUT, DF[1].replace("50000000", str(free_kib)))
            return 0
        if argv[0] == "timeout":
            if not reachable:
                sink(LogStream.STDERR, "bash: connect: Connection refused")
            return 0 if reachable else 1
        raise AssertionError(f"unexpected command {argv}")

    return ScriptedShell(respond)


def _preview(
    catalog: MemoryCatalog,
    store: FakeReadStore,
    shell: ScriptedShell,
    backup: Run,
    destination: Destination | None = None,
) -> Preview:
    return preview_restore(
        catalog,
        cast("ObjectStore", store),
        lambda: cast("Jumpbox", shell),
        destination or _destination(),
        backup,
    )


def _statuses(preview: Preview) -> dict[str, CheckStatus]:
    return {c.name: c.status for c in preview.checks}


def test_an_intact_backup_is_go_with_its_contents_and_only_read_only_commands() -> None:
    """GO: the preview shows the part, objects, bbr version and bosh/0's jobs; every check is
    OK; the jumpbox saw `true`, a df and a TCP probe (no bbr); the catalog is untouched."""
    catalog, clock, store, shell = MemoryCatalog(), FakeClock(), FakeReadStore(), _jumpbox()
    backup = _backup(catalog, clock, store)
    before = dict(catalog.runs)
    preview = _preview(catalog, store, shell, backup)
    assert (preview.go, preview.reasons) == (True, ())
    assert set(_statuses(preview).values()) == {CheckStatus.OK}
    assert list(_statuses(preview)) == [
        "objects",
        "tar-members",
        "ssh",
        "work-space",
        "director-reachable",
    ]
    assert preview.bbr_version == "1.9.79"
    assert [(i.name, i.index, i.jobs) for i in preview.instances] == [
        ("bosh", "0", ("fake-db", "fake-blobstore"))
    ]
    assert [o.name for o in preview.objects] == [
        "bosh-0-fake-blobstore.tar",
        "bosh-0-fake-db.tar",
        "metadata",
    ]
    assert [(p.run_id, p.selected) for p in preview.parts] == [(backup.id, True)]
    commands = [argv for argv, _, _ in shell.calls]
    assert [c[0] for c in commands] == ["true", "sh", "timeout"]
    assert commands[2][-2:] == ("10.0.0.6", "22")
    assert not any(w == "bbr" or w.endswith("/bbr") for argv in commands for w in argv)
    assert catalog.runs == before and catalog.logs == {}
    assert shell.closed == 1


def test_a_flipped_member_is_no_go_naming_the_key_and_member_without_marking_the_backup() -> None:
    """One byte changed inside a tar member in the store: NO-GO whose reasons name the object
    key and the member; the backup's restorable flag stays unset."""
    catalog, clock, store, shell = MemoryCatalog(), FakeClock(), FakeReadStore(), _jumpbox()
    backup = _backup(catalog, clock, store)
    key = next(k for k in store.objects if k.endswith("bosh-0-fake-db.tar"))
    raw = bytearray(store.objects[key])
    raw[512] ^= 0x01  # the first member's first content byte
    store.objects[key] = bytes(raw)
    preview = _preview(catalog, store, shell, backup)
    assert preview.go is False
    assert _statuses(preview)["tar-members"] is CheckStatus.CRITICAL
    assert _statuses(preview)["objects"] is CheckStatus.CRITICAL
    assert any(key in r and "dump.sql" in r for r in preview.reasons), preview.reasons
    assert catalog.get_run(backup.id).restorable is None


def test_an_unreachable_jumpbox_or_director_is_no_go() -> None:
    """No SSH connection: ssh, work-space and director-reachable are CRITICAL; a director
    port that refuses is CRITICAL naming host:port."""
    catalog, clock, store = MemoryCatalog(), FakeClock(), FakeReadStore()
    backup = _backup(catalog, clock, store)

    def refuse() -> Jumpbox:
        raise SshError("jumpbox-1", "host key mismatch")

    preview = preview_restore(catalog, cast("ObjectStore", store), refuse, _destination(), backup)
    assert preview.go is False
    statuses = _statuses(preview)
    assert [statuses[n] for n in ("ssh", "work-space", "director-reachable")] == [
        CheckStatus.CRITICAL
    ] * 3
    assert "host key mismatch" in preview.reasons[0]
    closed = _preview(catalog, store, _jumpbox(reachable=False), backup)
    (reason,) = closed.reasons
    assert reason.startswith("director-reachable (10.0.0.6:22)") and "refused" in reason


def test_too_little_space_on_the_jumpbox_is_no_go() -> None:
    """The work root's free space below the artifact's size is CRITICAL."""
    catalog, clock, store = MemoryCatalog(), FakeClock(), FakeReadStore()
    backup = _backup(catalog, clock, store)
    preview = _preview(catalog, store, _jumpbox(free_kib=1), backup)
    assert preview.go is False
    assert _statuses(preview)["work-space"] is CheckStatus.CRITICAL


CF_NOW = (("diego_cell", "0", ("cfdb",)), ("router", "0", ("rjob",)))


def test_deployment_with_other_instance_groups_than_the_destination_is_no_go() -> None:
    """The destination's newest stored backup has another topology: CRITICAL naming the
    groups; when the destination was never backed up, a WARNING 'unknown' (still GO)."""
    catalog, clock, store = MemoryCatalog(), FakeClock(), FakeReadStore()
    old = (("diego_cell", "0", ("cfdb",)), ("diego_cell", "1", ("cfdb",)))
    backup = _backup(catalog, clock, store, "cf", TargetKind.DEPLOYMENT, old)
    sandbox = _destination("cf-sandbox", TargetKind.DEPLOYMENT, ("10.0.0.6", 25555))
    never = _preview(catalog, store, _jumpbox(), backup, sandbox)
    assert never.go is True
    assert _statuses(never)["instance-groups"] is CheckStatus.WARNING
    assert never.reasons[0].startswith("instance-groups (cf-sandbox): unknown")
    _backup(catalog, clock, store, "cf-sandbox", TargetKind.DEPLOYMENT, CF_NOW)
    differs = _preview(catalog, store, _jumpbox(), backup, sandbox)
    assert differs.go is False
    (reason,) = differs.reasons
    assert "router (1) only in the destination" in reason
    assert "diego_cell: 2 instance(s) in the backup, 1 in the destination" in reason


def test_restore_point_parts_in_restore_order_and_a_failed_part_warned() -> None:
    """A backup of a plan firing lists every stored part of its restore point in restore
    order (Ops Manager, director, deployments); another part that failed is a WARNING."""
    catalog, clock, store = MemoryCatalog(), FakeClock(), FakeReadStore()
    point = catalog.create_restore_point(
        NewRestorePoint("rp-1", "nightly", Trigger.SCHEDULE, "daemon", clock.now())
    )
    director = _backup(catalog, clock, store, restore_point_id=point.id, step=2)
    request = RunRequest(RunKind.BACKUP, "cf", TargetKind.DEPLOYMENT, "nightly", point.id, 3)
    failed = catalog.create_run(replace(new_run(clock, request, OPERATOR), state=RunState.FAILED))
    request = RunRequest(RunKind.OPSMAN_EXPORT, "opsman", TargetKind.OPSMAN, "nightly", point.id, 1)
    export = catalog.create_run(
        replace(new_run(clock, request, OPERATOR), state=RunState.SUCCEEDED)
    )
    preview = _preview(catalog, store, _jumpbox(), director)
    assert preview.restore_point is not None and preview.restore_point.id == "rp-1"
    assert [(p.run_id, p.selected) for p in preview.parts] == [
        (export.id, False),
        (director.id, True),
        (failed.id, False),
    ]
    assert preview.go is True
    (caveat,) = preview.reasons
    assert caveat.startswith("restore-point (rp-1)") and "cf backup failed" in caveat


def test_an_unrestorable_backup_is_no_go_and_still_checked() -> None:
    """A backup marked not restorable is refused (CRITICAL 'restorable') yet its objects are
    still re-checked and shown; the preview does not change the mark."""
    catalog, clock, store = MemoryCatalog(), FakeClock(), FakeReadStore()
    backup = _backup(catalog, clock, store)
    backup = catalog.record_verification(backup.id, False, clock.now())
    preview = _preview(catalog, store, _jumpbox(), backup)
    assert preview.go is False
    assert preview.reasons[0].startswith(f"restorable ({backup.id}): the backup is marked not")
    assert _statuses(preview)["objects"] is CheckStatus.OK and preview.objects
    assert catalog.get_run(backup.id).restorable is False
