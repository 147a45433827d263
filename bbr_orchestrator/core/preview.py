"""Pure parts of a restore preview (``restore --dry-run``): the restore point's parts in restore
order, addresses and read-only probe command lines, the instance-group comparison, and the
go / no-go verdict over the check records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from bbr_orchestrator.core.bbr_metadata import BbrMetadata
from bbr_orchestrator.core.checks import CheckResult, CheckStatus
from bbr_orchestrator.core.models import Run, RunKind, RunState, TargetKind

#: The documented restore order: import the installation, restore the director, then each
#: deployment (the same order as a backup).
RESTORE_ORDER = {TargetKind.OPSMAN: 0, TargetKind.DIRECTOR: 1, TargetKind.DEPLOYMENT: 2}
PART_KINDS = frozenset({RunKind.BACKUP, RunKind.OPSMAN_EXPORT})
"""Kinds of restore point step that hold something to restore (pre-backup-checks do not)."""
SSH_PORT = 22
"""bbr director's default ``--host`` port."""
BOSH_API_PORT = 25555
_DETAIL_CHARS = 2000


@dataclass(frozen=True)
class Part:
    """One stored part of a restore point, as a restore would use it."""

    run_id: str
    target: str
    target_kind: TargetKind
    kind: RunKind
    step: int | None
    state: RunState
    size: int | None
    selected: bool
    """The part this restore uses."""


def restore_parts(runs: Iterable[Run], selected: Run) -> tuple[Part, ...]:
    """The restorable parts among a restore point's ``runs`` (``selected`` always included), in
    restore order: Ops Manager, director, deployments; by step within a kind."""
    found = {r.id: r for r in runs if r.kind in PART_KINDS}
    found[selected.id] = selected
    ordered = sorted(
        found.values(),
        key=lambda r: (RESTORE_ORDER[r.target_kind], r.step if r.step is not None else 0, r.id),
    )
    return tuple(
        Part(
            run_id=r.id,
            target=r.target,
            target_kind=r.target_kind,
            kind=r.kind,
            step=r.step,
            state=r.state,
            size=r.bytes_total,
            selected=r.id == selected.id,
        )
        for r in ordered
    )


def parts_check(subject: str, parts: Sequence[Part]) -> CheckResult:
    """WARNING when another part of the restore point did not succeed (that part could not be
    restored alongside); OK otherwise."""
    bad = [p for p in parts if not p.selected and p.state is not RunState.SUCCEEDED]
    if not bad:
        return CheckResult(
            "restore-point", subject, CheckStatus.OK, f"all {len(parts)} part(s) succeeded"
        )
    names = ", ".join(f"{p.target} {p.kind.value} {p.state.value}" for p in bad)
    detail = f"{len(bad)} other part(s) of the restore point cannot be restored: {names}"
    return CheckResult("restore-point", subject, CheckStatus.WARNING, detail)


@dataclass(frozen=True)
class InstanceJobs:
    """One backed-up instance in bbr's metadata and the job artifacts it holds."""

    name: str
    index: str
    jobs: tuple[str, ...]


def instance_jobs(meta: BbrMetadata) -> tuple[InstanceJobs, ...]:
    """Each instance of bbr's metadata with its jobs, in the metadata's order."""
    return tuple(
        InstanceJobs(i.name, i.index, tuple(a.name for a in i.artifacts)) for i in meta.instances
    )


def integrity_records(
    key: str, counts: tuple[int, int, int], problems: Sequence[tuple[str, str | None, str]]
) -> tuple[CheckResult, CheckResult]:
    """A verification's result as two records: ``objects`` (presence, size, SHA-256) and
    ``tar-members`` (against bbr's metadata). ``counts``: objects, bytes and members checked;
    ``problems``: each problem's object key, tar member (None: the whole object) and text. An
    object with a bad member is also a bad object (its bytes are not the ones stored)."""
    objects, size, members = counts
    whole = [text for _, member, text in problems if member is None]
    inside = [text for _, member, text in problems if member is not None]
    changed = dict.fromkeys(k for k, member, _ in problems if member is not None)
    bad = whole + [f"{k}: content changed (a tar member differs, see tar-members)" for k in changed]
    if bad:
        first = CheckResult("objects", key, CheckStatus.CRITICAL, problems_detail(bad))
    else:
        detail = (
            f"every object present with the size and SHA-256 the manifest records "
            f"({objects} re-read, {size} bytes, and bbr's metadata)"
        )
        first = CheckResult("objects", key, CheckStatus.OK, detail)
    checked = f"{members} tar member(s) match bbr's metadata"
    if inside:
        second = CheckResult("tar-members", key, CheckStatus.CRITICAL, problems_detail(inside))
    elif whole:
        detail = f"{checked}; not every tar could be checked (see objects)"
        second = CheckResult("tar-members", key, CheckStatus.WARNING, detail)
    else:
        second = CheckResult("tar-members", key, CheckStatus.OK, checked)
    return first, second


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    """``host`` or ``host:port`` (bbr's ``--host``) as ``(host, port)``; ``ValueError`` when the
    port is not a number from 1 to 65535."""
    host, _, port = value.partition(":")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"port {port!r} of {value!r} must be a number from 1 to 65535")
    return host, int(port)


