"""The om stand-in: flags, credentials from the environment only, the zip, faults, signals."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from bbr_orchestrator.sandbox.omsim import (
    VERSION,
    OmFaultError,
    install,
    installation_zip,
    invocations,
    set_faults,
)

URL = "https://opsman.example.internal"
PASSWORD = "opsman-admin-password-value"
USER_ENV = {"OM_USERNAME": "admin", "OM_PASSWORD": PASSWORD}


@dataclass
class Om:
    """An installed om stand-in with its state dir and a working dir."""

    om: Path
    state: Path
    work: Path

    def env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OM_", "BBR_SIM_")) and k != "PYTHONPATH"
        }
        return {**clean, **(extra or {})}

    def run(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.om), *args],
            cwd=self.work,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def export(
        self, *global_flags: str, env: Mapping[str, str] | None = USER_ENV, out: str = "i.zip"
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "--target", URL, *global_flags, "export-installation", "--output-file", out, env=env
        )

    def popen(self, blocked: frozenset[int] = frozenset()) -> subprocess.Popen[str]:
        def block() -> None:
            signal.pthread_sigmask(signal.SIG_BLOCK, blocked)

        return subprocess.Popen(
            [str(self.om), "--target", URL, "export-installation", "--output-file", "i.zip"],
            cwd=self.work,
            env=self.env(USER_ENV),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=block if blocked else None,
        )


@pytest.fixture
def om(tmp_path: Path) -> Om:
    work = tmp_path / "work"
    work.mkdir()
    return Om(install(tmp_path / "bin", tmp_path / "om-state"), tmp_path / "om-state", work)


def test_install_writes_a_wrapper_and_a_private_state_dir(om: Om) -> None:
    """install() creates an executable /bin/sh wrapper and a 0700 state dir; `om version` works."""
    assert om.om.read_text().startswith("#!/bin/sh\n")
    assert os.access(om.om, os.X_OK)
    assert om.state.stat().st_mode & 0o777 == 0o700
    result = om.run("version")
    assert (result.returncode, result.stdout.strip()) == (0, VERSION)


def test_export_writes_a_real_zip_with_om_progress_lines(om: Om) -> None:
    """A healthy export writes a zip of a few hundred KiB with installation.yml, printing
    "exporting installation" ... "finished exporting installation"."""
    result = om.export("--skip-ssl-validation", "--request-timeout", "7200")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "exporting installation"
    assert lines[-1] == "finished exporting installation"
    assert any("downloading installation" in line for line in lines)
    output = om.work / "i.zip"
    assert 256 * 1024 < output.stat().st_size < 1024 * 1024
    with zipfile.ZipFile(output) as archive:
        assert archive.testzip() is None
        assert "installation.yml" in archive.namelist()
        assert URL in archive.read("installation.yml").decode()
    assert output.read_bytes() == installation_zip(URL), "deterministic for one URL"


def test_invocations_record_credentials_by_hash_only(om: Om) -> None:
    """The record says which credentials were present and their SHA-256, never the value."""
    om.export()
    (record,) = invocations(om.state)
    assert record["exit_code"] == 0 and record["command"] == "export-installation"
    assert record["argv"] == ["--target", URL, "export-installation", "--output-file", "i.zip"]
    creds = record["credentials"]
    assert creds["OM_PASSWORD"] == {
        "present": True,
        "sha256": hashlib.sha256(PASSWORD.encode()).hexdigest(),
    }
    assert creds["OM_CLIENT_SECRET"] == {"present": False, "sha256": None}
    assert record["credentials_present"] and not record["secret_in_argv"]
    assert PASSWORD not in (om.state / "invocations.jsonl").read_text()


def test_client_credentials_are_accepted(om: Om) -> None:
    """A UAA client pair in OM_CLIENT_ID / OM_CLIENT_SECRET is as good as a user."""
    result = om.export(env={"OM_CLIENT_ID": "bbr", "OM_CLIENT_SECRET": "client-secret-value"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "env", [{}, {"OM_USERNAME": "admin"}, {"OM_CLIENT_SECRET": "only-half-a-pair"}]
)
def test_missing_credentials_are_refused(om: Om, env: dict[str, str]) -> None:
    """Without a whole credential pair in the environment om fails (exit 1), writing nothing."""
    result = om.export(env=env)
    assert result.returncode == 1
    assert result.stderr.startswith('could not execute "export-installation": ')
    assert "OM_USERNAME and OM_PASSWORD" in result.stderr
    assert not (om.work / "i.zip").exists()
    assert invocations(om.state)[-1]["credentials_present"] is False


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--password", "pw"], "--password"),
        (["-p", "pw"], "-p"),
        (["--client-secret=cs"], "--client-secret"),
        (["--decryption-passphrase", "dp"], "--decryption-passphrase"),
    ],
)
def test_credentials_on_the_command_line_are_refused(om: Om, flags: list[str], named: str) -> None:
    """A credential flag on the command line (visible in ps) is refused and recorded."""
    result = om.export(*flags)
    assert result.returncode == 1
    assert f"refusing {named} on the command line" in result.stderr
    assert invocations(om.state)[-1]["credential_flags_in_argv"] == [named]
    assert not (om.work / "i.zip").exists()


def test_a_secret_value_anywhere_in_argv_is_refused(om: Om) -> None:
    """The password's value in any argument (here the output file name) is refused."""
    result = om.export(out=f"{PASSWORD}.zip")
    assert result.returncode == 1
    assert "refusing a secret's value" in result.stderr
    assert invocations(om.state)[-1]["secret_in_argv"] is True


