"""The installed `bbr-orchestrator` console script, run as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "bbr-orchestrator.example.yml"
EXE = str(Path(sys.executable).parent / "bbr-orchestrator")


def cli(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [EXE, *(["--config", str(config)] if config else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Path:
    """The example config pointed at a SQLite catalog under a temporary state dir."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["state_dir"] = str(tmp_path / "state")
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of the CLI, subcommands of groups included, as argv prefixes."""
    paths: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


def test_every_command_has_help() -> None:
    """--help works on every registered command (found by walking the CLI, so a new command is
    covered without listing it) and the top level documents the exit codes."""
    from bbr_orchestrator.cli.app import cli as group

    top = cli("--help")
    assert top.returncode == 0 and "Exit codes:" in top.stdout
    paths = _command_paths(group)
    assert {("drill",), ("restore",), ("verify",), ("runs", "show")} <= set(paths)
    for args in paths:
        result = cli(*args, "--help")
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage:" in result.stdout


def test_config_validate_reports_five_mistakes(tmp_path: Path) -> None:
    """A file with five mistakes prints five path-named errors and exits 2."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["plans"][0]["schedule"] = "0 2 * *"
    data["plans"][0]["timezone"] = "Mars/Olympus"
    data["jumpboxes"][0]["port"] = 0
    data["targets"][1]["client_secret"] = "hunter2"
    data["targets"][2]["jumpbox"] = "jumpbox-7"
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = cli("config", "validate", str(bad))
    assert result.returncode == 2
    lines = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    assert len(lines) == 5, result.stderr
    assert {line.split(":", 1)[0] for line in lines} == {
        "plans[0].schedule",
        "plans[0].timezone",
        "jumpboxes[0].port",
        "targets[1].client_secret",
        "targets[2].jumpbox",
    }
    assert f"{bad}: 5 config errors" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_config_validate_refuses_a_drill_into_its_source(tmp_path: Path) -> None:
    """A drill whose target is its own source is refused by `config validate` (exit 2, path)."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    drill = data["plans"][0]["drills"][0]
    drill["target"] = drill["source"]
    bad = tmp_path / "drill.yml"
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = cli("config", "validate", str(bad))
    assert result.returncode == 2
    assert "plans[0].drills[0]" in result.stderr and "restores over it" in result.stderr


def test_config_validate_accepts_the_example_and_prints_it() -> None:
    """`config example` prints the checked-in example, and `config validate` accepts it (exit 0)."""
    assert cli("config", "example").stdout == EXAMPLE.read_text(encoding="utf-8")
    result = cli("config", "validate", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    """A command without a readable config names the file and exits 2."""
    result = cli("runs", "list", config=tmp_path / "absent.yml")
    assert result.returncode == 2
    assert f"{tmp_path / 'absent.yml'}" in result.stderr and "file not found" in result.stderr


def test_catalog_commands_refuse_an_unmigrated_catalog(sqlite_config: Path) -> None:
    """`runs list` on an empty catalog exits 3 and says to run `db upgrade`; after it, it works."""
    refused = cli("runs", "list", config=sqlite_config)
    assert refused.returncode == 3
    assert "bbr-orchestrator db upgrade" in refused.stderr
    assert cli("db", "current", config=sqlite_config).returncode == 3
    upgraded = cli("db", "upgrade", config=sqlite_config)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "migrated from empty" in upgraded.stdout
    assert "already at" in cli("db", "upgrade", config=sqlite_config).stdout
    assert cli("db", "current", config=sqlite_config).returncode == 0
    listed = cli("runs", "list", "--json", config=sqlite_config)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_runs_show_unknown_id_exits_4(sqlite_config: Path) -> None:
    """`runs show` of an id that is not in the catalog names it and exits 4."""
    assert cli("db", "upgrade", config=sqlite_config).returncode == 0
    result = cli("runs", "show", "20261127T000000Z-deadbeef", config=sqlite_config)
    assert result.returncode == 4
    assert "20261127T000000Z-deadbeef" in result.stderr


def test_bad_time_filter_is_a_usage_error(sqlite_config: Path) -> None:
    """`runs list --since` with garbage is a usage error that shows the accepted forms."""
    result = cli("runs", "list", "--since", "yesterday-ish", config=sqlite_config)
    assert result.returncode == 2
    assert "24h" in result.stderr
