"""A real OpenSSH ``sshd`` on 127.0.0.1 with its own config and keys: the test jumpbox.

Everything (config, host keys, client key, authorized_keys, known_hosts, log)
lives under one directory; the system's /etc/ssh is never read for keys or
written. The only path outside it is sshd's privilege-separation directory
``/run/sshd``, created when missing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bbr_orchestrator.errors import SandboxError
from bbr_orchestrator.sandbox import _proc
from bbr_orchestrator.sandbox.ports import LOOPBACK, free_port

COMPONENT = "sshd"
SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MARKER = "BBR_SANDBOX_SSHD"
_ATTEMPTS = 3


@dataclass(frozen=True)
class Jumpbox:
    """A running sshd and everything a client needs to reach it with host key checking."""

    host: str
    port: int
    user: str
    client_key_path: Path
    known_hosts_path: Path
    host_key_fingerprint: str
    """SHA256 fingerprint of the ed25519 host key, as ``ssh-keygen -lf`` prints it."""
    host_public_key: str
    """The ed25519 host key as ``ssh-ed25519 AAAA...``."""
    log_path: Path
    config_path: Path
    base_dir: Path
    bin_dir: Path | None
    env: Mapping[str, str]
    startup_seconds: float
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    def ssh_argv(self, *remote_command: str) -> list[str]:
        """An OpenSSH client argv that logs in with strict host key checking."""
        return [
            "ssh",
            "-F", "/dev/null",
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f'UserKnownHostsFile="{self.known_hosts_path}"',
            "-o", "ConnectTimeout=10",
            "-i", str(self.client_key_path),
            "-p", str(self.port),
            f"{self.user}@{self.host}",
            *remote_command,
        ]  # fmt: skip

    def log_tail(self, lines: int = 40) -> str:
        """The last lines sshd wrote to its log."""
        return _proc.log_tail(self.log_path, lines)


def _keygen(path: Path, key_type: str, comment: str) -> str:
    """Generate a key pair without passphrase; return the public key line."""
    for stale in (path, path.with_name(path.name + ".pub")):
        stale.unlink(missing_ok=True)
    result = subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SandboxError(COMPONENT, f"ssh-keygen -t {key_type} failed: {result.stderr.strip()}")
    return path.with_name(path.name + ".pub").read_text().strip()


def fingerprint(public_key_line: str) -> str:
    """``SHA256:...`` of an OpenSSH public key line, exactly as ``ssh-keygen -lf`` prints it."""
    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _setenv_line(env: Mapping[str, str]) -> str:
    parts = []
    for name, value in env.items():
        if not name.isidentifier() or any(c in value for c in '"\n\\'):
            raise ValueError(f"cannot pass {name!r} through sshd SetEnv: bad name or value")
        parts.append(f'"{name}={value}"')
    return "SetEnv " + " ".join(parts)


def _write_config(base: Path, port: int, user: str, env: Mapping[str, str]) -> Path:
    if any(c in str(base) for c in '"%\n'):
        raise ValueError(f"sshd config cannot quote the directory {base}")
    lines = [
        f"ListenAddress {LOOPBACK}:{port}",
        f'HostKey "{base / "ssh_host_ed25519_key"}"',
        f'HostKey "{base / "ssh_host_ecdsa_key"}"',
        "PidFile none",
        f'AuthorizedKeysFile "{base / "authorized_keys"}"',
        f"AllowUsers {user}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "Subsystem sftp internal-sftp",
        "MaxSessions 64",
        "MaxStartups 200:30:400",
        "MaxAuthTries 10",
        "LoginGraceTime 30",
        "ClientAliveInterval 15",
        "ClientAliveCountMax 4",
        "LogLevel VERBOSE",
        _setenv_line(env),
    ]
    config = base / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    return config


def _banner_probe(port: int) -> _proc.Probe:
    def probe() -> str | None:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
                sock.settimeout(2.0)
                banner = sock.recv(256)
        except OSError as exc:
            return f"connect to {LOOPBACK}:{port}: {exc}"
        if not banner.startswith(b"SSH-2.0-"):
            return f"unexpected banner {banner[:40]!r}"
        return None

    return probe


def _ensure_privsep_dir() -> None:
    try:
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise SandboxError(COMPONENT, f"cannot create {PRIVSEP_DIR}: {exc}") from exc


def _launch(
    base: Path, user: str, session_env: Mapping[str, str], timeout: float
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start sshd on a free port (retrying if another process takes it first)."""
    log_path = base / "sshd.log"
    for attempt in range(1, _ATTEMPTS + 1):
        port = free_port()
        config = _write_config(base, port, user, session_env)
        check = subprocess.run(
            [str(SSHD), "-t", "-f", str(config)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise SandboxError(COMPONENT, f"sshd -t rejected {config}: {check.stderr.strip()}")
        proc = _proc.spawn([str(SSHD), "-D", "-e", "-f", str(config)], log_path=log_path, cwd=base)
        try:
            _proc.wait_ready(
                proc, _banner_probe(port), component=COMPONENT, log_path=log_path, timeout=timeout
            )
        except SandboxError:
            _proc.terminate(proc)
            if attempt < _ATTEMPTS and "Address already in use" in _proc.log_tail(log_path, 10):
                continue
            raise
        return proc, port, config
    raise SandboxError(COMPONENT, f"no free port after {_ATTEMPTS} attempts")


def start_sshd(
    base_dir: Path,
    *,
    bin_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    skip_shell_rc: bool = True,
    timeout: float = 15.0,
) -> Jumpbox:
    """Generate keys and config under ``base_dir`` and start sshd on a free port.

    Sessions get ``PATH=bin_dir:<standard path>`` and ``env`` through ``SetEnv``.
    bash sources ~/.bashrc for SSH commands only at shell level 1, and this
    machine's root ~/.bashrc prepends pyenv and cargo to PATH (and costs ~0.1 s
    per command), so by default sessions also get ``SHLVL=1``: the session
    shell then runs at level 2 and leaves PATH as set here.
    """
    if not SSHD.exists():
        raise SandboxError(COMPONENT, f"{SSHD} not found (apt-get install openssh-server)")
    started = time.monotonic()
    base = base_dir.resolve()
    base.mkdir(parents=True, exist_ok=True)
    _ensure_privsep_dir()
    user = pwd.getpwuid(os.getuid()).pw_name
    host_public = _keygen(base / "ssh_host_ed25519_key", "ed25519", "sandbox-host")
    host_public = " ".join(host_public.split()[:2])  # without the comment
    _keygen(base / "ssh_host_ecdsa_key", "ecdsa", "sandbox-host")
    client_key = base / "client_ed25519"
    (base / "authorized_keys").write_text(_keygen(client_key, "ed25519", "sandbox-client") + "\n")
    bin_dir = None if bin_dir is None else bin_dir.resolve()
    session_env = {"PATH": BASE_PATH if bin_dir is None else f"{bin_dir}:{BASE_PATH}"}
    if skip_shell_rc:
        session_env["SHLVL"] = "1"
    session_env.update(env or {})
    # Every session process inherits this; stop_sshd kills whatever still carries it.
    session_env[MARKER] = uuid.uuid4().hex

    proc, port, config = _launch(base, user, session_env, timeout)
    known_hosts = base / "known_hosts"
    known_hosts.write_text(f"[{LOOPBACK}]:{port} {host_public}\n")
    return Jumpbox(
        host=LOOPBACK,
        port=port,
        user=user,
        client_key_path=client_key,
        known_hosts_path=known_hosts,
        host_key_fingerprint=fingerprint(host_public),
        host_public_key=host_public,
        log_path=base / "sshd.log",
        config_path=config,
        base_dir=base,
        bin_dir=bin_dir,
        env=dict(session_env),
        startup_seconds=time.monotonic() - started,
        process=proc,
    )


def stop_sshd(jumpbox: Jumpbox, grace: float = 3.0) -> None:
    """Stop sshd and every session process it spawned."""
    _proc.terminate(jumpbox.process, grace, marker=(MARKER, jumpbox.env[MARKER]))


@contextmanager
def running_sshd(
    base_dir: Path,
    *,
    bin_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    skip_shell_rc: bool = True,
    timeout: float = 15.0,
) -> Iterator[Jumpbox]:
    """Start sshd for the ``with`` block; always stop it afterwards."""
    jumpbox = start_sshd(
        base_dir, bin_dir=bin_dir, env=env, skip_shell_rc=skip_shell_rc, timeout=timeout
    )
    try:
        yield jumpbox
    finally:
        stop_sshd(jumpbox)
