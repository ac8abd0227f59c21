"""Progress of a job: items done / failed, items per second and ETA.

In a terminal it is a tqdm bar; otherwise (Snakemake job logs, cluster jobs) plain log lines
such as ``embed galileo_nano: 640/1000 items (2 failed), 41.3 items/s, ETA 9s``, at most one
every ``every_s`` seconds plus a last one when the job ends.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

__all__ = ["Progress"]

log = logging.getLogger("eoembed.progress")


class Progress:
    """Counts items of one stage; thread-safe.

    Args:
        what: Label, e.g. ``"fetch s2-10m-c20"`` or ``"embed galileo_nano"``.
        total: Items expected.
        every_s: Least seconds between two plain log lines.
        bar: Show a tqdm bar (default: when stderr is a terminal).
    """

    def __init__(self, what: str, total: int, every_s: float = 10.0, bar: bool | None = None,
                 clock=time.perf_counter) -> None:
        self.what, self.total, self.every_s, self.clock = what, int(total), float(every_s), clock
        self.done = self.failed = 0
        self.t0 = self._last = clock()
        self._lock = threading.Lock()
        self._bar = None
        if bar if bar is not None else sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=what, unit="item")

    def rate(self) -> float:
        """Items per second so far."""
        elapsed = self.clock() - self.t0
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """``<what>: done/total items (n failed), r items/s, ETA s``."""
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_text = f"{eta:.0f}s" if eta == eta else "?"
        return (f"{self.what}: {self.done}/{self.total} items ({self.failed} failed), "
                f"{rate:.1f} items/s, ETA {eta_text}")

    def update(self, n: int = 1, failed: bool | int = False) -> None:
        """Count ``n`` more items (``failed``: how many of them failed, or True for all)."""
        with self._lock:
            self.done += n
            self.failed += n if failed is True else int(failed)
            if self._bar is not None:
                self._bar.update(n)
                return
            now = self.clock()
            if now - self._last >= self.every_s or self.done >= self.total:
                self._last = now
                log.info("%s", self.line())

    def close(self) -> None:
        """End the bar (or log the final line if it was not logged)."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            elif self.done < self.total:
                log.info("%s", self.line())
