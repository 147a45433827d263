"""The README's first command: start a local sandbox and run the main job against it.

Under ``.sandbox/`` (or ``--dir``): a real sshd on 127.0.0.1 as the jumpbox, with the bbr
simulator on its PATH; a SeaweedFS S3 server with a bucket; a SQLite catalog; and a config file
that points at all of them, with every secret in a file referenced as ``{file: ...}``. Then the
installed ``bbr-orchestrator`` CLI runs, step by step, exactly as an operator would run it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from bbr_orchestrator.sandbox import bbrsim, omsim
from bbr_orchestrator.sandbox.s3server import S3Server, running_s3_server
from bbr_orchestrator.sandbox.sshd import Jumpbox, running_sshd

BUCKET = "sandbox-backups"
DIRECTOR_HOST = "10.0.0.6"
DEPLOYMENT = "cf-sandbox"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _secret_file(directory: Path, name: str, value: str) -> str:
    path = directory / name
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def write_config(
    base: Path, jumpbox: Jumpbox, s3: S3Server, bbr_state: Path, metrics_port: int = 9613
) -> Path:
    """The sandbox's config file: every part points at a process started here."""
    secret_dir = base / "secrets"
    secret_dir.mkdir(mode=0o700, exist_ok=True)
    client_secret = secrets.token_urlsafe(24)
    opsman_pw = secrets.token_urlsafe(16)
    (bbr_state / "deployment_secret").write_text(client_secret, encoding="utf-8")
    on_jumpbox = base / "on-jumpbox"
    on_jumpbox.mkdir(exist_ok=True)
    director_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nsandbox\n-----END OPENSSH PRIVATE KEY-----"
    ca_cert = on_jumpbox / "root_ca_certificate"
    ca_cert.write_text("-----BEGIN CERTIFICATE-----\nsandbox\n-----END CERTIFICATE-----\n")
    config: dict[str, Any] = {
        "state_dir": str(base / "state"),
        "object_store": {
            "endpoint_url": s3.endpoint_url,
            "bucket": BUCKET,
            "region": s3.region,
            "addressing_style": "path",
            "credentials": {
                "source": "secrets",
                "access_key_id": {"file": _secret_file(secret_dir, "s3_access_key", s3.access_key)},
                "secret_access_key": {
                    "file": _secret_file(secret_dir, "s3_secret_key", s3.secret_key)
                },
            },
        },
        "jumpboxes": [
            {
                "name": "sandbox-jumpbox",
                "host": jumpbox.host,
                "port": jumpbox.port,
                "user": jumpbox.user,
                "private_key_file": str(jumpbox.client_key_path),
                "known_hosts_file": str(jumpbox.known_hosts_path),
                "work_root": str(base / "jumpbox-work"),
            }
        ],
        "targets": [
            {
                "kind": "opsman",
                "name": "opsman",
                "jumpbox": "sandbox-jumpbox",
                "url": "https://opsman.sandbox.internal",
                "username": "admin",
                "password": {"file": _secret_file(secret_dir, "opsman_password", opsman_pw)},
                "skip_ssl_validation": True,
            },
            {
                "kind": "director",
                "name": "bosh-director",
                "jumpbox": "sandbox-jumpbox",
                "host": DIRECTOR_HOST,
                # Kept here, copied into each run's directory on the jumpbox (0600), then removed.
                "private_key": {"file": _secret_file(secret_dir, "director_key", director_key)},
            },
            {
                "kind": "deployment",
                "name": "cf",
                "jumpbox": "sandbox-jumpbox",
                "bosh_target": f"https://{DIRECTOR_HOST}:25555",
                "client": "bbr_client",
                "client_secret": {
                    "file": _secret_file(secret_dir, "bosh_client_secret", client_secret)
                },
                "ca_cert_path": str(ca_cert),
                "deployment": DEPLOYMENT,
                "with_manifest": True,
            },
        ],
        "plans": [
            {
                "name": "nightly",
                "targets": ["bosh-director", "cf"],
                "schedule": "0 2 * * *",
                "timezone": "UTC",
            },
            {
                # Fires within 20 seconds of the daemon starting (6 fields: seconds first).
                "name": "sandbox-demo",
                "targets": ["opsman", "bosh-director", "cf"],
                "schedule": "0,20,40 * * * * *",
                "timezone": "UTC",
            },
        ],
        "metrics": {"listen_address": "127.0.0.1", "port": metrics_port},
        "daemon": {"heartbeat_interval": "2s", "stale_after": "10s", "preflight_checks": True},
    }
    path = base / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _cli() -> str:
    found = shutil.which("bbr-orchestrator", path=str(Path(sys.executable).parent))
    return found or "bbr-orchestrator"


