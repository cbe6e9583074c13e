"""One job at a time in an output folder: an exclusive lock held for the whole job.

Two jobs writing one folder would overwrite each other's results (the settings check reads a
manifest the other job may not have written yet). ``FolderLock`` holds ``fcntl.flock`` on
``<folder>/.mind_engine.lock`` from before the settings check until the manifest is final, with
the holder (pid, host, start time, command) written in the file. The kernel releases the lock
when its process ends, however it ends (SIGKILL too), so a lock is never left stale. A second job
is refused at once, with the holder named. A symbolic link, hard link or non-file planted at the
lock's name is refused, never written through (``safe_write.open_lock_file``).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..safe_write import failure, open_lock_file, process_alive

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
        f = open_lock_file(self.path)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise FolderBusyError(f"{self.folder} is in use by another job ({self.holder()}); wait for it to "
                                  f"end or use another output folder") from None
        try:
            f.truncate(0)
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv}))
            f.flush()
        except OSError as e:  # a full disk: the lock is held all the same, the holder's name is lost
            f.close()
            raise failure(self.path, e) from None
        self.file = f
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()  # releases the lock; the holder's name stays until the next holder's
        self.file = None

    def holder(self) -> str:
        """The holder as the lock file names it. A new holder writes its name just after taking
        the lock, so a name that is missing, or of a process that has ended, is read again."""
        deadline, last = time.monotonic() + HOLDER_WAIT, None
        while True:
            try:
                h = json.loads(self.path.read_text())
                last = f"pid {h['pid']} on {h['host']}, started {h['started']}"
                if h["host"] != socket.gethostname() or process_alive(h["pid"]):
                    return last
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                return f"{last}, which has just ended" if last else "a job whose lock file does not say which"
            time.sleep(0.02)

