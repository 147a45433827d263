"""Contract section 1: bbr's command line, as the simulator must reproduce it."""

from __future__ import annotations

import hashlib
import json

import pytest

from bbr_orchestrator.sandbox.bbrsim import invocations

from .simkit import DIRECTOR_TARGET, HOST, SECRET, Sim

RED = "\x1b[0;31m"
RESET = "\x1b[0m"


@pytest.mark.parametrize("argv", [["version"], ["--version"], ["v"]])
def test_version(sim: Sim, argv: list[str]) -> None:
    """`bbr version` and `bbr --version` print `bbr version 1.9.79` and exit 0."""
    result = sim.run(*argv)
    assert (result.returncode, result.stdout, result.stderr) == (0, "bbr version 1.9.79\n", "")


@pytest.mark.parametrize("missing", ["host", "username", "private-key-path"])
def test_director_flag_required(sim: Sim, missing: str) -> None:
    """A missing director flag: help on stdout, red `--<flag> flag is required.`, exit 1."""
    values = {"host": HOST, "username": "bbr", "private-key-path": str(sim.key)}
    args = [
        arg for flag, value in values.items() if flag != missing for arg in (f"--{flag}", value)
    ]
    result = sim.run("director", *args, "backup")
    assert result.returncode == 1
    assert result.stderr == f"{RED}--{missing} flag is required.{RESET}\n"
    assert "USAGE:" in result.stdout
    assert sim.artifacts() == []


def test_director_mode_ignores_environment(sim: Sim) -> None:
    """Director mode reads no environment variable: BOSH_* do not stand in for its flags."""
    env = {"BOSH_ENVIRONMENT": HOST, "BOSH_CLIENT": "bbr", "BOSH_CLIENT_SECRET": SECRET}
    result = sim.run("director", "--private-key-path", str(sim.key), "backup", env=env)
    assert result.returncode == 1
    assert result.stderr == f"{RED}--host flag is required.{RESET}\n"


def test_mode_flags_after_subcommand_are_an_error(sim: Sim) -> None:
    """Mode flags belong between `director` and SUB: after SUB they are not seen, so exit 1."""
    result = sim.run("director", "backup", "--host", HOST, "--username", "bbr",
                     "--private-key-path", str(sim.key))  # fmt: skip
    assert result.returncode == 1
    assert "--host flag is required." in result.stderr
    assert sim.artifacts() == []


def test_sub_flag_before_subcommand_is_an_error(sim: Sim) -> None:
    """Sub-flags go after SUB: `--artifact-path` before `backup` is undefined there, exit 1."""
    args = sim.director_args("backup")
    args.insert(-1, "--artifact-path")
    args.insert(-1, str(sim.work))
    result = sim.run(*args)
    assert result.returncode == 1
    assert "flag provided but not defined: -artifact-path" in result.stdout
    assert sim.artifacts() == []


def test_sub_flag_after_subcommand_is_accepted(sim: Sim, tmp_path: str) -> None:
    """`backup --artifact-path DIR` puts the artifact in DIR."""
    target = sim.work / "out"
    target.mkdir()
    result = sim.director("backup", "--artifact-path", str(target))
    assert result.returncode == 0, result.stderr
    assert sim.only_artifact(target).name.startswith(f"{HOST}_")


def test_host_without_port_means_22_and_port_stays_out_of_the_name(sim: Sim) -> None:
    """`--host H` dials port 22, `--host H:P` dials P; the artifact is named after H alone."""
    assert sim.director("pre-backup-check").returncode == 0
    assert sim.director("backup", host="127.0.0.1:2201").returncode == 0
    ports = [(r["target"], r["port"]) for r in invocations(sim.state)]
    assert ports == [(HOST, 22), ("127.0.0.1", 2201)]
    assert sim.only_artifact().name.startswith("127.0.0.1_")


@pytest.mark.parametrize("host", ["::1", "[::1]:22", "[fd00::6]"])
def test_ipv6_literal_host_fails(sim: Sim, host: str) -> None:
    """IPv6 literals in --host do not work: exit 1, nothing created."""
    result = sim.director("backup", host=host)
    assert result.returncode == 1
    assert "1 error occurred:\nerror 1:\n" in result.stderr
    assert sim.artifacts() == []


def test_missing_private_key_fails(sim: Sim) -> None:
    """A private key path that does not exist is an error (exit 1) with an err.log."""
    sim.key.unlink()
    result = sim.director("backup")
    assert result.returncode == 1
    assert str(sim.key) in result.stderr
    assert len(sim.err_logs()) == 1


