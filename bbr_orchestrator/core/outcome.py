"""bbr's exit status is a bitmask (bbr-contract.md section 2); it is decoded here and only here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag


class ExitBit(IntFlag):
    """The bits bbr sets. Bit 1 (value 2) is never set by bbr."""

    GENERAL = 1
    LOCK = 4
    UNLOCK = 8
    CLEANUP = 16


_NAMES = {
    ExitBit.GENERAL: "failed",
    ExitBit.LOCK: "lock-failed",
    ExitBit.UNLOCK: "unlock-failed",
    ExitBit.CLEANUP: "cleanup-failed",
}
_KNOWN = ExitBit.GENERAL | ExitBit.LOCK | ExitBit.UNLOCK | ExitBit.CLEANUP


@dataclass(frozen=True)
class Outcome:
    """What one bbr exit status means for the run and the platform."""

    exit_code: int
    bits: ExitBit

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    @property
    def name(self) -> str:
        """``succeeded``, ``failed``, ``lock-failed``, ``unlock-failed``, ``cleanup-failed``, or
        several joined with ``+`` (``lock-failed+unlock-failed`` for exit 12); ``killed`` when
        bbr died without an exit status; ``unknown-exit-N`` for bits bbr never sets."""
        if self.exit_code == 0:
            return "succeeded"
        if self.exit_code < 0:
            return "killed"
        if self.exit_code & ~int(_KNOWN):
            return f"unknown-exit-{self.exit_code}"
        return "+".join(name for bit, name in _NAMES.items() if bit in self.bits)

    @property
    def platform_possibly_locked(self) -> bool:
        """A post-backup-unlock or post-restore-unlock script failed: jobs may still be locked."""
        return ExitBit.UNLOCK in self.bits

    @property
    def backup_artifact_complete(self) -> bool:
        """After a backup: exit 0, or only the unlock failed (bbr says the artifact is complete)."""
        return self.exit_code == 0 or self.bits == ExitBit.UNLOCK

    @property
    def needs_cleanup(self) -> bool:
        """Whether the matching ``*-cleanup`` must run (any failure, including a kill)."""
        return self.exit_code != 0


def decode_exit(exit_code: int) -> Outcome:
    """Decode bbr's exit status (negative: no status, the process was killed)."""
    bits = ExitBit(exit_code & int(_KNOWN)) if exit_code > 0 else ExitBit(0)
    return Outcome(exit_code=exit_code, bits=bits)
