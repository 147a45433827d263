"""The streaming tar verifier agrees with tarfile+hashlib however the bytes are chunked."""

from __future__ import annotations

import array
import hashlib
import io
import itertools
import os
import random
import subprocess
import tarfile
import tracemalloc
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bbr_orchestrator.core.tar_stream import TarHasher, TarMember, normalise_member_name
from bbr_orchestrator.errors import ArtifactCorrupt, TarStreamError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FORMATS = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}

component = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=60,
).filter(lambda c: c not in (".", ".."))
path = st.lists(component, min_size=1, max_size=4).map("/".join)
size = st.one_of(st.sampled_from([511, 512, 513]), st.integers(0, 1100), st.integers(0, 300_000))
entry = st.tuples(st.sampled_from(["file", "file", "file", "dir", "symlink", "hardlink"]), size)
entries = st.lists(
    st.tuples(path, entry), max_size=6, unique_by=lambda e: normalise_member_name(e[0])
)


def build_tar(
    items: Sequence[tuple[str, tuple[str, int]]], fmt: str, seed: int = 0, pax_global: bool = False
) -> bytes:
    """A tar made by tarfile; file contents are seeded random bytes."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    extra = {"comment": "global ✓"} if pax_global and fmt == "pax" else None
    with tarfile.open(fileobj=buf, mode="w", format=FORMATS[fmt], pax_headers=extra) as tar:
        for name, (kind, length) in items:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = length
                tar.addfile(info, io.BytesIO(rng.randbytes(length)))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}.get(
                kind, tarfile.LNKTYPE
            )
            info.linkname = "target" if fmt == "ustar" else "l" * 150  # GNU 'K', PAX linkpath
            tar.addfile(info)
    return buf.getvalue()


def reference(data: bytes) -> list[TarMember]:
    """Regular-file members and content hashes as tarfile + hashlib see them."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        out = []
        for info in tar.getmembers():
            if info.isreg():
                content = tar.extractfile(info).read()  # type: ignore[union-attr]
                digest = hashlib.sha256(content).hexdigest()
                out.append(TarMember(normalise_member_name(info.name), info.size, digest))
        return out


def end_of_last_file(data: bytes) -> int:
    """Offset just past the data (and padding) of the last regular-file member."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        ends = [m.offset_data + -(-m.size // 512) * 512 for m in tar.getmembers() if m.isreg()]
        return max(ends, default=0)


def end_of_marker(data: bytes) -> int:
    """Offset just past the two zero blocks that end the archive."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.getmembers()
        return tar.offset + 1024


def hash_chunks(
    chunks: Iterable[bytes | bytearray | memoryview], **kwargs: bool
) -> list[TarMember]:
    hasher = TarHasher("job.tar", **kwargs)
    for chunk in chunks:
        hasher.feed(chunk)
    return hasher.close()


def split(data: bytes, cuts: Sequence[float]) -> list[memoryview]:
    view = memoryview(data)
    points = sorted({0, len(data), *(int(c * len(data)) for c in cuts)})
    return [view[a:b] for a, b in itertools.pairwise(points)]


def fit(fmt: str, items: list[tuple[str, tuple[str, int]]]) -> list[tuple[str, tuple[str, int]]]:
    """Drop the names plain USTAR cannot store (over 100 bytes) when the format is ustar."""
    return [i for i in items if fmt != "ustar" or len(i[0].encode()) <= 100]


@FAST
@given(
    items=entries,
    fmt=st.sampled_from(sorted(FORMATS)),
    cuts=st.lists(st.floats(0, 1), max_size=40),
    seed=st.integers(0, 2**32),
    pax_global=st.booleans(),
)
def test_matches_tarfile_for_any_chunking(
    items: list[tuple[str, tuple[str, int]]],
    fmt: str,
    cuts: list[float],
    seed: int,
    pax_global: bool,
) -> None:
    """Members and SHA-256s equal tarfile+hashlib's for GNU/PAX/USTAR tars cut anywhere."""
    items = fit(fmt, items)
    if pax_global and not items:  # tarfile cannot read a tar holding only a global header
        items = [("f", ("file", 1))]
    data = build_tar(items, fmt, seed, pax_global)
    assert hash_chunks(split(data, cuts)) == reference(data)


