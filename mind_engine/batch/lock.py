"""One job at a time in an output folder: an exclusive lock held for the whole job.

Two jobs writing one folder would overwrite each other's results (the settings check reads a
manifest the other job may not have written yet). ``FolderLock`` holds ``fcntl.flock`` on
``<folder>/.mind_engine.lock`` from before the settings check until the manifest is final, with
the holder (pid, host, start time, command) written in the file. The kernel releases the lock
when its process ends, however it ends (SIGKILL too), so a lock is never left stale. A second job
is refused at once, with the holder named.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".mind_engine.lock"
HOLDER_WAIT = 1.0  # seconds to wait for a holder that has just taken the lock to write its name


class FolderBusyError(ValueError):
    """Another job holds the output folder."""


class FolderLock:
    """``with FolderLock(folder):`` the folder is this job's, or FolderBusyError is raised."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.file = None

    def __enter__(self) -> "FolderLock":
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise FolderBusyError(f"{self.folder} is in use by another job ({self.holder()}); wait for it to "
                                  f"end or use another output folder") from None
        f.truncate(0)
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv}))
        f.flush()
        self.file = f
        return self

    def __exit__(self, *exc) -> None:
        self.file.truncate(0)
        self.file.close()  # releases the lock
        self.file = None

    def holder(self) -> str:
        """The holder as its lock file names it (it writes its name just after taking the lock)."""
        deadline = time.monotonic() + HOLDER_WAIT
        while True:
            try:
                h = json.loads(self.path.read_text())
                return f"pid {h['pid']} on {h['host']}, started {h['started']}"
            except (OSError, ValueError, KeyError):
                if time.monotonic() > deadline:
                    return "a job that has not said who it is"
                time.sleep(0.02)
