"""How fast bbr's output streams through the SSH adapter, and that memory does not grow with it.

A remote command on a real local sshd prints N MiB of bbr-style debug lines. Each measurement
runs in a fresh process (so peak RSS belongs to it alone), median of --reps runs:

- ``openssh``: the OpenSSH client, output to /dev/null (the baseline: the wire itself);
- ``adapter``: ``SshJumpbox.run`` splitting lines and handing each to a counting sink;
- ``adapter+log``: the same lines through ``RunLogWriter`` into a SQLite catalog, as a run does.

Usage: .venv/bin/python benchmarks/bench_ssh_stream.py [--sizes 16,128] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINE = "[bbr] 2026/11/27 03:59:06 DEBUG - Copying backup for job fake-db on bosh/0 -- chunk done"


def remote_command(mib: int) -> list[str]:
    return ["sh", "-c", f"yes '{LINE}' | head -c {mib * 1024 * 1024}"]


def one(mode: str, mib: int, box: dict[str, str]) -> dict[str, float]:
    """One measurement in this process: seconds and peak RSS."""
    from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings
    from bbr_orchestrator.core.models import LogStream
    from bbr_orchestrator.log import configure_logging

    configure_logging("info", "json")  # as the CLI and daemon run: bbr_output is debug

    settings = SshSettings(
        host=box["host"],
        port=int(box["port"]),
        user=box["user"],
        private_key_file=Path(box["key"]),
        known_hosts_file=Path(box["known_hosts"]),
    )
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    lines = 0

    def count(_stream: LogStream, _text: str) -> None:
        nonlocal lines
        lines += 1

    with SshJumpbox.connect(settings) as shell:
        if mode == "adapter":
            started = time.perf_counter()
            shell.run(remote_command(mib), on_line=count)
        else:
            import structlog

            from bbr_orchestrator.actions.run_log import RunLogWriter
            from bbr_orchestrator.adapters.catalog import open_catalog, upgrade
            from bbr_orchestrator.adapters.clock import SystemClock
            from bbr_orchestrator.core.models import (
                NewRun,
                RunKind,
                TargetKind,
                Trigger,
                new_run_id,
            )

            url = f"sqlite:///{box['tmp']}/bench-{mib}-{time.time_ns()}.sqlite3"
            upgrade(url)
            catalog = open_catalog(url)
            clock = SystemClock()
            run = catalog.create_run(
                NewRun(
                    new_run_id(clock.now(), "0badcafe"),
                    RunKind.BACKUP,
                    "t",
                    TargetKind.DIRECTOR,
                    Trigger.OPERATOR,
                    "bench",
                    clock.now(),
                )
            )
            writer = RunLogWriter(
                catalog, clock, run.id, structlog.get_logger().bind(run_id=run.id)
            )
            started = time.perf_counter()
            shell.run(remote_command(mib), on_line=writer.line)
            writer.flush()
            lines = writer.lines_written
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "peak_rss_mib": peak / 1024,
        "growth_mib": (peak - base_rss) / 1024,
        "lines": lines,
    }


def openssh(mib: int, box: dict[str, str]) -> dict[str, float]:
    argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={box['known_hosts']}",
        "-i",
        box["key"],
        "-p",
        box["port"],
        f"{box['user']}@{box['host']}",
        " ".join(remote_command(mib)[:2]) + f' "{remote_command(mib)[2]}"',
    ]
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": float("nan"),
        "growth_mib": float("nan"),
        "lines": float("nan"),
    }


def measure(mode: str, mib: int, box: dict[str, str]) -> dict[str, float]:
    if mode == "openssh":
        return openssh(mib, box)
    out = subprocess.run(
        [sys.executable, __file__, "--one", mode, str(mib), json.dumps(box)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,128", help="MiB of output, comma-separated")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--one", nargs=3, metavar=("MODE", "MIB", "BOX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        mode, mib, box = args.one
        print(json.dumps(one(mode, int(mib), json.loads(box))))
        return

    from bbr_orchestrator.sandbox.sshd import running_sshd

    with tempfile.TemporaryDirectory() as tmp, running_sshd(Path(tmp) / "sshd") as jumpbox:
        box = {
            "host": jumpbox.host,
            "port": str(jumpbox.port),
            "user": jumpbox.user,
            "key": str(jumpbox.client_key_path),
            "known_hosts": str(jumpbox.known_hosts_path),
            "tmp": tmp,
        }
        print(f"{'mode':<12} {'MiB':>5} {'seconds':>8} {'MiB/s':>7} {'peak RSS':>9} {'growth':>7}")
        for mib in (int(s) for s in args.sizes.split(",")):
            for mode in ("openssh", "adapter", "adapter+log"):
                runs = [measure(mode, mib, box) for _ in range(args.reps)]
                secs = statistics.median(r["seconds"] for r in runs)
                peak = statistics.median(r["peak_rss_mib"] for r in runs)
                growth = statistics.median(r["growth_mib"] for r in runs)
                print(
                    f"{mode:<12} {mib:>5} {secs:>8.2f} {mib / secs:>7.1f} {peak:>8.1f}M "
                    f"{growth:>6.1f}M",
                    flush=True,
                )


if __name__ == "__main__":
    main()