@FAST
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_small_random_chunks(data: st.DataObject, seed: int) -> None:
    """Chunks of 1..1100 bytes (splitting every header) give the same result."""
    items = [
        ("p" * 60 + "/" + "a" * 90, ("file", 700)),
        ("d", ("dir", 0)),
        ("d/b", ("file", 0)),
        ("c", ("file", 3)),
    ]
    tar = build_tar(items, data.draw(st.sampled_from(sorted(FORMATS))), seed)
    sizes = data.draw(st.lists(st.integers(1, 1100), min_size=1, max_size=10))
    chunks, pos, i = [], 0, 0
    while pos < len(tar):
        chunks.append(tar[pos : pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    assert hash_chunks(chunks) == reference(tar)


def test_one_byte_chunks() -> None:
    """Feeding one byte at a time works (headers, PAX data and content all split)."""
    tar = build_tar([("é" * 80, ("file", 2000)), ("x", ("symlink", 0))], "pax")
    assert hash_chunks(tar[i : i + 1] for i in range(len(tar))) == reference(tar)


@FAST
@given(
    items=entries, fmt=st.sampled_from(["gnu", "pax"]), where=st.floats(0, 1), seed=st.integers(0)
)
def test_flipped_byte_changes_only_that_member(
    items: list[tuple[str, tuple[str, int]]], fmt: str, where: float, seed: int
) -> None:
    """Flipping one content byte changes exactly that member's hash and nothing else."""
    original = build_tar([*items, ("last", ("file", 10))], fmt, seed)
    with tarfile.open(fileobj=io.BytesIO(original)) as tar:
        files = [m for m in tar.getmembers() if m.isreg() and m.size]
    victim = files[int(where * len(files)) % len(files)]
    data = bytearray(original)
    data[victim.offset_data + int(where * victim.size) % victim.size] ^= 0x01
    before, after = reference(original), hash_chunks([bytes(data)])
    changed = [a.name for a, b in zip(after, before, strict=True) if a != b]
    assert changed == [normalise_member_name(victim.name)]


@FAST
@given(items=entries, fmt=st.sampled_from(sorted(FORMATS)), where=st.floats(0, 1, exclude_max=True))
def test_truncation_is_never_silent(
    items: list[tuple[str, tuple[str, int]]], fmt: str, where: float
) -> None:
    """A tar cut before its end-of-archive marker fails; lenient mode loses no file unnoticed."""
    data = build_tar(fit(fmt, items), fmt)
    full = reference(data)
    cut = int(where * end_of_marker(data))
    with pytest.raises(TarStreamError):
        hash_chunks([data[:cut]])
    try:
        lenient = hash_chunks([data[:cut]], require_end_marker=False)
    except TarStreamError:
        return
    assert lenient != full or cut >= end_of_last_file(data)


def test_record_padding_after_the_marker_may_be_cut() -> None:
    """Bytes after the two zero blocks are only padding: cutting them loses nothing."""
    data = build_tar([("f", ("file", 5))], "gnu")
    assert len(data) > end_of_marker(data)
    assert hash_chunks([data[: end_of_marker(data)]]) == reference(data)


def test_real_gnu_tar_like_bbr(tmp_path: Path) -> None:
    """A tar made by `tar -C DIR -c .` (what bbr makes) hashes like the files on disk."""
    root = tmp_path / "artifact"
    (root / "sub" / ("deep" * 30)).mkdir(parents=True)
    files = {
        "dump.sql": os.urandom(200_000),
        "empty-file": b"",
        "sub/ünïcødé.txt": "héllo".encode(),
        f"sub/{'deep' * 30}/{'n' * 120}": os.urandom(3000),
    }
    for rel, content in files.items():
        (root / rel).write_bytes(content)
    (root / "link").symlink_to("dump.sql")
    for fmt in ("gnu", "pax"):
        tar = subprocess.run(
            ["tar", f"--format={fmt}", "-C", str(root), "-c", "-f", "-", "."],
            check=True,
            capture_output=True,
        ).stdout
        members = hash_chunks(tar[i : i + 65536] for i in range(0, len(tar), 65536))
        got = {m.name: m.sha256 for m in members}
        assert got == {f"./{k}": hashlib.sha256(v).hexdigest() for k, v in files.items()}


def test_memory_is_bounded_for_a_big_member() -> None:
    """A 64 MiB member fed in 1 MiB chunks keeps peak traced memory under 2 MiB."""
    info = tarfile.TarInfo("./big")
    info.size = 64 << 20
    header = info.tobuf(tarfile.GNU_FORMAT)
    chunk = os.urandom(1 << 20)
    hasher = TarHasher("big.tar")
    tracemalloc.start()
    try:
        hasher.feed(header)
        for _ in range(64):
            hasher.feed(chunk)
        hasher.feed(bytes(1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    [member] = hasher.close()
    assert member.size == 64 << 20
    assert peak < 2 << 20


def with_size_field(block: bytes, field: bytes) -> bytes:
    """A ustar/GNU header block with its size field replaced and its checksum recomputed."""
    patched = bytearray(block)
    patched[124:136] = field
    patched[148:156] = b" " * 8
    patched[148:156] = b"%06o\0 " % sum(patched)
    return bytes(patched)


def test_gnu_base256_size() -> None:
    """A size in GNU base-256 notation (used at 8 GiB and above) is decoded."""
    info = tarfile.TarInfo("./f")
    info.size = 5
    header = with_size_field(info.tobuf(tarfile.GNU_FORMAT), b"\x80" + (5).to_bytes(11, "big"))
    tar = header + b"hello".ljust(512, b"\0") + bytes(1024)
    assert hash_chunks([tar]) == [TarMember("./f", 5, hashlib.sha256(b"hello").hexdigest())]


def test_pax_size_overrides_the_header_size() -> None:
    """A PAX size= record (how PAX stores sizes of 8 GiB and more) wins over the size field."""
    info = tarfile.TarInfo("./f")
    info.size = 5
    info.pax_headers = {"size": "5"}
    buf = info.tobuf(tarfile.PAX_FORMAT)
    buf = buf[:-512] + with_size_field(buf[-512:], b"00000000000\0")
    tar = buf + b"hello".ljust(512, b"\0") + bytes(1024)
    assert hash_chunks([tar]) == reference(tar) == [TarMember("./f", 5, reference(tar)[0].sha256)]


def test_error_names_file_member_and_offset() -> None:
    """Truncation inside content names the tar, the member and the byte offset."""
    data = build_tar([("./dump.sql", ("file", 5000))], "gnu")
    with pytest.raises(TarStreamError) as caught:
        hash_chunks([data[:1000]])
    err = caught.value
    assert isinstance(err, ArtifactCorrupt)
    assert (err.file, err.member, err.offset) == ("job.tar", "./dump.sql", 1000)
    assert "job.tar" in str(err) and "./dump.sql" in str(err)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty stream"),
        (b"not a tar at all" * 64, "not a tar header"),
        (bytes(1024) + b"junk", "non-zero data after the end-of-archive marker"),
        (bytes(300), "truncated inside a header"),
    ],
)
def test_garbage_is_rejected(data: bytes, reason: str) -> None:
    """Non-tar input, an empty stream and junk after the end marker are errors."""
    with pytest.raises(TarStreamError, match=reason):
        hash_chunks([data])


def test_data_after_a_lone_zero_block_is_rejected() -> None:
    """A member after a single zero block (a spliced archive) is not silently ignored."""
    one = build_tar([("a", ("file", 1))], "gnu")
    start = end_of_marker(one) - 1024
    with pytest.raises(TarStreamError, match="continues after an end-of-archive block"):
        hash_chunks([one[:start] + bytes(512) + one[:start] + bytes(1024)])


def test_unsupported_and_oversized_headers() -> None:
    """GNU sparse members and extended headers above the cap are refused, not misread."""
    info = tarfile.TarInfo("./s")
    info.type = tarfile.GNUTYPE_SPARSE
    with pytest.raises(TarStreamError, match="sparse"):
        hash_chunks([info.tobuf(tarfile.GNU_FORMAT)])
    long_name = build_tar([("n" * 5000, ("file", 1))], "gnu")
    hasher = TarHasher("x.tar", max_extended_header=1000)
    with pytest.raises(TarStreamError, match="exceeds the cap"):
        hasher.feed(long_name)
    with pytest.raises(TarStreamError, match="exceeds the cap"):
        hasher.close()


def test_lenient_mode_accepts_eof_at_a_block_boundary() -> None:
    """Without require_end_marker a tar missing its zero blocks is accepted."""
    data = build_tar([("a", ("file", 10))], "ustar")
    cut = end_of_marker(data) - 1024
    assert hash_chunks([data[:cut]], require_end_marker=False) == reference(data)
    with pytest.raises(TarStreamError, match="no end-of-archive marker"):
        hash_chunks([data[:cut]])


def test_accepts_bytearray_and_non_byte_memoryviews() -> None:
    """Chunks may be bytearrays or memoryviews of any item format."""
    data = build_tar([("a", ("file", 4096))], "gnu")
    words = array.array("I", data)
    assert hash_chunks([memoryview(words)]) == hash_chunks([bytearray(data)]) == reference(data)


def test_feed_after_close_is_a_programming_error() -> None:
    """feed() after close() raises ValueError; close() twice returns the same list."""
    hasher = TarHasher()
    hasher.feed(build_tar([("a", ("file", 1))], "gnu"))
    assert hasher.close() == hasher.close()
    with pytest.raises(ValueError, match="after close"):
        hasher.feed(b"x")


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("dump.sql", "./dump.sql"), ("./dump.sql", "./dump.sql"), ("./", "./"), (".", "./"),
     ("./dir/", "./dir"), ("a//b/./c", "./a/b/c"), ("/abs", "./abs"), ("../x", "./../x")],
)  # fmt: skip
def test_normalise_member_name(raw: str, normal: str) -> None:
    """Member names take bbr's metadata form ./dir/file; '..' is kept, never resolved."""
    assert normalise_member_name(raw) == normal
