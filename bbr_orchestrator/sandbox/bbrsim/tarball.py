"""Job tars as ``tar -C DIR -c .`` makes them, hashed as written; re-hashing; damage on demand."""

from __future__ import annotations

import hashlib
import math
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

LARGE_MEMBER = "./large-artifact.bin"
_CHUNK = 1024 * 1024
_BLOCK = 4096


class _Sink:
    """The tar's output file, counting bytes for bbr's ``-- N% complete`` lines."""

    def __init__(self, raw: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self.raw = raw
        self.on_bytes = on_bytes
        self.written = 0

    def write(self, data: bytes) -> int:
        count = self.raw.write(data)
        self.written += len(data)
        self.on_bytes(self.written)
        return count

    def tell(self) -> int:
        return self.raw.tell()

    def read(self, size: int = -1) -> bytes:
        raise OSError("the tar being written is not readable")

    def seek(self, position: int) -> int:
        return self.raw.seek(position)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        """The caller closes the real file."""


class _Hashing:
    """A reader that hashes what passes through it."""

    def __init__(self, raw: BinaryIO | PatternReader) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha.update(data)
        return data


class PatternReader:
    """``size`` deterministic pseudo-random bytes, generated on the fly in constant memory."""

    def __init__(self, size: int, seed: str) -> None:
        self.size = size
        self.position = 0
        digest = hashlib.sha256(seed.encode()).digest()
        block = b"".join(
            hashlib.sha256(digest + i.to_bytes(4, "big")).digest() for i in range(2048)
        )
        self.block = block * 2  # 128 KiB, so any 64 KiB window is one slice

    def read(self, size: int = -1) -> bytes:
        remaining = self.size - self.position
        want = remaining if size < 0 else min(size, remaining)
        half = len(self.block) // 2
        parts = []
        while want > 0:
            offset = self.position % half
            take = min(want, half)
            parts.append(self.block[offset : offset + take])
            self.position += take
            want -= take
        return b"".join(parts)


@dataclass
class TarResult:
    checksums: dict[str, str]
    """SHA-256 of every non-directory member, as bbr computes it from the local tar."""
    regular: set[str]
    """The members that are regular files (what ``find -type f`` sees on the instance)."""


def disk_usage(source: Path, extra: int = 0) -> int:
    """Roughly ``du -sb``-in-blocks of a directory: the size bbr announces before copying."""
    total = _BLOCK
    for dirpath, dirnames, filenames in os.walk(source):
        total += _BLOCK * len(dirnames)
        for name in filenames:
            size = os.lstat(os.path.join(dirpath, name)).st_size
            total += _BLOCK * math.ceil(size / _BLOCK)
    return total + _BLOCK * math.ceil(extra / _BLOCK)


def content_size(source: Path) -> int:
    """The bytes of every regular file under ``source`` (what the copy's percentages count)."""
    total = 0
    for dirpath, _, filenames in os.walk(source):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                total += os.stat(path).st_size
    return total


def human_size(size: int) -> str:
    """``du -h`` style: ``4.0K``, ``16K``, ``51M``."""
    if size < 1024:
        return str(size)
    value = float(size)
    for unit in "KMGTPE":
        value /= 1024
        if value < 1024 or unit == "E":
            break
    if value < 10:
        return f"{math.ceil(value * 10) / 10:.1f}{unit}"
    return f"{math.ceil(value)}{unit}"


def _root_info(tar: tarfile.TarFile, path: Path, arcname: str) -> tarfile.TarInfo:
    info = tar.gettarinfo(str(path), arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def write_job_tar(
    source: Path, tar_path: Path, large: int, seed: str, on_bytes: Callable[[int], None]
) -> TarResult:
    """``tar -C source -c .`` into ``tar_path`` (plus a generated member of ``large`` bytes)."""
    result = TarResult({}, set())
    with tar_path.open("wb") as raw:
        sink = _Sink(raw, on_bytes)
        with tarfile.TarFile(
            fileobj=sink, mode="w", format=tarfile.GNU_FORMAT, copybufsize=_CHUNK
        ) as tar:
            tar.addfile(_root_info(tar, source, "."))
            _add_tree(tar, source, ".", result)
            if large:
                info = tarfile.TarInfo(LARGE_MEMBER)
                info.size, info.mode, info.mtime = large, 0o644, int(source.stat().st_mtime)
                info.uname = info.gname = "root"
                reader = _Hashing(PatternReader(large, seed))
                tar.addfile(info, reader)
                result.checksums[LARGE_MEMBER] = reader.sha.hexdigest()
                result.regular.add(LARGE_MEMBER)
    return result


def _add_tree(tar: tarfile.TarFile, directory: Path, prefix: str, result: TarResult) -> None:
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        path = Path(entry.path)
        arcname = f"{prefix}/{entry.name}"
        info = _root_info(tar, path, arcname)
        if info.isdir():
            tar.addfile(info)
            _add_tree(tar, path, arcname, result)
        elif info.isreg():
            with path.open("rb") as handle:
                reader = _Hashing(handle)
                tar.addfile(info, reader)
            result.checksums[arcname] = reader.sha.hexdigest()
            result.regular.add(arcname)
        else:  # a symlink or other special file: tarred, hashed empty, invisible to find -type f
            tar.addfile(info)
            result.checksums[arcname] = hashlib.sha256(b"").hexdigest()


def _copy(source: IO[bytes] | None, sink: Callable[[bytes], object]) -> None:
    """Stream ``source`` into ``sink`` in bounded chunks (a missing source is empty)."""
    while source is not None:
        chunk = source.read(_CHUNK)
        if not chunk:
            return
        sink(chunk)


def tar_checksums(tar_path: Path) -> dict[str, str]:
    """Re-hash every non-directory member (raises tarfile.TarError/OSError when unreadable)."""
    checksums: dict[str, str] = {}
    with tarfile.open(tar_path, mode="r:") as tar:
        for member in tar:
            if member.isdir():
                continue
            sha = hashlib.sha256()
            _copy(tar.extractfile(member), sha.update)
            checksums[member.name] = sha.hexdigest()
    return checksums


def extract(tar_path: Path, destination: Path) -> None:
    """Unpack a job tar into ``destination`` (regular files and directories only)."""
    root = destination.resolve()
    with tarfile.open(tar_path, mode="r:") as tar:
        for member in tar:
            target = (root / member.name).resolve()
            if target != root and root not in target.parents:
                continue  # never write outside the job's directory
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isreg():
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    _copy(tar.extractfile(member), out.write)
                target.chmod(member.mode & 0o777)


def _first_content(tar_path: Path) -> tuple[int, int] | None:
    with tarfile.open(tar_path, mode="r:") as tar:
        for member in tar:
            if member.isreg() and member.size > 0:
                return member.offset_data, member.size
    return None


def corrupt(tar_path: Path) -> None:
    """Flip one byte of the first non-empty member's content (the tar stays well-formed)."""
    found = _first_content(tar_path)
    if found is None:
        return
    with tar_path.open("r+b") as handle:
        handle.seek(found[0])
        byte = handle.read(1)
        handle.seek(found[0])
        handle.write(bytes([byte[0] ^ 0xFF]))


def truncate(tar_path: Path) -> None:
    """Cut the tar in the middle of the first non-empty member's content."""
    found = _first_content(tar_path)
    cut = found[0] + found[1] // 2 if found else 512
    os.truncate(tar_path, cut)
