"""SIGTERM as an exception for the length of a job, so that the job can say in its manifest
that it was stopped (Ctrl-C, SIGINT, is Python's KeyboardInterrupt already)."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Terminated(BaseException):
    """SIGTERM arrived during a job. A BaseException, as KeyboardInterrupt: the per-pair
    ``except Exception`` of the workers does not record it as a failed pair."""


def _raise(signum, frame):
    raise Terminated(f"stopped by signal {signal.Signals(signum).name}")


@contextmanager
def terminate_raises():
    """Within the block SIGTERM raises ``Terminated``, where Python can handle it (the main
    thread) and nobody else does (its handler is the default); the handler is restored after."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
