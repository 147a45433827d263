"""Helpers for the bbr simulator's contract tests: an installed simulator, run as a subprocess."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bbr_orchestrator.sandbox.bbrsim import Faults, install, set_faults

HOST = "10.0.0.6"
DIRECTOR_TARGET = "https://10.0.0.5:25555"
SECRET = "sekret-client-secret-value"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
LOG_LINE = r"\[bbr\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d (INFO|DEBUG|ERROR) - .*"
BACKUP_CLEANUP_FOOTER = (
    "It is recommended that you run `bbr backup-cleanup` to ensure that any temp files are "
    "cleaned up and all jobs are unlocked."
)


@dataclass
class Sim:
    """An installed simulator, its state dir, a working dir, a key and a CA file."""

    bbr: Path
    state: Path
    work: Path
    key: Path
    ca_cert: Path

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The caller's environment minus BOSH_*, CA_CERT and BBR_SIM_*, plus ``extra``."""
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BOSH_", "BBR_SIM_")) and k not in ("CA_CERT", "PYTHONPATH")
        }
        return {**clean, **(extra or {})}

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bbr), *args],
            cwd=cwd or self.work,
            env=self.env(env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def director_args(self, sub: str, *sub_args: str, host: str = HOST) -> list[str]:
        return ["director", "--host", host, "--username", "bbr", "--private-key-path",
                str(self.key), sub, *sub_args]  # fmt: skip

    def director(
        self, sub: str, *sub_args: str, host: str = HOST, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run(*self.director_args(sub, *sub_args, host=host), cwd=cwd)

    def deployment_args(self, sub: str, *sub_args: str, deployment: str | None = "cf") -> list[str]:
        which = ["--deployment", deployment] if deployment else ["--all-deployments"]
        return ["deployment", "--target", DIRECTOR_TARGET, "--username", "admin", *which,
                "--ca-cert", str(self.ca_cert), sub, *sub_args]  # fmt: skip

    def deployment(
        self, sub: str, *sub_args: str, deployment: str | None = "cf", cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        args = self.deployment_args(sub, *sub_args, deployment=deployment)
        return self.run(*args, cwd=cwd, env={"BOSH_CLIENT_SECRET": SECRET})

    def popen(
        self,
        args: list[str],
        env: Mapping[str, str] | None = None,
        blocked: frozenset[int] = frozenset(),
    ) -> subprocess.Popen[str]:
        """Start bbr; ``blocked`` signals arrive blocked in its mask (as some CI runners do)."""

        def block() -> None:
            signal.pthread_sigmask(signal.SIG_BLOCK, blocked)

        return subprocess.Popen(
            [str(self.bbr), *args],
            cwd=self.work,
            env=self.env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=block if blocked else None,
        )

    def faults(self, **fields: Any) -> None:
        set_faults(self.state, Faults(**fields))

    def fresh_dir(self, name: str) -> Path:
        """A new working directory (two backups of one target within a second would collide)."""
        path = self.work / name
        path.mkdir()
        return path

    def artifacts(self, where: Path | None = None) -> list[Path]:
        return sorted(p for p in (where or self.work).iterdir() if p.is_dir())

    def only_artifact(self, where: Path | None = None) -> Path:
        found = self.artifacts(where)
        assert len(found) == 1, found
        return found[0]

    def err_logs(self, where: Path | None = None) -> list[Path]:
        return sorted((where or self.work).glob("bbr-*.err.log"))


def member_hashes(tar_path: Path) -> dict[str, str]:
    """SHA-256 of every regular-file member, computed independently of the simulator."""
    hashes = {}
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                hashes[member.name] = hashlib.sha256(handle.read()).hexdigest()
    return hashes


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its content (None for directories)."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def make_sim(tmp_path: Path) -> Sim:
    """Install the simulator under ``tmp_path`` with a working dir, a director key and a CA."""
    state = tmp_path / "state"
    bbr = install(tmp_path / "bin", state)
    work = tmp_path / "work"
    work.mkdir()
    key = tmp_path / "director.key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    ca_cert = tmp_path / "ca.pem"
    ca_cert.write_text(CA_PEM)
    return Sim(bbr, state, work, key, ca_cert)
