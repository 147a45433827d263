"""Keep the streaming buffers out of glibc's per-thread malloc arenas.

glibc serves a large allocation with its own ``mmap`` (returned to the system when freed) only
until the first such block is freed: then it raises its threshold to that block's size, and
later 16 MiB part buffers come from the arena of whichever thread allocates them, where freed
ones linger. With an upload's threads each holding buffers in their own arena, the resident
size of an encrypted upload grew by ~60 MiB that no Python object held. A fixed threshold
(which also turns the adjustment off) keeps every buffer of 4 MiB or more in its own mapping.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3
"""``mallopt`` parameter number, from glibc's ``malloc.h``."""
MMAP_THRESHOLD = 4 * 1024 * 1024
"""Above the 1 MiB blocks the SSH reader joins (they stay cheap heap blocks), below parts."""


def tune_allocator(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold for this process; False where there is no glibc ``mallopt``
    (the process then runs with its allocator's defaults)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
