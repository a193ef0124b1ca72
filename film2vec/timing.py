"""Wall times: one clock for every stage's `seconds`, so each summary counts time the same way."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Stopwatch:
    """Seconds since it started, and since its last lap, rounded as summaries show them."""

    def __init__(self) -> None:
        self.started = self.lapped = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 1)

    def lap(self) -> float:
        """Seconds since the last lap (or the start), then a new lap begins."""
        now = time.perf_counter()
        seconds, self.lapped = round(now - self.lapped, 1), now
        return seconds


def timed(name: str, stage: Callable[..., dict], *arguments, **options) -> dict:
    """Run a stage, logging its start and its wall time, which its summary gets as "seconds"."""
    log.info("%s …", name)
    watch = Stopwatch()
    summary = stage(*arguments, **options)
    summary["seconds"] = watch.seconds
    log.info("%s done in %.1f s", name, summary["seconds"])
    return summary