def step(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one CLI command as an operator would, echoing it and its output."""
    argv = [_cli(), "--config", str(config), *args]
    print(f"\n$ bbr-orchestrator {' '.join(args)}", flush=True)
    result = subprocess.run(argv, text=True, capture_output=True, check=False)
    sys.stdout.write(result.stdout)
    sys.stdout.write(result.stderr)
    sys.stdout.flush()
    if check and result.returncode != 0:
        raise SystemExit(f"sandbox: `bbr-orchestrator {' '.join(args)}` exited {result.returncode}")
    return result


def run_id_of(result: subprocess.CompletedProcess[str]) -> str:
    """The run id from ``run``'s first output line (``run <id>: ...``)."""
    return result.stdout.split()[1].rstrip(":")


def main_job(config: Path, metrics_port: int) -> None:
    """Validate, migrate, back up both targets by hand, then run the daemon until its plan
    has produced a complete restore point; show it all and where the metrics are."""
    step(config, "config", "validate")
    step(config, "db", "upgrade")
    step(config, "run", "pre-backup-check", "bosh-director")
    backup = step(config, "run", "backup", "bosh-director")
    step(config, "run", "pre-backup-check", "cf")
    step(config, "run", "backup", "cf")
    step(config, "runs", "list")
    step(config, "runs", "show", run_id_of(backup))
    step(config, "runs", "logs", run_id_of(backup))
    step(config, "plans")
    run_daemon(config, f"http://127.0.0.1:{metrics_port}/metrics")


def run_daemon(config: Path, metrics_url: str) -> None:
    """Start the daemon, wait for plan sandbox-demo's first restore point (Ops Manager export,
    director, deployment), show it and the metrics, stop the daemon (SIGTERM)."""
    log_path = config.parent / "daemon.log"
    print(f"\n$ bbr-orchestrator daemon    (log: {log_path})", flush=True)
    with log_path.open("wb") as sink:
        daemon = subprocess.Popen(
            [_cli(), "--config", str(config), "daemon"], stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        print(f"metrics: {metrics_url}", flush=True)
        point = _wait_for_restore_point(config, "sandbox-demo", daemon, timeout=120)
        step(config, "points", "--plan", "sandbox-demo")
        with urllib.request.urlopen(metrics_url, timeout=10) as response:  # noqa: S310 - loopback
            lines = response.read().decode().splitlines()
        print(f"\n$ curl -s {metrics_url} | grep ^bbr_orchestrator")
        print("\n".join(line for line in lines if line.startswith("bbr_orchestrator")))
        print(f"\nrestore point {point['id']}: {point['state']} ({point['summary']})", flush=True)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=120)
        print(f"daemon stopped (SIGTERM), exit code {code}", flush=True)
    if code != 0:
        raise SystemExit(f"sandbox: the daemon exited {code}; see {log_path}")


def _wait_for_restore_point(
    config: Path, plan: str, daemon: subprocess.Popen[bytes], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"sandbox: the daemon exited {daemon.returncode}")
        listed = subprocess.run(
            [_cli(), "--config", str(config), "points", "--plan", plan, "--json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        found = json.loads(listed.stdout or "[]") if listed.returncode == 0 else []
        done = [p for p in found if p["state"] not in ("queued", "running")]
        if done:
            return dict(done[-1])
        time.sleep(1)
    raise SystemExit(f"sandbox: no restore point of {plan} finished within {timeout:.0f}s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bbr_orchestrator.sandbox", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dir", type=Path, default=Path(".sandbox"), help="sandbox directory")
    args = parser.parse_args(argv)
    base = args.dir.resolve()
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(mode=0o700, parents=True)
    bin_dir, bbr_state = base / "jumpbox" / "bin", base / "jumpbox" / "bbr-state"
    om_state = base / "jumpbox" / "om-state"
    bbrsim.install(bin_dir, bbr_state)
    omsim.install(bin_dir, om_state)
    print(f"sandbox in {base}: starting sshd (jumpbox) and SeaweedFS (S3)...", flush=True)
    with ExitStack() as stack:
        jumpbox = stack.enter_context(
            running_sshd(
                base / "sshd",
                bin_dir=bin_dir,
                env={"BBR_SIM_STATE": str(bbr_state), omsim.STATE_ENV: str(om_state)},
            )
        )
        s3 = stack.enter_context(running_s3_server("seaweedfs", base / "s3"))
        s3.create_bucket(BUCKET)
        metrics_port = _free_port()
        config = write_config(base, jumpbox, s3, bbr_state, metrics_port)
        print(
            f"jumpbox: {jumpbox.user}@{jumpbox.host}:{jumpbox.port} "
            f"(host key {jumpbox.host_key_fingerprint})"
        )
        print(f"S3: {s3.endpoint_url} bucket {BUCKET}; config: {config}")
        main_job(config, metrics_port)
    print(
        f"\nsandbox stopped. The catalog stays: "
        f"{os.path.relpath(_cli())} -c {os.path.relpath(config)} runs list"
    )
