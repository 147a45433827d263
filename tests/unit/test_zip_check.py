"""Whole-zip checks from the tail and central directory: truncation and damage are caught."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from bbr_orchestrator.core.zip_check import (
    TAIL_BYTES,
    ZipEnd,
    central_directory,
    check_head,
    zip_end,
)
from bbr_orchestrator.errors import ArtifactCorrupt


def make_zip(members: dict[str, bytes], comment: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.comment = comment
    return buffer.getvalue()


def check(raw: bytes) -> tuple[ZipEnd, tuple[str, ...]]:
    offset = max(0, len(raw) - TAIL_BYTES)
    end = zip_end(raw[offset:], offset, len(raw), "i.zip")
    check_head(raw[:4], end, "i.zip")
    cd = raw[end.directory_offset : end.directory_offset + end.directory_size]
    return end, central_directory(cd, end, "i.zip").names


MEMBERS = {"installation.yml": b"product: x\n", "blobs/a.bin": bytes(5000), "é.txt": b"u"}


def test_a_whole_zip_lists_its_members() -> None:
    """A zipfile-written archive passes and its member names come out in order."""
    end, names = check(make_zip(MEMBERS))
    assert names == ("installation.yml", "blobs/a.bin", "é.txt")
    assert end.entries == 3


def test_a_comment_after_the_end_record_is_fine() -> None:
    """The end record is found before an archive comment (which may contain its signature)."""
    _, names = check(make_zip(MEMBERS, comment=b"made by PK\x05\x06 someone"))
    assert len(names) == 3


def test_an_empty_zip_is_whole() -> None:
    """A zip without members is an end record alone."""
    end, names = check(make_zip({}))
    assert (end.entries, names) == (0, ())


@pytest.mark.parametrize("cut", [1, 22, 100, 5000])
def test_a_truncated_zip_is_refused(cut: int) -> None:
    """Cutting bytes off the end loses the end record (or moves it): ArtifactCorrupt."""
    raw = make_zip(MEMBERS)[:-cut]
    with pytest.raises(ArtifactCorrupt, match="truncated"):
        check(raw)


def test_a_file_cut_in_the_middle_is_refused() -> None:
    """Half of a zip (the members' data, no directory) is refused."""
    raw = make_zip(MEMBERS)
    with pytest.raises(ArtifactCorrupt, match="no end-of-central-directory"):
        check(raw[: len(raw) // 2])


def test_a_damaged_directory_entry_is_refused() -> None:
    """A flipped byte in a central directory signature names the damaged entry."""
    raw = bytearray(make_zip(MEMBERS))
    offset = max(0, len(raw) - TAIL_BYTES)
    end = zip_end(bytes(raw[offset:]), offset, len(raw), "i.zip")
    second = raw.index(b"PK\x01\x02", end.directory_offset + 1)
    raw[second + 1] ^= 0xFF
    with pytest.raises(ArtifactCorrupt, match="entry 1 is damaged"):
        check(bytes(raw))


def test_a_wrong_member_count_is_refused() -> None:
    """The end record and the directory must agree on how many members there are."""
    raw = bytearray(make_zip(MEMBERS))
    at = raw.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", raw, at + 8, 4, 4)
    with pytest.raises(ArtifactCorrupt, match="lists 3 members, the end record 4"):
        check(bytes(raw))


def test_not_a_zip_at_all() -> None:
    """Random bytes are refused."""
    with pytest.raises(ArtifactCorrupt, match="not a zip"):
        check(b"hello, this is not an archive" * 10)


def test_a_stub_before_the_first_member_is_refused() -> None:
    """A zip must start with a member header (a prefixed stub shifts every offset)."""
    raw = make_zip(MEMBERS)
    offset = max(0, len(raw) - TAIL_BYTES)
    end = zip_end(raw[offset:], offset, len(raw), "i.zip")
    with pytest.raises(ArtifactCorrupt, match="member header"):
        check_head(b"MZ\x90\x00", end, "i.zip")


def to_zip64(raw: bytes) -> bytes:
    """Rewrite a small zip's end record in zip64 form (as a > 4 GiB export would have it)."""
    at = raw.rindex(b"PK\x05\x06")
    _, _, _, entries, cd_size, cd_offset, _ = struct.unpack_from("<HHHHIIH", raw, at + 4)
    record_at = at
    record = b"PK\x06\x06" + struct.pack(
        "<QHHIIQQQQ", 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset
    )
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, record_at, 1)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return raw[:at] + record + locator + end


def test_zip64_end_records_are_understood() -> None:
    """The zip64 end record supplies counts and offsets the classic record cannot hold."""
    end, names = check(to_zip64(make_zip(MEMBERS)))
    assert end.entries == 3 and len(names) == 3


def test_zip64_without_its_locator_is_refused() -> None:
    """A classic record saying "see zip64" with no zip64 record behind it is damage."""
    raw = bytearray(to_zip64(make_zip(MEMBERS)))
    at = raw.rindex(b"PK\x06\x07")
    raw[at] = 0
    with pytest.raises(ArtifactCorrupt, match="locator missing"):
        check(bytes(raw))