def url_address(target: str, default_port: int = BOSH_API_PORT) -> tuple[str, int]:
    """Where a BOSH director URL (or bare ``host[:port]``) listens; ``ValueError`` if unclear."""
    parts = urlsplit(target if "://" in target else f"https://{target}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{target!r} has an invalid port") from exc
    if not parts.hostname:
        raise ValueError(f"{target!r} names no host")
    return parts.hostname, port or default_port


_TCP_PROBE = 'exec 3<>"/dev/tcp/$1/$2"'


def tcp_probe_argv(host: str, port: int, timeout_seconds: int) -> tuple[str, ...]:
    """A read-only TCP connect from the jumpbox (bash's ``/dev/tcp``); host and port travel as
    positional arguments, never inside the script."""
    return ("timeout", str(timeout_seconds), "bash", "-c", _TCP_PROBE, "probe", host, str(port))


_DF_NEAREST = 'd=$1; while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done; exec df -Pk -- "$d"'


def df_nearest_argv(path: str) -> tuple[str, ...]:
    """``df -Pk`` of ``path``, or of its nearest existing parent (nothing is created)."""
    return ("sh", "-c", _DF_NEAREST, "sh", path)


def restore_space_check(subject: str, work_root: str, free: int, needed: int | None) -> CheckResult:
    """CRITICAL when the work root cannot hold the artifact being fetched for the restore."""
    have = f"{free} bytes free in {work_root}"
    if needed is None:
        return CheckResult("work-space", subject, CheckStatus.WARNING, f"{have}; size unknown")
    if free < needed:
        detail = f"{have}, the artifact needs {needed} bytes"
        return CheckResult("work-space", subject, CheckStatus.CRITICAL, detail)
    return CheckResult("work-space", subject, CheckStatus.OK, f"{have} for {needed} bytes")


def group_indexes(instances: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """Instance group -> its sorted distinct indexes."""
    groups: dict[str, set[str]] = {}
    for name, index in instances:
        groups.setdefault(name, set()).add(index)
    return {name: tuple(sorted(found, key=_index_key)) for name, found in sorted(groups.items())}


def _index_key(index: str) -> tuple[int, str]:
    return (int(index), "") if index.isdigit() else (1 << 62, index)


def compare_instance_groups(
    subject: str,
    artifact: Mapping[str, Sequence[str]],
    destination: Mapping[str, Sequence[str]] | None,
    source: str,
) -> CheckResult:
    """The backup's instance groups against the destination's (as ``source`` recorded them):
    WARNING when unknown, CRITICAL when groups or counts differ (naming them), WARNING when
    only the indexes differ, OK when they are the same."""
    name = "instance-groups"
    if destination is None:
        detail = f"unknown: {source}; the backup's groups are {_groups(artifact)}"
        return CheckResult(name, subject, CheckStatus.WARNING, detail)
    differences = []
    for group in sorted(set(artifact) - set(destination)):
        differences.append(f"{group} ({len(artifact[group])}) only in the backup")
    for group in sorted(set(destination) - set(artifact)):
        differences.append(f"{group} ({len(destination[group])}) only in the destination")
    for group in sorted(set(artifact) & set(destination)):
        if len(artifact[group]) != len(destination[group]):
            differences.append(
                f"{group}: {len(artifact[group])} instance(s) in the backup, "
                f"{len(destination[group])} in the destination"
            )
    if differences:
        detail = f"differ from {source}: " + "; ".join(differences)
        return CheckResult(name, subject, CheckStatus.CRITICAL, _clip(detail))
    moved = [
        f"{g}: indexes {','.join(artifact[g])} in the backup, {','.join(destination[g])} now"
        for g in sorted(artifact)
        if tuple(artifact[g]) != tuple(destination[g])
    ]
    if moved:
        detail = f"same groups and counts as {source}, other indexes: " + "; ".join(moved)
        return CheckResult(name, subject, CheckStatus.WARNING, _clip(detail))
    detail = f"same as {source}: {_groups(artifact)}"
    return CheckResult(name, subject, CheckStatus.OK, _clip(detail))


def _groups(groups: Mapping[str, Sequence[str]]) -> str:
    return ", ".join(f"{g} x{len(i)}" for g, i in sorted(groups.items())) or "none"


def problems_detail(problems: Sequence[str]) -> str:
    """Every problem, counted, in one detail line (clipped for very long lists)."""
    return _clip(f"{len(problems)} problem(s): " + "; ".join(problems))


def _clip(text: str) -> str:
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def decide(checks: Iterable[CheckResult]) -> tuple[bool, tuple[str, ...]]:
    """GO unless a check is CRITICAL. The reasons: every critical check for a NO-GO, every
    warning (the caveats) for a GO."""
    results = list(checks)
    counted = Counter(r.status for r in results)
    wanted = CheckStatus.CRITICAL if counted[CheckStatus.CRITICAL] else CheckStatus.WARNING
    reasons = tuple(f"{r.name} ({r.subject}): {r.detail}" for r in results if r.status is wanted)
    return not counted[CheckStatus.CRITICAL], reasons
