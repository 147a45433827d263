"""bbr's command line: Go ``flag`` parsing as urfave/cli v1 drives it, help text, flag errors.

Pure: :func:`parse` turns argv and the environment into a :class:`Command` to run, or an
:class:`Outcome` (what to print and the exit status) for help, version and flag errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .output import VERSION, red


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]
    usage: str
    is_bool: bool = False
    env: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class Sub:
    name: str
    aliases: tuple[str, ...]
    usage: str
    flags: tuple[Flag, ...] = ()


_HELP = Flag(("help", "h"), "show help", is_bool=True)
_DEBUG = Flag(("debug",), "Enable debug logs", is_bool=True)
_ARTIFACT_PATH = Flag(
    ("artifact-path", "a"), "Specify an optional path to save the backup artifacts to"
)
_RESTORE_PATH = Flag(("artifact-path", "a"), "Path to the artifact to restore")

MODE_FLAGS: dict[str, tuple[Flag, ...]] = {
    "director": (
        Flag(("host",), "BOSH Director hostname, with an optional port. Port defaults to 22"),
        Flag(("username", "u"), "BOSH Director SSH username"),
        Flag(("private-key-path", "key"), "BOSH Director SSH private key"),
        _DEBUG,
        _HELP,
    ),
    "deployment": (
        Flag(("target", "t"), "Target BOSH Director URL", env=("BOSH_ENVIRONMENT",)),
        Flag(("username", "u"), "BOSH Director username", env=("BOSH_CLIENT",)),
        Flag(("password", "p"), "BOSH Director password", env=("BOSH_CLIENT_SECRET",)),
        Flag(("deployment", "d"), "Name of BOSH deployment", env=("BOSH_DEPLOYMENT",)),
        Flag(("all-deployments",), "Run command for all deployments", is_bool=True),
        Flag(("ca-cert",), "BOSH Director's CA certificate", env=("CA_CERT", "BOSH_CA_CERT")),
        _DEBUG,
        _HELP,
    ),
}
REQUIRED = {
    "director": ("host", "username", "private-key-path"),
    "deployment": ("target", "username", "password", "ca-cert"),
}
_BACKUP_EXTRA = (
    Flag(("with-manifest",), "Download the deployment manifest", is_bool=True),
    Flag(("unsafe-lock-free",), "Experimental feature to skip locking steps", is_bool=True),
)
SUBS: dict[str, tuple[Sub, ...]] = {
    mode: (
        Sub("pre-backup-check", ("c",), f"Check a {what} can be backed up"),
        Sub("backup", ("b",), f"Backup a {what}",
            (_ARTIFACT_PATH, *(_BACKUP_EXTRA if mode == "deployment" else ()), _HELP)),
        Sub("backup-cleanup", (), f"Cleanup a {what} after a backup was interrupted"),
        Sub("restore", ("r",), f"Restore a {what} from backup", (_RESTORE_PATH, _HELP)),
        Sub("restore-cleanup", (), f"Cleanup a {what} after a restore was interrupted"),
    )
    for mode, what in (("director", "BOSH Director"), ("deployment", "deployment"))
}  # fmt: skip
ALL_DEPLOYMENTS_SUBS = ("pre-backup-check", "backup", "backup-cleanup")


@dataclass(frozen=True)
class Outcome:
    """Something to print and an exit status, without running anything."""

    code: int
    stdout: str = ""
    stderr: str = ""
    mode: str | None = None
    sub: str | None = None


@dataclass(frozen=True)
class Command:
    """A fully validated bbr invocation."""

    mode: str
    sub: str
    options: dict[str, str | bool] = field(default_factory=dict)
    sub_options: dict[str, str | bool] = field(default_factory=dict)
    password_on_command_line: bool = False

    def text(self, key: str) -> str:
        value = self.options.get(key, self.sub_options.get(key, ""))
        return value if isinstance(value, str) else ""

    def flag(self, key: str) -> bool:
        return bool(self.options.get(key, self.sub_options.get(key, False)))


class _UsageError(Exception):
    pass


def _lookup(flags: Sequence[Flag], name: str) -> Flag | None:
    return next((f for f in flags if name in f.names), None)


def go_flag_parse(
    args: Sequence[str], flags: Sequence[Flag]
) -> tuple[dict[str, str | bool], list[str]]:
    """Go's ``flag.FlagSet.Parse``: flags until the first non-flag argument or ``--``."""
    values: dict[str, str | bool] = {}
    rest = list(args)
    while rest:
        arg = rest[0]
        if len(arg) < 2 or not arg.startswith("-"):
            break
        rest.pop(0)
        if arg == "--":
            break
        name = arg[2:] if arg.startswith("--") else arg[1:]
        if not name or name[0] in "-=":
            raise _UsageError(f"bad flag syntax: {arg}")
        name, has_value, value = name.partition("=")
        spec = _lookup(flags, name)
        if spec is None:
            raise _UsageError(f"flag provided but not defined: -{name}")
        if spec.is_bool:
            if has_value and value not in ("1", "t", "T", "true", "TRUE", "True", "0", "f", "F",
                                           "false", "FALSE", "False"):  # fmt: skip
                raise _UsageError(f'invalid boolean value "{value}" for -{name}: parse error')
            values[spec.key] = (value or "true").lower() in ("1", "t", "true")
        elif has_value:
            values[spec.key] = value
        elif rest:
            values[spec.key] = rest.pop(0)
        else:
            raise _UsageError(f"flag needs an argument: -{name}")
    return values, rest


