"""Is this file a whole zip archive? Checked from its last bytes and its central directory.

A zip ends with its central directory (one entry per member) and an end-of-central-directory
record pointing back at it. A file cut short loses that record; a damaged directory no longer
walks. Both are found without reading the members, so a multi-GiB Ops Manager export is
checked by reading a few KiB from the jumpbox. Zip64 archives (over 4 GiB or 65535 members)
are understood. Pure: bytes in, :class:`ZipDirectory` or :class:`ArtifactCorrupt` out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bbr_orchestrator.errors import ArtifactCorrupt

LOCAL_HEADER = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_LOCATOR64 = b"PK\x06\x07"
_END_SIZE = 22
_LOCATOR_SIZE = 20
_END64_SIZE = 56
_CENTRAL_SIZE = 46
TAIL_BYTES = _END_SIZE + 0xFFFF + _LOCATOR_SIZE + _END64_SIZE
"""Read this many bytes from the end (or the whole file): the end record, its longest
comment, and the zip64 record and locator before it."""


@dataclass(frozen=True)
class ZipEnd:
    """Where the central directory is, according to the end-of-central-directory record."""

    entries: int
    directory_offset: int
    directory_size: int


@dataclass(frozen=True)
class ZipDirectory:
    """The members a zip's central directory lists, in order."""

    names: tuple[str, ...]


def zip_end(tail: bytes, tail_offset: int, size: int, source: str) -> ZipEnd:
    """Find and check the end record in ``tail`` (the file's bytes from ``tail_offset`` to its
    ``size``): the central directory must lie within the file, right before the end record."""
    if tail_offset + len(tail) != size:
        raise ValueError("tail must run to the end of the file")
    at = _find_end(tail)
    if at < 0:
        raise ArtifactCorrupt(
            source, None, "no end-of-central-directory record: the zip is truncated or not a zip"
        )
    disk, cd_disk, _, entries, cd_size, cd_offset, _ = struct.unpack_from("<HHHHIIH", tail, at + 4)
    end_at = tail_offset + at
    if (disk, cd_disk) != (0, 0):
        raise ArtifactCorrupt(source, None, "a multi-volume zip cannot be checked")
    directory_end = end_at
    if entries == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):
        entries, cd_size, cd_offset, directory_end = _zip64(tail, tail_offset, at, source)
    if cd_offset + cd_size != directory_end:
        raise ArtifactCorrupt(
            source,
            None,
            f"the central directory ({cd_size} bytes at {cd_offset}) does not end where the "
            f"end record starts ({directory_end}): the zip is truncated or damaged",
        )
    return ZipEnd(entries, cd_offset, cd_size)


def _find_end(tail: bytes) -> int:
    """The offset of the end record whose comment runs exactly to the end of ``tail``."""
    at = tail.rfind(_END, 0, len(tail) - _END_SIZE + len(_END))
    while at >= 0:
        (comment,) = struct.unpack_from("<H", tail, at + 20)
        if at + _END_SIZE + comment == len(tail):
            return at
        at = tail.rfind(_END, 0, at)
    return -1


def _zip64(tail: bytes, tail_offset: int, end_at: int, source: str) -> tuple[int, int, int, int]:
    """``(entries, directory size, directory offset, zip64 record offset)``."""
    locator_at = end_at - _LOCATOR_SIZE
    if locator_at < 0 or tail[locator_at : locator_at + 4] != _LOCATOR64:
        raise ArtifactCorrupt(source, None, "zip64 end record locator missing: the zip is damaged")
    (record_offset,) = struct.unpack_from("<Q", tail, locator_at + 8)
    record_at = record_offset - tail_offset
    if not 0 <= record_at <= locator_at - _END64_SIZE or tail[record_at : record_at + 4] != _END64:
        raise ArtifactCorrupt(source, None, "zip64 end record missing: the zip is damaged")
    entries, cd_size, cd_offset = struct.unpack_from("<QQQ", tail, record_at + 32)
    return entries, cd_size, cd_offset, record_offset


def central_directory(data: bytes, end: ZipEnd, source: str) -> ZipDirectory:
    """Walk the ``end.directory_size`` bytes of the central directory: every entry must be
    whole and carry its signature, and there must be exactly ``end.entries`` of them."""
    if len(data) != end.directory_size:
        raise ValueError("data must be the whole central directory")
    names: list[str] = []
    at = 0
    while at < len(data):
        index = len(names)
        if data[at : at + 4] != _CENTRAL or at + _CENTRAL_SIZE > len(data):
            raise ArtifactCorrupt(
                source, None, f"central directory entry {index} is damaged (at byte {at})"
            )
        flags = struct.unpack_from("<H", data, at + 8)[0]
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, at + 28)
        following = at + _CENTRAL_SIZE + name_len + extra_len + comment_len
        if following > len(data):
            raise ArtifactCorrupt(source, None, f"central directory entry {index} is cut short")
        raw = data[at + _CENTRAL_SIZE : at + _CENTRAL_SIZE + name_len]
        names.append(raw.decode("utf-8" if flags & 0x800 else "cp437", errors="replace"))
        at = following
    if len(names) != end.entries:
        raise ArtifactCorrupt(
            source,
            None,
            f"the central directory lists {len(names)} members, the end record {end.entries}",
        )
    return ZipDirectory(tuple(names))


def check_head(head: bytes, end: ZipEnd, source: str) -> None:
    """A zip with members starts with a member's local header (no prefixed stub)."""
    if end.entries and not head.startswith(LOCAL_HEADER):
        raise ArtifactCorrupt(source, None, "does not start with a zip member header")
