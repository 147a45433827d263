"""How fast an artifact file streams off the jumpbox through ``ssh_stream.open_read``.

A real local sshd serves a random file (1 GiB by default). Each measurement runs in a fresh
process (so its peak RSS is its own); median of --reps runs, modes interleaved:

- ``openssh``: ``ssh -c aes128-gcm@openssh.com ... cat FILE > /dev/null`` (the baseline);
- ``default``: ``open_read`` on a plain paramiko connection: aes128-ctr + hmac-sha2-256,
  2 MiB window, 32 KiB packets, 32 KiB reads, paramiko's 512 MiB client rekey;
- ``tuned``: ``open_read`` on ``SshJumpbox`` as shipped (AES-GCM, 16 MiB window, 256 KiB
  packets, whole-buffer reads, rekeying left to sshd), into a 1 MiB buffer;
- ``tuned+sha256``: the same, hashing every byte as the upload pipeline does.

MB/s is wall-clock throughput (10^6 bytes/s); ``cpu MB/s`` is bytes per CPU-second of the
reading process, steadier than wall time on a shared machine.

Usage: .venv/bin/python benchmarks/bench_ssh_read.py [--mib 1024] [--reps 3] [--modes ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODES = ("openssh", "default", "tuned", "tuned+sha256")


class _PlainConnection:
    """A paramiko SSHClient with all of paramiko's defaults (no transport factory)."""

    def __init__(self, box: dict[str, str]) -> None:
        import paramiko

        self._client = paramiko.SSHClient()
        self._client.load_host_keys(box["known_hosts"])
        self._client.connect(
            box["host"],
            port=int(box["port"]),
            username=box["user"],
            key_filename=box["key"],
            allow_agent=False,
            look_for_keys=False,
        )
        self.host = f"[{box['host']}]:{box['port']}"

    @property
    def transport(self) -> Any:
        return self._client.get_transport()

    def close(self) -> None:
        self._client.close()


def one(mode: str, box: dict[str, str]) -> dict[str, Any]:
    """One measurement in this process."""
    from bbr_orchestrator.adapters import ssh_stream
    from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings

    conn: Any
    if mode == "default":
        ssh_stream.WINDOW_SIZE = 2 * 1024 * 1024
        ssh_stream.MAX_PACKET_SIZE = 32 * 1024
        ssh_stream.RECV_SIZE = 32 * 1024
        conn = _PlainConnection(box)
        buffer = bytearray(32 * 1024)
    else:
        settings = SshSettings(
            host=box["host"],
            port=int(box["port"]),
            user=box["user"],
            private_key_file=Path(box["key"]),
            known_hosts_file=Path(box["known_hosts"]),
        )
        conn = SshJumpbox.connect(settings)
        buffer = bytearray(1024 * 1024)
    view = memoryview(buffer)
    digest = hashlib.sha256()
    total = 0
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        stream = ssh_stream.open_read(conn, box["file"])
        while n := stream.readinto(view):
            if mode == "tuned+sha256":
                digest.update(view[:n])
            total += n
        stream.close()
        error = None
    except Exception as exc:  # noqa: BLE001 - a benchmark reports what broke
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - wall
    cpu_seconds = time.process_time() - cpu
    cipher = conn.transport.remote_cipher if conn.transport is not None else "?"
    conn.close()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "bytes": total,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cipher": cipher,
        "error": error,
    }


def openssh(box: dict[str, str]) -> dict[str, Any]:
    argv = [
        "ssh",
        "-F", "/dev/null",
        "-c", "aes128-gcm@openssh.com",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={box['known_hosts']}",
        "-i", box["key"],
        "-p", box["port"],
        f"{box['user']}@{box['host']}",
        f"cat {box['file']}",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": float("nan"),  # RUSAGE_CHILDREN would mix in the Python runs
        "bytes": int(box["size"]),
        "peak_rss_mib": float("nan"),
        "cipher": "aes128-gcm@openssh.com",
        "error": None,
    }


def measure(mode: str, box: dict[str, str]) -> dict[str, Any]:
    if mode == "openssh":
        return openssh(box)
    out = subprocess.run(
        [sys.executable, __file__, "--one", mode, json.dumps(box)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def make_file(path: Path, mib: int) -> None:
    with path.open("wb") as out:
        for _ in range(mib):
            out.write(os.urandom(1024 * 1024))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="size of the file read, MiB")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--one", nargs=2, metavar=("MODE", "BOX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        mode, box = args.one
        print(json.dumps(one(mode, json.loads(box))))
        return

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bbr_orchestrator.sandbox.sshd import running_sshd

    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory() as tmp, running_sshd(Path(tmp) / "sshd") as jumpbox:
        data = Path(tmp) / "artifact.tar"
        make_file(data, args.mib)
        box = {
            "host": jumpbox.host,
            "port": str(jumpbox.port),
            "user": jumpbox.user,
            "key": str(jumpbox.client_key_path),
            "known_hosts": str(jumpbox.known_hosts_path),
            "file": str(data),
            "size": str(data.stat().st_size),
        }
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for _ in range(args.reps):
            for mode in modes:
                runs[mode].append(measure(mode, box))
        print(f"{args.mib} MiB, median of {args.reps}; {os.cpu_count()} CPUs")
        print(f"{'mode':<14} {'MB/s':>6} {'cpu MB/s':>9} {'peak RSS':>9}  all MB/s  cipher")
        for mode in modes:
            good = [r for r in runs[mode] if r["error"] is None]
            for failed in (r for r in runs[mode] if r["error"] is not None):
                print(f"{mode:<14} FAILED after {failed['bytes']} bytes: {failed['error']}")
            if not good:
                continue
            size = int(box["size"])
            rates = [size / r["seconds"] / 1e6 for r in good]
            cpu = statistics.median(size / r["cpu_seconds"] / 1e6 for r in good)
            rss = statistics.median(r["peak_rss_mib"] for r in good)
            shown = " ".join(f"{rate:.0f}" for rate in rates)
            print(
                f"{mode:<14} {statistics.median(rates):>6.0f} {cpu:>9.0f} {rss:>8.1f}M  "
                f"[{shown}]  {good[0]['cipher']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