def test_ca_cert_must_exist(om: Om, tmp_path: Path) -> None:
    """--ca-cert names a file on the jumpbox: a missing one fails as om does; a real one works."""
    missing = om.export("--ca-cert", str(tmp_path / "nope.pem"))
    assert missing.returncode == 1 and "could not load ca cert" in missing.stderr
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    assert om.export("--ca-cert", str(ca)).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus", "export-installation"], "unknown flag `bogus'"),
        (["--target", URL, "export-installation"], "expected flag --output-file"),
        (["export-installation", "--output-file", "i.zip"], "target flag is required"),
        (["--target", URL, "frobnicate"], "unknown command 'frobnicate'"),
    ],
)
def test_bad_command_lines_fail_like_om(om: Om, args: list[str], message: str) -> None:
    """Unknown flags and commands, a missing target or output file: exit 1 with om's words."""
    result = om.run(*args, env=USER_ENV)
    assert result.returncode == 1
    assert message in result.stderr


def test_fail_fault_exits_1_leaving_a_partial_file(om: Om) -> None:
    """`fail` stops half-way: exit 1, om's error with the message, a partial file stays."""
    set_faults(om.state, {"fail": "Ops Manager is busy applying changes", "once": True})
    result = om.export()
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        'could not execute "export-installation": failed to export installation: '
        "Ops Manager is busy applying changes"
    )
    assert 0 < (om.work / "i.zip").stat().st_size < len(installation_zip(URL))
    assert om.export().returncode == 0, "a once fault is consumed"


def test_auth_fault_is_a_401(om: Om) -> None:
    """`auth_fails` is UAA refusing the credentials: exit 1, nothing written."""
    set_faults(om.state, {"auth_fails": True})
    result = om.export()
    assert result.returncode == 1 and "401 Unauthorized" in result.stderr
    assert not (om.work / "i.zip").exists()


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damage_faults_exit_0_with_a_broken_zip(om: Om, damage: str) -> None:
    """`damage` leaves a file that is not a whole zip although om says it finished."""
    set_faults(om.state, {"damage": damage})
    result = om.export()
    assert result.returncode == 0
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(om.work / "i.zip")


def test_faults_apply_to_their_target_only(om: Om) -> None:
    """A fault naming another Ops Manager leaves this one alone; size_bytes sets the size."""
    set_faults(om.state, [{"target": "https://other", "fail": "x"}, {"size_bytes": 1 << 20}])
    assert om.export().returncode == 0
    assert (om.work / "i.zip").stat().st_size > 1 << 20


def test_bad_fault_specs_are_refused(om: Om) -> None:
    """Unknown fields and unknown damage kinds are named."""
    with pytest.raises(OmFaultError, match="bogus: unknown fault"):
        set_faults(om.state, {"bogus": 1})
    with pytest.raises(OmFaultError, match="damage"):
        set_faults(om.state, {"damage": "melt"})


def _started(process: subprocess.Popen[str]) -> None:
    assert process.stderr is not None
    line = process.stderr.readline()
    assert line.strip() == "exporting installation", line


@pytest.mark.parametrize("blocked", [frozenset(), frozenset({signal.SIGTERM, signal.SIGHUP})])
def test_sigterm_ends_a_slow_export_at_once(om: Om, blocked: frozenset[int]) -> None:
    """SIGTERM ends a slow export within a second, even with SIGTERM blocked by the parent;
    the invocation is recorded as killed."""
    set_faults(om.state, {"delay_seconds": 30})
    process = om.popen(blocked)
    _started(process)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=10)
    assert time.monotonic() - sent < 3
    assert process.returncode == -signal.SIGTERM
    record = invocations(om.state)[-1]
    assert (record["exit_code"], record["signal"]) == (None, "SIGTERM")
