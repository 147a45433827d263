"""A director or deployment as bbr sees it: instances, their jobs, their busy marker and locks."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import state

ARTIFACT_DIRECTORY = "/var/vcap/store/bbr-backup"
BACKUP_SCRIPTS = ("pre-backup-lock", "backup", "post-backup-unlock")
RESTORE_SCRIPTS = ("pre-restore-lock", "restore", "post-restore-unlock")
ALL_SCRIPTS = ("metadata", *BACKUP_SCRIPTS, *RESTORE_SCRIPTS)


@dataclass(frozen=True)
class Instance:
    """One VM: ``bosh/0`` for a director, ``<group>/<uuid>`` for a deployment instance."""

    group: str
    index: str
    id: str
    root: Path

    @property
    def ident(self) -> str:
        """How bbr names the instance in its messages."""
        return f"{self.group}/{self.id}"

    @property
    def address(self) -> str:
        """``group/index``: how faults name an instance."""
        return f"{self.group}/{self.index}"

    @property
    def busy_marker(self) -> Path:
        return self.root / "store" / "bbr-backup"

    def jobs(self) -> list[str]:
        jobs_dir = self.root / "jobs"
        if not jobs_dir.is_dir():
            return []
        return sorted(p.name for p in jobs_dir.iterdir() if p.is_dir())

    def job_dir(self, job: str) -> Path:
        return self.root / "jobs" / job

    def staging_dir(self, job: str) -> Path:
        return self.busy_marker / job

    def artifact_name(self, job: str) -> str:
        return f"{self.group}-{self.index}-{job}.tar"

    def set_locked(self, job: str, locked: bool) -> None:
        marker = self.root / "locks" / job
        if locked:
            marker.parent.mkdir(exist_ok=True)
            marker.touch()
        else:
            marker.unlink(missing_ok=True)

    def locked_jobs(self) -> list[str]:
        locks = self.root / "locks"
        return sorted(p.name for p in locks.iterdir()) if locks.is_dir() else []


@dataclass(frozen=True)
class Target:
    """What one bbr run acts on: a director (one instance) or a deployment."""

    kind: str  # "director" or "deployment"
    name: str
    root: Path
    instances: tuple[Instance, ...]
    lock_order: tuple[str, ...]

    def ordered_jobs(self) -> list[tuple[Instance, str]]:
        """Every (instance, job) in locking order: jobs named in lock_order first, in that order."""
        pairs = [(inst, job) for inst in self.instances for job in inst.jobs()]

        def rank(pair: tuple[Instance, str]) -> tuple[int, str, str, int]:
            inst, job = pair
            position = (
                self.lock_order.index(job) if job in self.lock_order else len(self.lock_order)
            )
            index = int(inst.index) if inst.index.isdigit() else 0
            return (position, job, inst.group, index)

        return sorted(pairs, key=rank)

    def busy_instances(self) -> list[Instance]:
        return [inst for inst in self.instances if inst.busy_marker.exists()]

    def find_instance(self, group: str, index: str) -> Instance | None:
        for inst in self.instances:
            if inst.group == group and inst.index == index:
                return inst
        return None

    def detected_orders(self) -> list[str]:
        """bbr's ``Detected order: a should be locked before b during backup`` facts."""
        present = {job for _, job in self.ordered_jobs()}
        chain = [job for job in self.lock_order if job in present]
        return [f"{chain[i]} should be locked before {chain[i + 1]}" for i in range(len(chain) - 1)]

    def manifest(self) -> str:
        """A small BOSH manifest for ``--with-manifest``."""
        lines = [f"name: {self.name}", "instance_groups:"]
        groups: dict[str, list[Instance]] = {}
        for inst in self.instances:
            groups.setdefault(inst.group, []).append(inst)
        for group, members in groups.items():
            lines += [f"- name: {group}", f"  instances: {len(members)}", "  jobs:"]
            for job in sorted({job for inst in members for job in inst.jobs()}):
                lines.append(f"  - name: {job}")
        return "\n".join(lines) + "\n"


def _lock_order(root: Path) -> tuple[str, ...]:
    path = root / "world.json"
    if not path.exists():
        return ()
    return tuple(json.loads(path.read_text(encoding="utf-8")).get("lock_order", []))


def load_director(state_dir: Path, host: str) -> Target:
    root = state.director_root(state_dir, host)
    inst = Instance(group="bosh", index="0", id="0", root=root)
    return Target("director", host, root, (inst,), _lock_order(root))


def load_deployment(state_dir: Path, name: str) -> Target:
    root = state.deployment_root(state_dir, name)
    instances = []
    groups_dir = root / "instances"
    for group_dir in sorted(p for p in groups_dir.iterdir() if p.is_dir()):
        for index_dir in sorted(p for p in group_dir.iterdir() if p.is_dir()):
            stable = uuid.uuid5(
                uuid.NAMESPACE_URL, f"bbrsim:{name}/{group_dir.name}/{index_dir.name}"
            )
            instances.append(Instance(group_dir.name, index_dir.name, str(stable), index_dir))
    return Target("deployment", name, root, tuple(instances), _lock_order(root))


def remove_busy_marker(inst: Instance) -> None:
    if inst.busy_marker.exists():
        shutil.rmtree(inst.busy_marker)
    store = inst.busy_marker.parent
    if store.is_dir() and not any(store.iterdir()):
        store.rmdir()
