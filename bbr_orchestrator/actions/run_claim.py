"""Claiming runs in the catalog: who asked, and the compare-and-set that takes the target.

A run is created ``QUEUED`` (it holds nothing; a queued run is how the queue is visible) and
moves to ``RUNNING`` with a compare-and-set that also claims its target: the catalog allows one
running run per target, across every daemon and operator sharing it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from bbr_orchestrator.core.models import (
    NewRun,
    Run,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
    new_run_id,
)
from bbr_orchestrator.errors import TargetBusy
from bbr_orchestrator.ports import Catalog, Clock


@dataclass(frozen=True)
class Requester:
    """Who asked for the run (``daemon_instance``: the process that owns and heartbeats it)."""

    trigger: Trigger
    who: str
    daemon_instance: str | None = None


@dataclass(frozen=True)
class RunRequest:
    """What a new run is about."""

    kind: RunKind
    target: str
    target_kind: TargetKind
    plan: str | None = None
    restore_point_id: str | None = None
    step: int | None = None


def new_run(clock: Clock, request: RunRequest, requester: Requester) -> NewRun:
    """The catalog row of a queued run, with a fresh id."""
    now = clock.now()
    return NewRun(
        id=new_run_id(now, secrets.token_hex(4)),
        kind=request.kind,
        target=request.target,
        target_kind=request.target_kind,
        trigger=requester.trigger,
        triggered_by=requester.who,
        created_at=now,
        plan=request.plan,
        daemon_instance=requester.daemon_instance,
        restore_point_id=request.restore_point_id,
        step=request.step,
    )


def start_run(catalog: Catalog, clock: Clock, queued: Run) -> Run:
    """``QUEUED -> RUNNING``, taking the target; ``TargetBusy`` (run stays queued) if held."""
    started = clock.now()
    return catalog.transition(
        queued.id,
        [RunState.QUEUED],
        RunState.RUNNING,
        RunUpdate(started_at=started, heartbeat_at=started),
    )


def claim_now(catalog: Catalog, clock: Clock, request: RunRequest, requester: Requester) -> Run:
    """Create and start a run at once (an operator's command). When another run holds the
    target, the new run is recorded as cancelled with the reason and ``TargetBusy`` is raised."""
    queued = catalog.create_run(new_run(clock, request, requester))
    try:
        return start_run(catalog, clock, queued)
    except TargetBusy as exc:
        catalog.transition(
            queued.id,
            [RunState.QUEUED],
            RunState.CANCELLED,
            RunUpdate(finished_at=clock.now(), outcome="target-busy", error_summary=str(exc)),
        )
        raise
