"""The shipped systemd unit: systemd's own verifier and security scorer, and the settings that
keep the daemon confined, supervised and given enough time to stop."""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from bbr_orchestrator.cli.app import DEFAULT_CONFIG, cli
from bbr_orchestrator.config.schema import DaemonConfig
from bbr_orchestrator.config.types import SecretReference
from bbr_orchestrator.sandbox.sshd import Jumpbox

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "bbr-orchestrator.service"
SYSUSERS = REPO / "systemd" / "sysusers.d" / "bbr-orchestrator.conf"
INSTALLED_BINARY = "/usr/bin/bbr-orchestrator"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine"
)

# The sandboxing options the unit must carry, each with a comment line right above it.
SANDBOXING = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "UMask": "0077",
}


def parse_unit(text: str) -> dict[str, list[tuple[int, str, str]]]:
    """Sections of a unit file: (line number, key, value) in order; repeated keys kept."""
    sections: dict[str, list[tuple[int, str, str]]] = {}
    current: list[tuple[int, str, str]] | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = pending + raw.strip()
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"line {number}: assignment outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: not an assignment: {line!r}"
        current.append((number, key.strip(), value.strip()))
    return sections


UNIT_TEXT = UNIT.read_text(encoding="utf-8")
UNIT_LINES = UNIT_TEXT.splitlines()
SECTIONS = parse_unit(UNIT_TEXT)


def values(key: str, section: str = "Service") -> list[str]:
    return [value for _, k, value in SECTIONS.get(section, []) if k == key]


def value(key: str, section: str = "Service") -> str:
    found = values(key, section)
    assert len(found) == 1, f"{key}= appears {len(found)} times in [{section}]"
    return found[0]


_SPAN_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def timespan(text: str) -> timedelta:
    """A systemd time span such as ``120s``, ``35min`` or ``1h 30min`` (bare numbers: seconds)."""
    parts = re.findall(r"(\d+)\s*([a-z]*)", text)
    assert parts and "".join(n + u for n, u in parts) == text.replace(" ", ""), text
    return timedelta(seconds=sum(int(n) * _SPAN_UNITS[u or "s"] for n, u in parts))


def unit_copy_for_systemd(tmp_path: Path) -> Path:
    """The unit with ExecStart at this venv's bbr-orchestrator (verify wants it to exist)."""
    binary = Path(sys.executable).parent / "bbr-orchestrator"
    assert binary.is_file(), f"{binary} is missing: install the project into the venv"
    text = UNIT_TEXT.replace(f"ExecStart={INSTALLED_BINARY} ", f"ExecStart={binary} ")
    assert text != UNIT_TEXT, "ExecStart no longer starts with the installed binary's path"
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    return copy


@needs_systemd_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit with no warning about it (unknown keys, bad
    values, missing commands all show up there)."""
    assert SYSTEMD_ANALYZE is not None
    copy = unit_copy_for_systemd(tmp_path)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ours = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert result.returncode == 0, result.stderr
    assert ours == [], "\n".join(ours)


@needs_systemd_analyze
def test_systemd_analyze_security_exposure(tmp_path: Path) -> None:
    """`systemd-analyze security --offline` rates the unit's exposure at most 2.0 ("OK")."""
    assert SYSTEMD_ANALYZE is not None
    copy = unit_copy_for_systemd(tmp_path)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=20", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline mode (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_notify_type_and_watchdog() -> None:
    """The daemon is Type=notify (only its main pid may notify) with a watchdog set."""
    assert value("Type") == "notify"
    assert value("NotifyAccess") == "main"
    assert timedelta(seconds=30) <= timespan(value("WatchdogSec")) <= timedelta(minutes=10)
    assert value("Restart") == "on-failure"


def test_exec_lines() -> None:
    """ExecStart runs the installed CLI's daemon with the config in /etc; reload is SIGHUP."""
    assert value("ExecStart").split() == [
        INSTALLED_BINARY,
        "--config",
        str(DEFAULT_CONFIG),
        "daemon",
    ]
    assert value("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert values("ExecStartPre") == [], "migrations are an explicit operator step"


def test_exec_start_option_is_the_cli_global_option() -> None:
    """--config is the root command's option (before the subcommand), as ExecStart passes it."""
    names = {opt for param in cli.params for opt in param.opts}
    assert "--config" in names
    if "daemon" not in cli.commands:  # pragma: no cover - until the daemon command lands
        pytest.skip("the `daemon` command is not registered yet")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "bbr-orchestrator"),
            *value("ExecStart").split()[1:],
            "--help",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_stop_timeout_outlasts_shutdown_grace() -> None:
    """TimeoutStopSec exceeds the daemon's default shutdown_grace, leaving time for the
    cancel-and-cleanup that follows it; SIGTERM reaches the daemon alone (KillMode=mixed)."""
    grace = DaemonConfig().shutdown_grace
    stop = timespan(value("TimeoutStopSec"))
    assert stop >= grace + timedelta(minutes=5), (stop, grace)
    assert value("KillMode") == "mixed"
    assert value("KillSignal") == "SIGTERM"


