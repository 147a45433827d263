"""Request bodies and the allocator: parts go to botocore without copies or arena growth."""

from __future__ import annotations

import io
import subprocess
import sys

from bbr_orchestrator.adapters.allocator import TRIM_THRESHOLD, tune_allocator
from bbr_orchestrator.adapters.s3.integrity import ViewReader, request_body


def test_a_whole_part_buffer_is_the_body_itself() -> None:
    """A view of a whole bytearray goes as that bytearray (one sendall, no 100-continue)."""
    buffer = bytearray(b"0123456789")
    assert request_body(memoryview(buffer).toreadonly()) is buffer


def test_a_slice_goes_as_a_reader_of_exactly_its_bytes() -> None:
    """The shorter last part (a slice of its buffer) is read through a seekable ViewReader
    that yields only the slice, again after a rewind (a retried request)."""
    buffer = bytearray(b"0123456789")
    body = request_body(memoryview(buffer)[2:7])
    assert isinstance(body, ViewReader)
    assert body.read() == b"23456"
    body.seek(0, io.SEEK_SET)
    assert body.read(2) == b"23" and body.read() == b"456"


def test_the_allocator_threshold_is_set_on_glibc() -> None:
    """tune_allocator reaches glibc's mallopt on this (glibc) platform and it accepts."""
    assert tune_allocator() is True


_REUSE_PROBE = """
import resource, sys
from bbr_orchestrator.adapters.allocator import tune_allocator
tune_allocator(trim_threshold=int(sys.argv[1]))
block = b"x" * (1024 * 1024)  # 1 MiB, every page written, like a joined SSH block
del block
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(300):
    block = b"x" * (1024 * 1024)
    del block  # at the top of the heap: kept, or handed back to the kernel
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults_reusing_1mib_blocks(trim_threshold: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _REUSE_PROBE, str(trim_threshold)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def test_freed_blocks_are_reused_without_new_page_faults() -> None:
    """Freed 1 MiB blocks are reused with no new page faults (a 128 KiB trim faults them in)."""
    tuned = _faults_reusing_1mib_blocks(TRIM_THRESHOLD)
    default = _faults_reusing_1mib_blocks(128 * 1024)
    assert tuned < 2_000
    assert default > 30_000
