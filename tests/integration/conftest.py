"""Fixtures for integration tests that run bbr operations: a catalog and jumpbox sessions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog, upgrade
from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings
from bbr_orchestrator.ports import ShellFactory
from bbr_orchestrator.sandbox.sshd import Jumpbox


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[SqlCatalog]:
    """A fresh SQLite catalog at the migration head."""
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    upgrade(url)
    with open_catalog(url) as opened:
        yield opened


@pytest.fixture
def shell(jumpbox: Jumpbox) -> ShellFactory:
    """Opens SSH sessions to the test jumpbox, verifying its host key."""
    settings = SshSettings(
        host=jumpbox.host,
        port=jumpbox.port,
        user=jumpbox.user,
        private_key_file=jumpbox.client_key_path,
        known_hosts_file=jumpbox.known_hosts_path,
    )
    return lambda: SshJumpbox.connect(settings)
