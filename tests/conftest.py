"""Shared fixtures: the test bed of real processes on 127.0.0.1.

Thin wrappers around :mod:`bbr_orchestrator.sandbox`. Session-scoped servers
are per pytest-xdist worker (each worker is its own session, with its own
temp dir and free ports), and are stopped even when tests fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server, running_s3_server
from bbr_orchestrator.sandbox.sshd import Jumpbox, running_sshd


@pytest.fixture(scope="session")
def jumpbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jumpbox]:
    """sshd on 127.0.0.1 whose sessions find the bbr and om simulators first on PATH."""
    from bbr_orchestrator.sandbox import bbrsim, omsim  # lazy: only tests that need bbr pay

    base = tmp_path_factory.mktemp("jumpbox")
    bin_dir, state_dir, om_state = base / "bin", base / "bbr-state", base / "om-state"
    bbrsim.install(bin_dir, state_dir)
    omsim.install(bin_dir, om_state)
    env = {"BBR_SIM_STATE": str(state_dir), omsim.STATE_ENV: str(om_state)}
    with running_sshd(base / "sshd", bin_dir=bin_dir, env=env) as box:
        yield box


@pytest.fixture(scope="session")
def bbr_state(jumpbox: Jumpbox) -> Path:
    """The bbr simulator's state dir behind ``jumpbox`` (for ``bbrsim.set_faults`` and friends)."""
    return Path(jumpbox.env["BBR_SIM_STATE"])


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS (strict S3: SigV4, checksums, 5 MiB parts, versioning, object lock)."""
    with running_s3_server("seaweedfs", tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto in server mode (fast, in memory, lax about checksums)."""
    with running_s3_server("moto", tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def bucket() -> Iterator[BucketFactory]:
    """``bucket(server, versioning=False, object_lock=False) -> name``; deleted after the test."""
    factory = BucketFactory()
    yield factory
    factory.cleanup()
