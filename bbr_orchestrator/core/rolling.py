"""Rolling verification: which stored objects one run of a rolling verify job re-reads.

Stateless and deterministic: every object key falls into one of ``N = ceil(100 / percent)``
buckets by its SHA-256, and the ``k``-th firing of the job (``k`` = how many firings came
before it) checks bucket ``k mod N``. So any ``N`` consecutive firings check every object that
is stored throughout them, each firing about ``1/N`` of the objects (at most ``percent`` of
them), whatever backups are added or pruned meanwhile, and whichever daemon runs the firing.
The share is by object count: with objects of similar size it is also the share of bytes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass


def bucket_count(percent: int) -> int:
    """``N``: how many firings it takes to cover everything at ``percent`` (1..100) a run."""
    if not 1 <= percent <= 100:
        raise ValueError(f"the rolling percentage must be within 1..100, got {percent}")
    return math.ceil(100 / percent)


def bucket_of(key: str, buckets: int) -> int:
    """The bucket of an object key: ``int(sha256(key)) mod buckets``."""
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1, got {buckets}")
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest(), "big") % buckets


@dataclass(frozen=True)
class RollingSlice:
    """The objects firing number ``firing`` checks at ``percent`` a run."""

    percent: int
    firing: int

    def __post_init__(self) -> None:
        if self.firing < 0:
            raise ValueError(f"the firing number must be >= 0, got {self.firing}")
        bucket_count(self.percent)

    @property
    def buckets(self) -> int:
        return bucket_count(self.percent)

    @property
    def bucket(self) -> int:
        """Which bucket this firing checks."""
        return self.firing % self.buckets

    def selects(self, key: str) -> bool:
        """Whether this firing re-reads the object stored under ``key``."""
        return bucket_of(key, self.buckets) == self.bucket

    def describe(self) -> str:
        """``slice 3 of 10 (10% a run)``, for logs."""
        return f"slice {self.bucket + 1} of {self.buckets} ({self.percent}% a run)"
