"""Our one retry loop for S3 requests: bounded attempts, exponential backoff with jitter.

botocore's own retries are switched off (``make_client``), so every retry happens here,
is counted against :class:`RetryPolicy`, and is logged as a structured event.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bbr_orchestrator.adapters.s3.failures import S3_FAILURES, translate
from bbr_orchestrator.errors import StorageUnavailable
from bbr_orchestrator.log import get_logger

T = TypeVar("T")
Sleep = Callable[[float], None]
log = get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a transient S3 failure is retried, and how long we wait in between.

    ``attempts`` counts every try (5: the first plus 4 retries). The wait before retry ``n``
    is ``min(max_delay, base_delay * 2**(n-1))``, half of it fixed and half random (jitter),
    so 5 attempts wait at most about 0.5 + 1 + 2 + 4 = 7.5 s with the defaults.
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("attempts must be >= 1 and delays >= 0")

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after the ``failed_attempt``-th try failed."""
        ceiling = min(self.max_delay, self.base_delay * float(2 ** (failed_attempt - 1)))
        jitter = random.uniform(0, ceiling / 2)  # noqa: S311 (jitter, not crypto)
        return ceiling / 2 + jitter


def call_with_retries(
    request: Callable[[], T],
    *,
    policy: RetryPolicy,
    bucket: str,
    key: str,
    operation: str,
    event: str = "s3_request_retried",
    sleep: Sleep = time.sleep,
    **fields: Any,
) -> T:
    """Run ``request``; retry transient failures per ``policy``; raise our errors otherwise.

    Transient: connection errors, timeouts, HTTP 5xx / 429 and SlowDown-like codes. Anything
    else (auth, not found, bad digest, rejected parts) is raised at once, translated.
    """
    attempt = 1
    while True:
        try:
            return request()
        except S3_FAILURES as exc:
            error = translate(exc, bucket=bucket, key=key, operation=operation, attempts=attempt)
            if not isinstance(error, StorageUnavailable) or attempt >= policy.attempts:
                raise error from exc
            wait = policy.delay(attempt)
            log.warning(
                event,
                bucket=bucket,
                key=key,
                operation=operation,
                attempt=attempt,
                max_attempts=policy.attempts,
                retry_in_seconds=round(wait, 3),
                error=error.cause,
                **fields,
            )
            sleep(wait)
            attempt += 1