def _flag_lines(flags: Sequence[Flag]) -> list[str]:
    lines = []
    for spec in flags:
        names = ", ".join(("--" if len(n) > 1 else "-") + n for n in spec.names)
        label = names if spec.is_bool else f"{names} value"
        env = f" [${', $'.join(spec.env)}]" if spec.env else ""
        lines.append(f"   {label:<34} {spec.usage}{env}")
    return lines


def app_help() -> str:
    return "\n".join([
        "NAME:", "   bbr - BOSH Backup and Restore", "",
        "USAGE:", "   bbr command [arguments...] [subcommand]", "",
        "VERSION:", f"   {VERSION}", "",
        "COMMANDS:",
        "     deployment  Backup BOSH deployments",
        "     director    Backup BOSH director",
        "     help, h     Shows a list of commands or help for one command",
        "     version, v  Shows the version", "",
        "SUBCOMMANDS:", "   backup", "   backup-cleanup", "   restore", "   restore-cleanup",
        "   pre-backup-check", "",
    ])  # fmt: skip


def mode_help(mode: str) -> str:
    what = "BOSH director" if mode == "director" else "BOSH deployments"
    usage = f"   bbr {mode} command [command options] [arguments...]"
    lines = ["NAME:", f"   bbr {mode} - Backup {what}", "", "USAGE:", usage, "", "COMMANDS:"]
    for sub in SUBS[mode]:
        names = ", ".join((sub.name, *sub.aliases))
        lines.append(f"     {names:<22} {sub.usage}")
    return "\n".join([*lines, "", "OPTIONS:", *_flag_lines(MODE_FLAGS[mode]), ""])


def sub_help(mode: str, sub: Sub) -> str:
    return "\n".join([
        "NAME:", f"   bbr {mode} {sub.name} - {sub.usage}", "",
        "USAGE:", f"   bbr {mode} {sub.name} [command options] [arguments...]", "",
        "OPTIONS:", *_flag_lines(sub.flags), "",
    ])  # fmt: skip


def _from_env(
    flags: Sequence[Flag], values: dict[str, str | bool], environ: Mapping[str, str]
) -> None:
    for spec in flags:
        if spec.key in values:
            continue
        for var in spec.env:
            if environ.get(var):
                values[spec.key] = environ[var]
                break


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> Command | Outcome:
    """Interpret bbr's argv (without the program name)."""
    if not argv or argv[0] in ("help", "h", "--help", "-h"):
        return Outcome(0, app_help())
    head = argv[0]
    if head in ("version", "v", "--version", "-v"):
        return Outcome(0, f"bbr version {VERSION}\n")
    if head not in MODE_FLAGS:
        if head.startswith("-"):
            return Outcome(
                1, f"Incorrect Usage. flag provided but not defined: {head}\n\n" + app_help()
            )
        return Outcome(1, stderr=f"No help topic for '{head}'\n")
    mode = head
    try:
        options, rest = go_flag_parse(argv[1:], MODE_FLAGS[mode])
    except _UsageError as exc:
        return Outcome(1, f"Incorrect Usage. {exc}\n\n" + mode_help(mode), mode=mode)
    if options.get("help") or any(a in ("--help", "-h") for a in rest):
        return Outcome(0, mode_help(mode), mode=mode)
    password_on_command_line = "password" in options
    if mode == "deployment":
        _from_env(MODE_FLAGS[mode], options, environ)
    for key in REQUIRED[mode]:
        if not options.get(key):
            return Outcome(1, mode_help(mode), red(f"--{key} flag is required.") + "\n", mode)
    if mode == "deployment" and bool(options.get("deployment")) == bool(
        options.get("all-deployments")
    ):
        message = "provide one of '--deployment' or '--all-deployments' flags."
        return Outcome(1, mode_help(mode), red(message) + "\n", mode)
    if not rest:
        return Outcome(0, mode_help(mode), mode=mode)
    return _parse_sub(mode, options, rest, password_on_command_line)


def _parse_sub(
    mode: str, options: dict[str, str | bool], rest: list[str], password_on_command_line: bool
) -> Command | Outcome:
    sub = next((s for s in SUBS[mode] if rest[0] == s.name or rest[0] in s.aliases), None)
    if sub is None:
        return Outcome(1, stderr=f"No help topic for '{rest[0]}'\n", mode=mode)
    try:
        sub_options, _ = go_flag_parse(rest[1:], sub.flags)
    except _UsageError as exc:
        text = f"Incorrect Usage: {exc}\n\n" + sub_help(mode, sub)
        return Outcome(1, text, mode=mode, sub=sub.name)
    if sub_options.get("help"):
        return Outcome(0, sub_help(mode, sub), mode=mode, sub=sub.name)
    if sub.name == "restore" and not sub_options.get("artifact-path"):
        stderr = red("--artifact-path flag is required.") + "\n"
        return Outcome(1, sub_help(mode, sub), stderr, mode, sub.name)
    if options.get("all-deployments") and sub.name not in ALL_DEPLOYMENTS_SUBS:
        stderr = red(f"--all-deployments is not supported by {sub.name}.") + "\n"
        return Outcome(1, sub_help(mode, sub), stderr, mode, sub.name)
    return Command(mode, sub.name, options, sub_options, password_on_command_line)
