"""The simulator's own interface: install(), faults on demand, the invocation record."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bbr_orchestrator.sandbox.bbrsim import (
    FaultError,
    Faults,
    clear_faults,
    invocations,
    is_busy,
    set_faults,
)

from .simkit import HOST, Sim, make_sim


def test_install_creates_wrapper_and_private_state(tmp_path: Path) -> None:
    """install() writes an executable /bin/sh wrapper and a 0700 state dir with two deployments."""
    sim = make_sim(tmp_path)
    assert sim.bbr.read_text().startswith("#!/bin/sh\n")
    assert sim.bbr.stat().st_mode & stat.S_IXUSR
    assert stat.S_IMODE(sim.state.stat().st_mode) == 0o700
    assert sorted(p.name for p in (sim.state / "deployments").iterdir()) == ["cf", "p-mysql"]


def test_wrapper_keeps_a_state_dir_set_by_the_environment(sim: Sim, tmp_path: Path) -> None:
    """An already exported BBR_SIM_STATE (sshd's SetEnv) wins over the installed default."""
    other = make_sim(tmp_path / "other")
    result = sim.run(*sim.director_args("backup"), env={"BBR_SIM_STATE": str(other.state)})
    assert result.returncode == 0
    assert invocations(sim.state) == []
    assert [r["subcommand"] for r in invocations(other.state)] == ["backup"]


def test_fault_scoped_to_another_target_is_ignored(sim: Sim) -> None:
    """A fault scoped to one target does not affect another."""
    sim.faults(target="10.9.9.9", fail_scripts=["fake-db/backup"])
    assert sim.director("backup").returncode == 0
    assert sim.director("backup", host="10.9.9.9").returncode == 1


def test_once_fault_is_consumed(sim: Sim) -> None:
    """A one-shot fault applies to the next matching invocation only."""
    sim.faults(fail_scripts=["fake-db/backup"], once=True)
    assert sim.director("backup").returncode == 1
    assert sim.director("backup", cwd=sim.fresh_dir("again")).returncode == 0


def test_persistent_fault_stays_until_cleared(sim: Sim) -> None:
    """A persistent fault applies to every invocation until clear_faults()."""
    sim.faults(fail_scripts=["fake-db/pre-backup-lock"], start_time="2026-01-01T00:00:00Z")
    assert sim.director("backup").returncode == 4
    assert sim.director("backup", host="10.0.0.7").returncode == 4
    clear_faults(sim.state)
    assert sim.director("backup", host="10.0.0.8").returncode == 0


def test_fault_scoped_to_commands_survives_other_commands(sim: Sim) -> None:
    """A one-shot fault for `backup` is not consumed by the pre-backup-check before it."""
    sim.faults(fail_scripts=["fake-db/post-backup-unlock"], once=True, commands=["backup"])
    assert sim.director("pre-backup-check").returncode == 0
    assert sim.director("backup").returncode == 8


def test_script_fault_on_one_instance(sim: Sim) -> None:
    """`<job>/<script>@<group>/<index>` fails the script on that instance only."""
    sim.faults(fail_scripts=["cloud-controller-backup/backup@api/1"])
    result = sim.deployment("backup")
    assert result.returncode == 1
    assert result.stderr.count("injected failure in cloud-controller-backup/backup") == 1
    assert "on api/" in result.stderr


def test_several_fault_entries(sim: Sim) -> None:
    """set_faults() takes several entries; each applies to its own target."""
    set_faults(sim.state, [
        Faults(target="10.0.0.1", fail_scripts=["fake-db/pre-backup-lock"]),
        {"target": "10.0.0.2", "cleanup_fails": True},
    ])  # fmt: skip
    codes = [sim.director("backup", host=h).returncode for h in ("10.0.0.1", "10.0.0.2", HOST)]
    assert codes == [4, 16, 0]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"fail_scripts": ["fake-db/unlock"]}, "fail_scripts"),
        ({"no_such_fault": True}, "no_such_fault"),
        ({"commands": ["restore-all"]}, "commands"),
        ({"large_artifacts": {"fake-db": -1}}, "large_artifacts"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"drain_delay_seconds": "slow"}, "drain_delay_seconds"),
    ],
)
def test_bad_fault_is_rejected_naming_the_field(
    sim: Sim, spec: dict[str, object], field: str
) -> None:
    """set_faults() rejects a fault that makes no sense, naming the field."""
    with pytest.raises(FaultError, match=field):
        set_faults(sim.state, spec)


def test_unreadable_faults_file_is_a_simulator_error(sim: Sim) -> None:
    """A broken faults.json makes the simulator say so on stderr and exit 1."""
    (sim.state / "faults.json").write_text("{not json")
    result = sim.director("backup")
    assert result.returncode == 1
    assert "bbr simulator:" in result.stderr and "faults.json" in result.stderr


def test_invocation_record(sim: Sim) -> None:
    """Every invocation is one JSON line: argv as given, cwd, mode, subcommand, exit code."""
    sim.faults(leave_busy=True, once=True)
    assert sim.director("backup").returncode == 1
    assert sim.run("version").returncode == 0
    backup, version = invocations(sim.state)
    assert backup["argv"] == ["bbr", *sim.director_args("backup")]
    assert (backup["cwd"], backup["mode"], backup["subcommand"]) == (
        str(sim.work),
        "director",
        "backup",
    )
    assert (backup["exit_code"], backup["signal"], backup["target"]) == (1, None, HOST)
    assert "bosh_client_secret_present" not in backup
    assert (version["mode"], version["exit_code"]) == (None, 0)
    lines = (sim.state / "invocations.jsonl").read_text().splitlines()
    assert [json.loads(line)["pid"] for line in lines] == [backup["pid"], version["pid"]]
    assert is_busy(sim.state, HOST)