def test_deployment_flags_come_from_environment(sim: Sim) -> None:
    """Deployment mode takes every absent flag from its BOSH_* environment variable."""
    env = {
        "BOSH_ENVIRONMENT": DIRECTOR_TARGET,
        "BOSH_CLIENT": "admin",
        "BOSH_CLIENT_SECRET": SECRET,
        "BOSH_DEPLOYMENT": "cf",
        "BOSH_CA_CERT": str(sim.ca_cert),
    }
    result = sim.run("deployment", "pre-backup-check", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("Deployment 'cf' can be backed up.")


def test_deployment_reads_ca_cert_variable_and_pem_text(sim: Sim) -> None:
    """CA_CERT is read too, and the CA may be PEM text rather than a path."""
    env = {"CA_CERT": sim.ca_cert.read_text(), "BOSH_CLIENT_SECRET": SECRET}
    args = ["deployment", "--target", DIRECTOR_TARGET, "--username", "admin", "--deployment", "cf"]
    assert sim.run(*args, "pre-backup-check", env=env).returncode == 0


@pytest.mark.parametrize(
    ("drop", "message"),
    [("--password", "--password flag is required."), ("--ca-cert", "--ca-cert flag is required.")],
)
def test_deployment_required_flags(sim: Sim, drop: str, message: str) -> None:
    """The password (flag or BOSH_CLIENT_SECRET) and a non-empty --ca-cert are required."""
    args = sim.deployment_args("pre-backup-check")
    if drop == "--ca-cert":
        args[args.index("--ca-cert") + 1] = ""
    result = sim.run(*args, env={} if drop == "--password" else {"BOSH_CLIENT_SECRET": SECRET})
    assert result.returncode == 1
    assert result.stderr == f"{RED}{message}{RESET}\n"


@pytest.mark.parametrize("which", [[], ["--deployment", "cf", "--all-deployments"]])
def test_deployment_needs_exactly_one_of_deployment_or_all(sim: Sim, which: list[str]) -> None:
    """Exactly one of --deployment and --all-deployments must be given."""
    args = ["deployment", "--target", DIRECTOR_TARGET, "--username", "admin", *which,
            "--ca-cert", str(sim.ca_cert), "pre-backup-check"]  # fmt: skip
    result = sim.run(*args, env={"BOSH_CLIENT_SECRET": SECRET})
    assert result.returncode == 1
    assert "provide one of '--deployment' or '--all-deployments' flags." in result.stderr


def test_wrong_client_secret_fails_authentication(sim: Sim) -> None:
    """With an expected secret in state/deployment_secret, any other secret fails auth: exit 1."""
    (sim.state / "deployment_secret").write_text("the-right-one\n")
    result = sim.deployment("backup")
    assert result.returncode == 1
    assert "401" in result.stderr
    assert sim.artifacts() == []
    right = sim.run(*sim.deployment_args("pre-backup-check"),
                    env={"BOSH_CLIENT_SECRET": "the-right-one"})  # fmt: skip
    assert right.returncode == 0, right.stderr


def test_secret_is_recorded_only_as_a_hash(sim: Sim) -> None:
    """The invocation log has whether BOSH_CLIENT_SECRET was set and its SHA-256, not the value."""
    assert sim.deployment("backup").returncode == 0
    record = invocations(sim.state)[-1]
    assert record["bosh_client_secret_present"] is True
    assert record["bosh_client_secret_sha256"] == hashlib.sha256(SECRET.encode()).hexdigest()
    assert record["password_on_command_line"] is False
    assert SECRET not in json.dumps(record)
    assert SECRET not in (sim.state / "invocations.jsonl").read_text()


def test_password_flag_shows_in_argv(sim: Sim) -> None:
    """A secret passed with --password is visible in argv, and the record says so."""
    args = sim.deployment_args("pre-backup-check")
    args[1:1] = ["--password", SECRET]
    assert sim.run(*args).returncode == 0
    record = invocations(sim.state)[-1]
    assert record["password_on_command_line"] is True
    assert record["bosh_client_secret_present"] is False
    assert SECRET in record["argv"]


def test_unsafe_lock_free_refused_with_all_deployments(sim: Sim) -> None:
    """`--unsafe-lock-free` cannot be combined with `--all-deployments`: exit 1."""
    result = sim.deployment("backup", "--unsafe-lock-free", deployment=None)
    assert result.returncode == 1
    assert "--unsafe-lock-free" in result.stderr
    assert sim.artifacts() == []


def test_unsafe_lock_free_skips_locking(sim: Sim) -> None:
    """`backup --unsafe-lock-free` runs no lock or unlock script."""
    result = sim.deployment("backup", "--unsafe-lock-free")
    assert result.returncode == 0, result.stderr
    assert "Locking" not in result.stdout
    assert "Unlocking" not in result.stdout


def test_with_manifest_is_deployment_only(sim: Sim) -> None:
    """`--with-manifest` is a deployment backup flag; director backup rejects it."""
    assert sim.director("backup", "--with-manifest").returncode == 1
    assert sim.deployment("backup", "--with-manifest").returncode == 0
    assert (sim.only_artifact() / "manifest.yml").read_text().startswith("name: cf\n")


def test_restore_requires_artifact_path(sim: Sim) -> None:
    """`restore` without --artifact-path is a red flag error, exit 1."""
    result = sim.director("restore")
    assert result.returncode == 1
    assert result.stderr == f"{RED}--artifact-path flag is required.{RESET}\n"


def test_all_deployments_not_allowed_for_restore(sim: Sim) -> None:
    """`--all-deployments` supports only pre-backup-check, backup and backup-cleanup."""
    result = sim.deployment("restore", "--artifact-path", str(sim.work), deployment=None)
    assert result.returncode == 1


def test_backup_artifact_path_must_exist(sim: Sim) -> None:
    """`backup --artifact-path` must name an existing directory: exit 1 otherwise."""
    result = sim.director("backup", "--artifact-path", str(sim.work / "nope"))
    assert result.returncode == 1
    assert f"stat {sim.work / 'nope'}: no such file or directory" in result.stderr


def test_backup_defaults_to_working_directory(sim: Sim) -> None:
    """Without --artifact-path the artifact lands in bbr's working directory."""
    elsewhere = sim.work / "elsewhere"
    elsewhere.mkdir()
    assert sim.director("backup", cwd=elsewhere).returncode == 0
    assert sim.only_artifact(elsewhere).name.startswith(f"{HOST}_")


def test_missing_state_dir_is_a_clear_error(sim: Sim) -> None:
    """Without BBR_SIM_STATE pointing at a directory the simulator refuses to run: exit 1."""
    result = sim.run(*sim.director_args("backup"), env={"BBR_SIM_STATE": str(sim.work / "nope")})
    assert result.returncode == 1
    assert "BBR_SIM_STATE" in result.stderr
