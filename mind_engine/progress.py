"""Progress on stderr: a tqdm bar on a terminal; elsewhere (a log file, a pipe, a CI log) one
plain line every ``LOG_EVERY_S`` seconds and one at the end, never a carriage return (tqdm
redraws its line with ``\\r`` wherever it writes, which a log shows as one endless line).

``progress(iterable=None, total=None, desc, unit, show)`` returns either, with the calls both
answer: iteration, ``update``, ``set_postfix``, ``write``, ``close`` and ``with``.
"""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

LOG_EVERY_S = 5.0  # seconds between two lines off a terminal


class LineProgress:
    """tqdm's calls, written as whole lines: ``desc: n/total unit (postfix), elapsed`` at most
    every ``every`` seconds, and once more when the work ends (or is closed) unless that line
    was just written. ``clock``: seconds, ``time.perf_counter`` (a test's own clock)."""

    def __init__(self, iterable=None, total: int | None = None, desc: str = "", unit: str = "it",
                 file=None, every: float = LOG_EVERY_S, clock=time.perf_counter, initial: int = 0):
        self.iterable, self.desc, self.unit, self.every, self.clock = iterable, desc, unit, every, clock
        self.total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
        self.file = file if file is not None else sys.stderr
        self.n, self.shown, self.postfix, self.closed = initial, initial, "", False
        self.start = self.last = clock()

    def _line(self, now: float) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        extra = f" ({self.postfix})" if self.postfix else ""
        print(f"{self.desc}: {self.n}{of} {self.unit}{extra}, {now - self.start:.0f} s", file=self.file, flush=True)
        self.last, self.shown = now, self.n

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.every:
            self._line(now)

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def write(self, s: str, file=None) -> None:
        print(s, file=file if file is not None else self.file, flush=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.shown != self.n:
                self._line(self.clock())

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(iterable=None, total: int | None = None, desc: str = "", unit: str = "it", show: bool | None = None,
             initial: int = 0):
    """A bar on a terminal, lines elsewhere, or nothing: ``show`` True, False, or None (only on a
    terminal, as tqdm's ``disable=None``); ``initial``: the count it starts from (a resumed run)."""
    tty = sys.stderr.isatty()
    if show is False or (show is None and not tty):
        return tqdm(iterable, total=total, disable=True)
    if tty:
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=0.5, dynamic_ncols=True,
                    initial=initial)
    return LineProgress(iterable, total, desc, unit, initial=initial)
