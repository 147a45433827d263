"""How fast TarHasher verifies a streamed tar, next to plain SHA-256 over the same bytes.

Builds a ~256 MiB GNU tar of random data (a few members of different sizes, with `tar -C DIR
-c .` as bbr does) in a temp dir, loads it into memory, then feeds it in ``--chunk``-sized
memoryview slices to ``TarHasher`` and, as the baseline, to one ``hashlib.sha256``. Reports
the median MB/s of ``--reps`` interleaved runs each.

Usage: .venv/bin/python benchmarks/bench_tar_stream.py [--mib 256] [--chunk-kib 8192] [--reps 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bbr_orchestrator.core.tar_stream import TarHasher


def build_tar(directory: Path, mib: int) -> bytes:
    """A GNU tar of random files: one big, a few medium, many small, like a job's dump dir."""
    root = directory / "artifact"
    (root / "sub").mkdir(parents=True)
    big = mib * 3 // 4
    sizes = {"dump.sql": big << 20, "empty-file": 0}
    medium = (mib - big) // 4
    sizes.update({f"sub/part-{i}.bin": medium << 20 for i in range(3)})
    sizes.update({f"sub/small-{i}": 1000 + 37 * i for i in range(200)})
    for name, size in sizes.items():
        with open(root / name, "wb") as out:
            for start in range(0, size, 1 << 24):
                out.write(os.urandom(min(1 << 24, size - start)))
    tar = directory / "bosh-0-fake-db.tar"
    subprocess.run(["tar", "-C", str(root), "-c", "-f", str(tar), "."], check=True)
    return tar.read_bytes()


def timed(data: bytes, chunk: int, work: Callable[[memoryview], None]) -> float:
    view = memoryview(data)
    started = time.perf_counter()
    for start in range(0, len(data), chunk):
        work(view[start : start + chunk])
    return time.perf_counter() - started


def run_hasher(data: bytes, chunk: int) -> float:
    hasher = TarHasher("bench.tar")
    seconds = timed(data, chunk, hasher.feed)
    started = time.perf_counter()
    hasher.close()
    return seconds + time.perf_counter() - started


def run_baseline(data: bytes, chunk: int) -> float:
    digest = hashlib.sha256()
    seconds = timed(data, chunk, digest.update)
    digest.hexdigest()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--chunk-kib", type=int, default=8192)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tar-") as tmp:
        data = build_tar(Path(tmp), args.mib)
    chunk = args.chunk_kib << 10
    mb = len(data) / 1e6
    print(f"tar: {mb:.1f} MB, chunk {args.chunk_kib} KiB, median of {args.reps}")
    runs = (("hashlib.sha256", run_baseline), ("TarHasher", run_hasher))
    times: dict[str, list[float]] = {label: [] for label, _ in runs}
    for _ in range(args.reps):  # interleaved, so drift in CPU speed hits both alike
        for label, run in runs:
            times[label].append(run(data, chunk))
    for label, seconds in ((k, statistics.median(v)) for k, v in times.items()):
        print(f"  {label:<15} {mb / seconds:8.0f} MB/s  ({seconds:.3f} s)")


if __name__ == "__main__":
    main()
