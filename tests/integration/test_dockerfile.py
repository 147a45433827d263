"""The Dockerfile, read as data: a multi-stage build whose runtime stage holds only the venv, runs
unprivileged, receives signals as PID 1, and never bakes a secret or a config into a layer."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bbr_orchestrator.config.schema import Config, MetricsConfig

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
BUILD_SOURCES = {"pyproject.toml", "README.md", "bbr_orchestrator", "migrations"}
SECRET_NAME = re.compile(r"(?i)(secret|passw(or)?d|token|key|credential|auth)")
POINTER_NAME = re.compile(r"(?i)_(directory|dir|file|path)$")


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON-array (exec) form of the arguments, or None for the shell form."""
        try:
            parsed = json.loads(self.args)
        except json.JSONDecodeError:
            return None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
        return None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blank lines dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        keyword, _, args = " ".join(part for part in buffer if part).partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        buffer = []
    assert not buffer, "the Dockerfile ends inside a continued instruction"
    return instructions


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def stages() -> list[list[Instruction]]:
    """The build stages, each starting with its FROM."""
    result: list[list[Instruction]] = []
    for instruction in INSTRUCTIONS:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


FINAL = stages()[-1]


def in_final(keyword: str) -> list[Instruction]:
    return [i for i in FINAL if i.keyword == keyword]


def copy_sources(instruction: Instruction) -> tuple[list[str], bool]:
    """(sources, from another stage) of a COPY; flags (--from=, --chown=, ...) skipped."""
    words = shlex.split(instruction.args)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1], any(flag.startswith("--from=") for flag in flags)


def env_assignments(instruction: Instruction) -> list[tuple[str, str]]:
    """(name, value) pairs of an ENV or ARG (``ARG NAME`` alone has the value "")."""
    words = shlex.split(instruction.args)
    if instruction.keyword == "ENV" and words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]  # legacy ``ENV NAME value``
    return [(name, val) for name, _, val in (word.partition("=") for word in words)]


def test_multi_stage_build() -> None:
    """At least two stages: a named build stage, and a runtime stage on the same slim 3.11 base."""
    froms = [i for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert len(froms) >= 2
    assert re.fullmatch(r"\S+ AS build", froms[0].args, flags=re.I)
    base = froms[-1].args.split()[0]
    assert base == froms[0].args.split()[0]
    if base.startswith("${"):
        (arg,) = [i for i in INSTRUCTIONS if i.keyword == "ARG" and i.line < froms[0].line]
        name, _, default = arg.args.partition("=")
        assert base == "${" + name + "}"
        base = default
    assert base.startswith("python:3.11-slim"), base


def test_runtime_stage_holds_only_the_venv() -> None:
    """The runtime stage copies nothing from the build context: only the venv from the build."""
    assert [i for i in FINAL if i.keyword == "ADD"] == []
    copies = [copy_sources(i) for i in in_final("COPY")]
    assert copies == [(["/opt/bbr-orchestrator"], True)]


def test_runs_as_a_fixed_non_root_uid() -> None:
    """The runtime stage's last USER is a fixed, numeric, non-root UID:GID."""
    users = in_final("USER")
    assert users, "the runtime stage sets no USER (it would run as root)"
    user, _, group = users[-1].args.partition(":")
    assert user.isdigit() and int(user) >= 1000, users[-1].args
    assert group.isdigit() and int(group) != 0, users[-1].args
    assert all(i.line < users[-1].line for i in in_final("RUN")), "RUN after USER drops root"


def test_entrypoint_and_cmd_are_exec_form() -> None:
    """ENTRYPOINT and CMD are JSON arrays (no /bin/sh -c between docker and the daemon, so
    SIGTERM reaches it as PID 1), running `bbr-orchestrator daemon`; STOPSIGNAL is SIGTERM."""
    (entrypoint,) = in_final("ENTRYPOINT")
    (cmd,) = in_final("CMD")
    assert entrypoint.exec_form() == ["bbr-orchestrator"]
    assert cmd.exec_form() == ["daemon"]
    assert [i.args for i in in_final("STOPSIGNAL")] == ["SIGTERM"]


def test_no_secret_in_env_or_arg() -> None:
    """No ENV or ARG with a secret-like name carries a value (names of paths and dirs excepted)."""
    for instruction in INSTRUCTIONS:
        if instruction.keyword not in {"ENV", "ARG"}:
            continue
        for name, val in env_assignments(instruction):
            if SECRET_NAME.search(name) and not POINTER_NAME.search(name):
                assert val == "", f"line {instruction.line}: {name} has a value baked in"


def test_credentials_are_mounted_at_run_time() -> None:
    """{credential: NAME} resolves under /run/secrets, where docker/compose mount secrets."""
    env = dict(pair for i in in_final("ENV") for pair in env_assignments(i))
    assert env["CREDENTIALS_DIRECTORY"] == "/run/secrets"


def test_build_context_is_only_the_package_sources() -> None:
    """Only the wheel's sources are copied from the context (no config, key or .env), and
    .dockerignore lets nothing else into the context: deny all, then exactly those."""
    copied: set[str] = set()
    for instruction in INSTRUCTIONS:
        assert instruction.keyword != "ADD", f"line {instruction.line}: use COPY, not ADD"
        if instruction.keyword == "COPY":
            sources, from_stage = copy_sources(instruction)
            if not from_stage:
                copied.update(source.rstrip("/") for source in sources)
    assert copied == BUILD_SOURCES
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {p[1:].strip("/") for p in patterns if p.startswith("!")}
    assert allowed == BUILD_SOURCES


def test_state_volume_and_metrics_port() -> None:
    """The state dir (the config's default state_dir) is a volume; the default metrics port is
    exposed."""
    state_dir = str(Config.model_fields["state_dir"].default)
    volumes = [v for i in in_final("VOLUME") for v in (i.exec_form() or i.args.split())]
    assert state_dir in volumes
    assert [i.args for i in in_final("EXPOSE")] == [str(MetricsConfig().port)]


def healthcheck_argv() -> list[str]:
    (check,) = in_final("HEALTHCHECK")
    _, _, command = check.args.partition(" CMD ")
    argv = Instruction(check.line, "CMD", command.strip()).exec_form()
    assert argv is not None, "HEALTHCHECK CMD is not in exec form"
    return argv


def test_healthcheck_needs_no_curl() -> None:
    """The health check is the venv's Python fetching /metrics on the default port."""
    argv = healthcheck_argv()
    assert argv[:2] == ["/opt/bbr-orchestrator/bin/python", "-c"]
    assert f"http://127.0.0.1:{MetricsConfig().port}/metrics" in argv[2]
    assert not {"curl", "wget"} & set(re.findall(r"\w+", " ".join(argv)))


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/metrics" else 404
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"up 1\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def metrics_port() -> Iterator[int]:
    """A tiny HTTP server answering /metrics on a free loopback port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def free_port() -> int:
    """A loopback port that was free a moment ago (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_healthcheck_passes_and_fails(metrics_port: int) -> None:
    """The health-check program exits 0 when /metrics answers and non-zero when nothing
    listens (run with this venv's Python and the port swapped for a test server's)."""
    code = healthcheck_argv()[2]
    default = f"127.0.0.1:{MetricsConfig().port}/"
    results = {}
    for name, port in (("live", metrics_port), ("dead", free_port())):
        program = code.replace(default, f"127.0.0.1:{port}/")
        assert program != code
        results[name] = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, timeout=30, check=False
        )
    assert results["live"].returncode == 0, results["live"].stderr
    assert results["dead"].returncode != 0
