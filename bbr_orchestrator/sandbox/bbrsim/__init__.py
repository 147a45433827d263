"""A simulator of BOSH Backup and Restore (``bbr`` 1.9.79): the tests' stand-in for the real one.

It follows /work/shared/bbr-contract.md (flags, exit bitmask, stdout/stderr shapes, artifact
layout, metadata and checksums, busy marker, err.log files, signals) against a simulated world
of directors and deployments kept in a state directory, and misbehaves on demand (see
:class:`Faults`). Standard library only: it runs under whatever Python the jumpbox has.

Typical use::

    bbr = install(bin_dir, state_dir)            # bin_dir/bbr, a /bin/sh wrapper
    set_faults(state_dir, Faults(fail_scripts=["fake-db/post-backup-unlock"], once=True))
    ... run bbr ... ; invocations(state_dir)[-1]["exit_code"] == 8
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import faults as _faults
from . import state as _state
from .faults import SCRIPTS, FaultError, Faults
from .output import VERSION
from .world import load_deployment, load_director

__all__ = [
    "SCRIPTS",
    "VERSION",
    "FaultError",
    "Faults",
    "clear_faults",
    "deployment_job_dir",
    "director_job_dir",
    "install",
    "invocations",
    "is_busy",
    "locked_jobs",
    "running",
    "set_faults",
]

if TYPE_CHECKING:
    FaultSpec = Faults | Mapping[str, Any]
_PACKAGE_ROOT = Path(__file__).resolve().parents[3]


def install(bin_dir: Path, state_dir: Path, python: str = sys.executable) -> Path:
    """Create ``bin_dir/bbr`` and the state dir (0700, with the default world); return the wrapper.

    The wrapper exports ``BBR_SIM_STATE=state_dir`` unless the environment already sets it
    (the jumpbox's sshd does, with SetEnv), puts this source tree on PYTHONPATH and runs
    ``python -m bbr_orchestrator.sandbox.bbrsim "$@"``.
    """
    state_dir = Path(state_dir).resolve()
    _state.create_state_dir(state_dir)
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "bbr"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# bbr simulator (bbr-orchestrator's test double for BOSH Backup and Restore)\n"
        f': "${{BBR_SIM_STATE:={shlex.quote(str(state_dir))}}}"\n'
        "export BBR_SIM_STATE\n"
        f'PYTHONPATH={shlex.quote(str(_PACKAGE_ROOT))}"${{PYTHONPATH:+:$PYTHONPATH}}"\n'
        "export PYTHONPATH\n"
        f'exec {shlex.quote(python)} -m bbr_orchestrator.sandbox.bbrsim "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    return wrapper


def set_faults(state_dir: Path, faults: FaultSpec | Sequence[FaultSpec]) -> None:
    """Replace the faults the next invocations see (one entry, or several for several targets)."""
    specs = [faults] if isinstance(faults, (Faults, Mapping)) else list(faults)
    entries = [f if isinstance(f, Faults) else Faults.from_dict(f) for f in specs]
    _faults.save(Path(state_dir), [entry.validate() for entry in entries])


def clear_faults(state_dir: Path) -> None:
    """No more faults: every invocation behaves like a healthy bbr."""
    _faults.save(Path(state_dir), [])


def is_busy(state_dir: Path, target: str) -> bool:
    """Whether ``/var/vcap/store/bbr-backup`` exists on director host or deployment ``target``."""
    root = Path(state_dir)
    director = root / _state.DIRECTORS / target
    if (director / "store" / "bbr-backup").exists():
        return True
    instances = root / _state.DEPLOYMENTS / target / "instances"
    return instances.is_dir() and any(instances.glob("*/*/store/bbr-backup"))


def locked_jobs(state_dir: Path, target: str) -> list[str]:
    """Jobs left locked on ``target`` (``<group>/<index>/<job>``), e.g. after an unlock failure."""
    root = Path(state_dir)
    targets = []
    if (root / _state.DIRECTORS / target).is_dir():
        targets.append(load_director(root, target))
    if (root / _state.DEPLOYMENTS / target).is_dir():
        targets.append(load_deployment(root, target))
    return [f"{i.address}/{job}" for t in targets for i in t.instances for job in i.locked_jobs()]


def invocations(state_dir: Path) -> list[dict[str, Any]]:
    """One record per finished bbr invocation, oldest first.

    Keys: argv, cwd, mode, subcommand, pid, started_at, finished_at, exit_code (None when
    killed), signal (e.g. "SIGTERM"), and when known target, port (director), artifact_path,
    all_deployments, password_on_command_line, bosh_client_secret_present and
    bosh_client_secret_sha256 (deployment mode; the secret itself is never recorded).
    """
    return _state.read_invocations(Path(state_dir))


def running(state_dir: Path) -> list[dict[str, Any]]:
    """The invocations still running (their record so far, with ``pid``)."""
    folder = Path(state_dir) / "running"
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def director_job_dir(state_dir: Path, host: str, job: str) -> Path:
    """The files ``job`` backs up on director ``host`` (the world is created on first use)."""
    return load_director(Path(state_dir), host).instances[0].job_dir(job)


def deployment_job_dir(state_dir: Path, deployment: str, instance: str, job: str) -> Path:
    """The files ``job`` backs up on ``instance`` (``group/index``) of ``deployment``."""
    group, _, index = instance.partition("/")
    found = load_deployment(Path(state_dir), deployment).find_instance(group, index)
    if found is None:
        raise KeyError(f"{deployment} has no instance {instance}")
    return found.job_dir(job)
