"""A stand-in for ``om`` (the Ops Manager CLI): the tests' double for ``om export-installation``.

It takes om's global flags (``--target``, ``--ca-cert`` / ``--skip-ssl-validation``,
``--request-timeout``) and ``export-installation --output-file F``, reads credentials from the
OM_* environment only (refusing them on the command line), writes a small real zip to ``F``
with om's progress lines, misbehaves on demand (:class:`OmFaults`), and records every
invocation (credentials by SHA-256 only). Standard library only: it runs under whatever Python
the jumpbox has.

Typical use::

    om = install(bin_dir, state_dir)              # bin_dir/om, a /bin/sh wrapper
    set_faults(state_dir, {"fail": "Ops Manager is busy", "once": True})
    ... run om ... ; invocations(state_dir)[-1]["exit_code"] == 1
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import faults as _faults
from . import record as _record
from .cli import VERSION
from .faults import OmFaultError, OmFaults
from .installation import installation_zip, members
from .record import STATE_ENV

__all__ = [
    "STATE_ENV",
    "VERSION",
    "OmFaultError",
    "OmFaults",
    "clear_faults",
    "install",
    "installation_zip",
    "invocations",
    "members",
    "set_faults",
]

_PACKAGE_ROOT = Path(__file__).resolve().parents[3]


def install(bin_dir: Path, state_dir: Path, python: str = sys.executable) -> Path:
    """Create ``bin_dir/om`` and the state dir (0700); return the wrapper.

    The wrapper exports ``OM_SIM_STATE=state_dir`` unless the environment already sets it,
    puts this source tree on PYTHONPATH and runs ``python -m bbr_orchestrator.sandbox.omsim``.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "om"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# om simulator (bbr-orchestrator's test double for the Ops Manager CLI)\n"
        f': "${{{STATE_ENV}:={shlex.quote(str(state_dir))}}}"\n'
        f"export {STATE_ENV}\n"
        f'PYTHONPATH={shlex.quote(str(_PACKAGE_ROOT))}"${{PYTHONPATH:+:$PYTHONPATH}}"\n'
        "export PYTHONPATH\n"
        f'exec {shlex.quote(python)} -m bbr_orchestrator.sandbox.omsim "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    return wrapper


FaultSpec = OmFaults | Mapping[str, Any]


def set_faults(state_dir: Path, faults: FaultSpec | Sequence[FaultSpec]) -> None:
    """Replace the faults the next invocations see (one entry, or several)."""
    specs = [faults] if isinstance(faults, (OmFaults, Mapping)) else list(faults)
    entries = [f if isinstance(f, OmFaults) else OmFaults.from_dict(f) for f in specs]
    _faults.save(Path(state_dir), [entry.validate() for entry in entries])


def clear_faults(state_dir: Path) -> None:
    """No more faults: every invocation behaves like a healthy om."""
    _faults.save(Path(state_dir), [])


def invocations(state_dir: Path) -> list[dict[str, Any]]:
    """One record per finished om invocation, oldest first.

    Keys: argv, cwd, pid, started_at, finished_at, command, exit_code (None when killed),
    signal (e.g. "SIGTERM"), credentials ({OM_*: {present, sha256}}; never a value),
    credentials_present (a whole username/password or client pair), credential_flags_in_argv,
    secret_in_argv, and for export-installation target, output_file, faults, bytes_written.
    """
    return _record.read(Path(state_dir))
