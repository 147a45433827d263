"""Run as ``python -m tests.integration.upload_child JOB_JSON``: one artifact upload in a process
of its own, which reports its own peak RSS (VmHWM) and nothing else's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bbr_orchestrator.actions.session import Session
from bbr_orchestrator.actions.store_artifact import ArtifactSource, store_artifact
from bbr_orchestrator.actions.upload import StreamSettings
from bbr_orchestrator.adapters.allocator import tune_allocator
from bbr_orchestrator.adapters.clock import SystemClock
from bbr_orchestrator.adapters.s3 import S3ObjectStore, make_client
from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings
from bbr_orchestrator.config.schema import ObjectStoreConfig
from bbr_orchestrator.core.models import TargetKind

MiB = 1024 * 1024


def main(job: dict[str, str | int]) -> None:
    tune_allocator()  # as the CLI does
    ssh = SshSettings(
        host=str(job["host"]),
        port=int(job["port"]),
        user=str(job["user"]),
        private_key_file=Path(str(job["key"])),
        known_hosts_file=Path(str(job["known_hosts"])),
    )
    config = ObjectStoreConfig.model_validate(
        {
            "endpoint_url": job["endpoint_url"],
            "bucket": job["bucket"],
            "prefix": "bbr",
            "region": job["region"],
            "addressing_style": "path",
        }
    )
    store = S3ObjectStore(make_client(config), str(job["bucket"]), "bbr")
    clock = SystemClock()
    source = ArtifactSource(
        run_id=str(job["run_id"]),
        target="big-deployment",
        target_kind=TargetKind.DEPLOYMENT,
        workdir=str(job["workdir"]),
        prefix="bbr",
        bbr_version=None,
        orchestrator_version="test",
        started_at=clock.now(),
    )
    settings = StreamSettings(parts_in_flight=2, min_part_size=int(job["part_mib"]) * MiB)

    def connect() -> SshJumpbox:
        return SshJumpbox.connect(ssh)

    session = Session(connect(), connect)
    try:
        manifest = store_artifact(session, store, clock, source, settings=settings)
    finally:
        session.current.close()
    members = sum(o.member_checksums for o in manifest.objects)
    report = {"objects": len(manifest.objects), "members": members, "peak": _peak_rss()}
    print(json.dumps(report))


def _peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM of its own address space. (wait4's ru_maxrss
    would also count the parent's pages at fork time, which a big pytest worker inflates.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
