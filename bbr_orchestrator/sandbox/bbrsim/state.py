"""The simulated world under ``$BBR_SIM_STATE``, and the record of every bbr invocation.

Layout::

    directors/<host>/world.json                  {"lock_order": ["fake-db", "fake-blobstore"]}
    directors/<host>/jobs/<job>/...              the files each job backs up (and restore rewrites)
    directors/<host>/store/bbr-backup/           /var/vcap/store/bbr-backup: the "busy" marker
    directors/<host>/locks/<job>                 present while the job is locked
    deployments/<name>/world.json
    deployments/<name>/instances/<group>/<index>/{jobs,store,locks}/...   as for a director
    deployment_secret                            optional: the only BOSH client secret accepted
    faults.json                                  see faults.py
    invocations.jsonl                            one JSON line per finished invocation
    running/<pid>.json                           one file per invocation still running
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .clock import UTC

STATE_ENV = "BBR_SIM_STATE"
DIRECTORS = "directors"
DEPLOYMENTS = "deployments"
DEFAULT_DEPLOYMENTS = ("cf", "p-mysql")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class SimError(Exception):
    """The simulator itself cannot run (bad state dir, bad faults file); not a bbr error."""


def state_dir_from_env(environ: Mapping[str, str]) -> Path:
    """The state dir named by ``$BBR_SIM_STATE``; it must exist."""
    value = environ.get(STATE_ENV, "")
    if not value:
        raise SimError(f"{STATE_ENV} is not set: it must name the simulator's state directory")
    path = Path(value)
    if not path.is_dir():
        raise SimError(f"{STATE_ENV}={value}: no such directory")
    return path


def valid_name(name: str) -> bool:
    """Whether ``name`` can be a director host or deployment name in the world."""
    return bool(_NAME.fullmatch(name)) and ".." not in name


def _dump_sql(label: str, rows: int) -> bytes:
    lines = [f"-- {label}: simulated database dump", "CREATE TABLE t (id INT, v TEXT);"]
    lines += [f"INSERT INTO t VALUES ({i}, 'row {i} of {label}');" for i in range(rows)]  # noqa: S608
    return ("\n".join(lines) + "\n").encode()


def _blob(label: str, size: int) -> bytes:
    seed = hashlib.sha256(label.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _director_files() -> dict[str, bytes]:
    return {
        "jobs/fake-db/dump.sql": _dump_sql("fake-db", 100),
        "jobs/fake-db/empty-file": b"",
        "jobs/fake-blobstore/blobs/aa/blob1": _blob("fake-blobstore blob1", 1024),
    }


def _deployment_files(name: str) -> dict[str, bytes]:
    db = "instances/database/0/jobs/mysql-backup"
    files = {f"{db}/mysql-dump.sql": _dump_sql(f"{name} mysql", 40)}
    for index in ("0", "1"):
        files[f"instances/api/{index}/jobs/cloud-controller-backup/ccdb.sql"] = _dump_sql(
            f"{name} ccdb api/{index}", 20
        )
    return files


def _materialise(final: Path, files: Mapping[str, bytes], lock_order: Sequence[str]) -> Path:
    """Create a world directory atomically (a parallel run may be creating the same one)."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    for relative, content in files.items():
        path = scratch / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (scratch / "world.json").write_text(json.dumps({"lock_order": list(lock_order)}) + "\n")
    try:
        os.rename(scratch, final)
    except OSError:  # somebody else won the race: theirs is as good as ours
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def director_root(state_dir: Path, host: str) -> Path:
    """The director world for ``host`` (created with the default jobs on first use)."""
    files = _director_files()
    return _materialise(state_dir / DIRECTORS / host, files, ("fake-db", "fake-blobstore"))


def deployment_root(state_dir: Path, name: str) -> Path:
    """The deployment world for ``name`` (created with the default instances on first use)."""
    return _materialise(state_dir / DEPLOYMENTS / name, _deployment_files(name), ())


def known_deployments(state_dir: Path) -> list[str]:
    """The deployments the simulated director knows: every world under ``deployments/``."""
    root = state_dir / DEPLOYMENTS
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def create_state_dir(state_dir: Path) -> None:
    """Create the state dir (0700) with the default deployments."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    for sub in (DIRECTORS, DEPLOYMENTS, "running"):
        (state_dir / sub).mkdir(exist_ok=True)
    for name in DEFAULT_DEPLOYMENTS:
        deployment_root(state_dir, name)


def _iso_now() -> str:
    return dt.datetime.now(UTC).isoformat(timespec="milliseconds")


class Recorder:
    """Writes ``running/<pid>.json`` while bbr runs and one ``invocations.jsonl`` line at exit."""

    def __init__(self, state_dir: Path, record: dict[str, Any]) -> None:
        self.state_dir = state_dir
        self.record = dict(record, pid=os.getpid(), started_at=_iso_now())
        self.running_file = state_dir / "running" / f"{os.getpid()}.json"
        self.finished = False

    def start(self) -> None:
        self.running_file.parent.mkdir(exist_ok=True)
        self.running_file.write_text(json.dumps(self.record) + "\n", encoding="utf-8")

    def finish(self, exit_code: int | None, signal_name: str | None = None) -> None:
        """Append the invocation record (once) and remove the running file."""
        if self.finished:
            return
        self.finished = True
        final = dict(self.record, exit_code=exit_code, signal=signal_name, finished_at=_iso_now())
        line = (json.dumps(final) + "\n").encode("utf-8")
        fd = os.open(self.state_dir / "invocations.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        self.running_file.unlink(missing_ok=True)


def secret_facts(environ: Mapping[str, str]) -> dict[str, Any]:
    """Whether ``BOSH_CLIENT_SECRET`` was set, and its SHA-256 (never the value)."""
    secret = environ.get("BOSH_CLIENT_SECRET")
    digest = hashlib.sha256(secret.encode()).hexdigest() if secret is not None else None
    return {"bosh_client_secret_present": secret is not None, "bosh_client_secret_sha256": digest}


def read_invocations(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "invocations.jsonl"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
