"""Keep the streaming buffers out of glibc's per-thread malloc arenas, and the heap warm.

glibc serves a large allocation with its own ``mmap`` (returned to the system when freed) only
until the first such block is freed: then it raises its threshold to that block's size, and
later 16 MiB part buffers come from the arena of whichever thread allocates them, where freed
ones linger. With an upload's threads each holding buffers in their own arena, the resident
size of an encrypted upload grew by ~60 MiB that no Python object held. A fixed threshold
(which also turns the adjustment off) keeps every buffer of 4 MiB or more in its own mapping.

Fixing the threshold also freezes glibc's trim threshold at its 128 KiB default (the
adjustment would have raised it to twice the threshold): every freed 1 MiB block the SSH
reader joins, and the 32 KiB packets behind it, went back to the kernel from the top of the
heap and were faulted in again, zeroed, for the next one. That is more page faults than bytes
read (870,000 per 2 GiB uploaded) and about 2 CPU seconds per 2 GiB. The trim threshold is
set to what a read channel's window holds, so the heap keeps that much for reuse.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""``mallopt`` parameter numbers, from glibc's ``malloc.h``."""
MMAP_THRESHOLD = 4 * 1024 * 1024
"""Above the 1 MiB blocks the SSH reader joins (they stay cheap heap blocks), below parts."""
TRIM_THRESHOLD = 32 * 1024 * 1024
"""Free heap glibc keeps before giving memory back: twice a read channel's 16 MiB window."""


def tune_allocator(threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Fix glibc's mmap and trim thresholds for this process; False where there is no glibc
    ``mallopt`` (the process then runs with its allocator's defaults)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_set = bool(mallopt(M_MMAP_THRESHOLD, threshold))
    return bool(mallopt(M_TRIM_THRESHOLD, trim_threshold)) and mmap_set