def test_sandboxing_settings() -> None:
    """Every sandboxing option is set to its strict value."""
    actual = {key: value(key) for key in SANDBOXING}
    assert actual == SANDBOXING
    assert set(value("RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert values("SystemCallFilter") == ["@system-service", "~@privileged @resources"]
    assert value("AmbientCapabilities") == ""


def test_each_sandboxing_option_has_a_comment() -> None:
    """Each sandboxing line has a one-line comment right above it saying what it does."""
    keys = [*SANDBOXING, "RestrictAddressFamilies"]
    for number, key, _ in SECTIONS["Service"]:
        if key in keys:
            above = UNIT_LINES[number - 2].strip()
            assert above.startswith("#") and len(above) > 10, f"{key}= (line {number})"


def test_state_and_configuration_directories() -> None:
    """State lives in a 0700 StateDirectory; config in ConfigurationDirectory; a fixed user."""
    assert value("StateDirectory") == "bbr-orchestrator"
    assert value("StateDirectoryMode") == "0700"
    assert value("ConfigurationDirectory") == "bbr-orchestrator"
    assert value("User") == value("Group") == "bbr-orchestrator"
    assert values("DynamicUser") == []


def test_secrets_come_only_as_credentials() -> None:
    """Secrets reach the daemon only through LoadCredential= from root-only files: no
    Environment=, EnvironmentFile=, PassEnvironment= or inline SetCredential=."""
    for key in (
        "Environment",
        "EnvironmentFile",
        "PassEnvironment",
        "SetCredential",
        "SetCredentialEncrypted",
    ):
        assert values(key) == [], f"{key}= must not be in the unit"
    credentials = dict(entry.split(":", 1) for entry in values("LoadCredential"))
    assert {"jumpbox_key", "s3_secret_access_key"} <= set(credentials)
    for name, source in credentials.items():
        SecretReference(credential=name)  # usable as {credential: NAME} in the config
        assert source == f"/etc/bbr-orchestrator/credentials/{name}"
    inline = re.compile(r"(?i)(secret|password|passphrase|token|key)[\w-]*=\S")
    for section in SECTIONS.values():
        for number, key, setting in section:
            assert not inline.search(setting), f"line {number}: {key}= carries a secret-like value"


def test_sysusers_creates_the_units_user(tmp_path: Path) -> None:
    """sysusers.d creates the unit's User= as a no-login system user homed in the state dir."""
    fields = SYSUSERS.read_text(encoding="utf-8").split("\n")
    entries = [line.split() for line in fields if line.strip() and not line.startswith("#")]
    assert [entry[:2] for entry in entries] == [["u", value("User")]]
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:  # pragma: no cover - the file format is pinned above
        pytest.skip("systemd-sysusers is not installed on this machine")
    (tmp_path / "etc").mkdir()
    subprocess.run([sysusers, f"--root={tmp_path}", str(SYSUSERS)], check=True, timeout=60)
    passwd = (tmp_path / "etc" / "passwd").read_text(encoding="utf-8").splitlines()
    (entry,) = [line.split(":") for line in passwd if line.startswith(value("User") + ":")]
    assert entry[5] == "/var/lib/" + value("StateDirectory")
    assert entry[6].endswith("nologin")
    assert 0 < int(entry[2]) < 1000


PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1

MDWE_PROBE = textwrap.dedent(
    """
    import ctypes, json, mmap, sys
    from pathlib import Path

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_MDWE) failed: errno {ctypes.get_errno()}")
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        pass
    else:
        sys.exit("write+execute memory is still allowed: the probe proves nothing")

    import boto3, prometheus_client, psycopg, pymysql
    from bbr_orchestrator.adapters.catalog import open_catalog, upgrade
    from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings
    import bbr_orchestrator.cli.app, bbr_orchestrator.service.wiring

    box = json.loads(sys.argv[1])
    settings = SshSettings(
        host=box["host"], port=box["port"], user=box["user"],
        private_key_file=Path(box["key"]), known_hosts_file=Path(box["known_hosts"]),
        connect_timeout=10.0,
    )
    lines = []
    with SshJumpbox.connect(settings) as shell:
        code = shell.run(["echo", "mdwe-ok"], on_line=lambda _s, text: lines.append(text))
    assert (code, lines) == (0, ["mdwe-ok"]), (code, lines)
    url = "sqlite:///" + box["catalog"]
    upgrade(url)
    with open_catalog(url):
        pass
    boto3.session.Session().client(
        "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="a", aws_secret_access_key="b",
    )
    prometheus_client.generate_latest()
    print("ok")
    """
).replace("PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN", f"{PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}")


def _kernel_has_mdwe() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    # PR_GET_MDWE (66) answers on kernels >= 6.3; older ones reject it with EINVAL.
    return bool(libc.prctl(66, 0, 0, 0, 0) >= 0)


@pytest.mark.skipif(not _kernel_has_mdwe(), reason="the kernel has no PR_SET_MDWE (Linux < 6.3)")
def test_runtime_works_without_write_execute_memory(jumpbox: Jumpbox, tmp_path: Path) -> None:
    """Under the kernel's write-xor-execute lock (what MemoryDenyWriteExecute=yes enforces),
    a real SSH session, a catalog migration and the other dependencies still work (a cffi
    callback, for one, would not)."""
    probe = tmp_path / "probe.py"
    probe.write_text(MDWE_PROBE, encoding="utf-8")
    box = {
        "host": jumpbox.host,
        "port": jumpbox.port,
        "user": jumpbox.user,
        "key": str(jumpbox.client_key_path),
        "known_hosts": str(jumpbox.known_hosts_path),
        "catalog": str(tmp_path / "catalog.sqlite3"),
    }
    result = subprocess.run(
        [sys.executable, str(probe), json.dumps(box)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "ok"
