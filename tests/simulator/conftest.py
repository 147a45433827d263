"""Fixtures for the bbr simulator's contract tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .simkit import Sim, make_sim


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    """A freshly installed simulator with its own state dir and working dir."""
    return make_sim(tmp_path)
