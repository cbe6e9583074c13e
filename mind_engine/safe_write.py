"""The one way mind_engine writes a file (figures, JSON, npz, manifests, checkpoints, exports, locks).

Why: a write must never destroy what it should not. So every writer hands its bytes to
``write_bytes`` (or ``write_text`` / ``write_json``), which

* refuses a destination that is the same file as one of the inputs (same device and inode: through
  hard links and symbolic links, not only by path; ``check_not_input``);
* writes a temporary in the destination's folder, created with O_CREAT|O_EXCL|O_NOFOLLOW (a symbolic
  link or file planted at that name is never opened), fsyncs it and installs it with ``os.replace``
  (a symbolic link at the destination is replaced, its target untouched; a reader sees the old file
  or the new one, never a torn one);
* on any failure removes the temporary, keeps the old file and raises ``WriteError``: one line naming
  the file and, when the disk is full, the free space;
* removes the temporaries a killed run of this host left for the same destination (their process is
  gone; looked for once per folder and process); any other stale temporary is ignored (names are
  random), never fatal.

Libraries that write to a path themselves (matplotlib, Pillow, OpenCV, torch.save, onnx) write to an
in-memory buffer, whose bytes come here. ``append_line`` (logs) and ``open_lock_file`` (folder locks)
cover the two files that are not replaced whole; both refuse a symbolic link or a hard-linked file.
This module imports nothing of mind_engine: every layer may use it.
"""
from __future__ import annotations

import errno
import io
import json
import os
import re
import secrets
import shutil
import socket
import stat
import threading
import zlib
from pathlib import Path

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"  # temporaries of this host carry it


class WriteError(OSError):
    """A file could not be written; the message is one line naming it. The old file, if there was
    one, is intact and no temporary is left."""


# ----------------------------------------------------------------------------- same file


def file_identity(path) -> tuple:
    """What makes two paths the same file: (device, inode) of an existing file (through links),
    else the resolved path (two outputs not yet written)."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", str(Path(path).resolve()))


def check_not_input(path, inputs: dict, name: str = "output") -> None:
    """``path`` is none of ``inputs`` (name -> path, None for none), by file identity."""
    key = file_identity(path)
    for input_name, p in inputs.items():
        if p is not None and file_identity(p) == key:
            raise ValueError(f"{name} {path} is the same file as {input_name} {p} (through a hard or symbolic "
                             f"link, or the same path): writing it would destroy it; give another file")


# ----------------------------------------------------------------------------- messages


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def free_space(folder) -> str:
    """The free space of ``folder``'s file system, in words ('unknown' where it cannot be read)."""
    try:
        return f"{_size(shutil.disk_usage(folder).free)} free"
    except OSError:
        return "free space unknown"


def failure(path, error: OSError, size: int | None = None) -> WriteError:
    """The one-line ``WriteError`` for ``error`` met while writing ``path``."""
    path = Path(path)
    if error.errno in DISK_FULL:
        need = f", {_size(size)} needed" if size is not None else ""
        why = f"the disk is full ({free_space(path.parent)} in {path.parent}{need})"
    else:
        why = error.strerror or str(error) or type(error).__name__
    kept = "the old file is kept" if path.exists() or path.is_symlink() else "nothing was written"
    e = WriteError(f"{path} could not be written: {why}; {kept}")
    e.errno = error.errno
    return e


# ----------------------------------------------------------------------------- temporaries


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    return True


# a temporary's name: this module's ``.NAME.HOST.PID.TOKEN.tmp``, or an earlier version's
# ``.NAME.PID.tmp`` / ``.NAME.PID.THREAD.tmp``
_TEMPORARY = re.compile(r"\.(?P<name>.+?)\.(?:(?P<host>[0-9a-f]{8})\.)?(?P<pid>\d+)\.(?:\w+\.)?tmp")
_found: dict[str, dict[str, list[re.Match]]] = {}  # folder -> destination name -> its temporaries
_found_lock = threading.Lock()


def _temporaries(folder: Path) -> dict[str, list[re.Match]]:
    """The temporaries in ``folder`` by the name of the file they were for."""
    by_name: dict[str, list[re.Match]] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return by_name
    for n in names:
        m = _TEMPORARY.fullmatch(n)
        if m is not None:
            by_name.setdefault(m["name"], []).append(m)
    return by_name


def clean_stale_temporaries(path) -> list[Path]:
    """Remove the temporaries for ``path`` that a process of this host which has ended left (a
    killed run); returns them. The folder is read once per process (the first write there): a
    batch folder of many files is not listed again for each. Links are removed, never followed;
    what cannot be removed stays, ignored."""
    path = Path(path)
    with _found_lock:
        if str(path.parent) not in _found:
            _found[str(path.parent)] = _temporaries(path.parent)
        candidates = _found[str(path.parent)].pop(path.name, [])
    removed = []
    for m in candidates:
        if m["host"] not in (None, _HOST) or process_alive(int(m["pid"])):
            continue
        try:
            os.unlink(path.parent / m.string)
            removed.append(path.parent / m.string)
        except OSError:
            pass
    return removed


def _new_temporary(path: Path) -> tuple[int, Path]:
    """A new, empty file next to ``path``, opened for writing: never an existing name or a link."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name[:180]}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _NEW_FILE, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (where the platform allows a folder to be synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- writers


def write_bytes(path, data, *, inputs: dict | None = None, name: str = "output") -> Path:
    """Write ``data`` (bytes-like) to ``path`` atomically (the module's rules); ``inputs``: files
    (name -> path) it must not be. The new file keeps an existing one's permissions."""
    path = Path(path)
    if inputs:
        check_not_input(path, inputs, name)
    if path.is_dir():
        raise WriteError(f"{path} is a folder; give a file name")
    view = memoryview(data).cast("B")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(path)
        fd, tmp = _new_temporary(path)
        with open(fd, "wb", closefd=True) as f:
            if path.exists():
                os.fchmod(f.fileno(), stat.S_IMODE(os.stat(path).st_mode))
            f.write(view)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _sync_folder(path.parent)
    except OSError as e:
        raise failure(path, e, len(view)) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path


def write_text(path, text: str, **kwargs) -> Path:
    """``write_bytes`` of ``text`` as UTF-8."""
    return write_bytes(path, text.encode("utf-8"), **kwargs)


def write_json(path, doc, *, indent: int = 1, default=None, **kwargs) -> Path:
    """``doc`` as JSON (one trailing newline), through ``write_bytes``."""
    return write_text(path, json.dumps(doc, indent=indent, default=default) + "\n", **kwargs)


def write_figure(fig, path, *, dpi: int, **kwargs) -> Path:
    """A matplotlib figure, drawn in memory in the format ``path``'s suffix names, through
    ``write_bytes`` (matplotlib's own ``savefig(path)`` would write in place)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix[1:].lower() or None, dpi=dpi)
    return write_bytes(path, buf.getbuffer(), **kwargs)


def _open_own_file(path: Path, flags: int) -> int:
    """A file descriptor of ``path``, a regular file with one link (created if missing), never
    through a symbolic link: a lock or log planted as a link to another file is refused."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise WriteError(f"{path} is a symbolic link; this file is never written through a link "
                             f"(remove it)") from None
        raise failure(path, e) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "not a regular file" if not stat.S_ISREG(st.st_mode) else f"a file with {st.st_nlink} hard links"
        raise WriteError(f"{path} is {what}; this file is never written through a link (remove it)")
    return fd


def open_lock_file(path):
    """``path`` opened as a text file for reading and writing, created if missing; a symbolic
    link, hard-linked file or non-file there is refused (``WriteError``)."""
    return open(_open_own_file(Path(path), os.O_RDWR), "r+", encoding="utf-8")


def append_line(path, line: str) -> None:
    """Append ``line`` and a newline to ``path`` (a log), never through a link; a full disk or
    other failure is one ``WriteError`` line (the lines written before are kept)."""
    path = Path(path)
    data = memoryview((line + "\n").encode("utf-8"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise failure(path, e) from None
    fd = _open_own_file(path, os.O_WRONLY | os.O_APPEND)
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError as e:
        raise failure(path, e, len(data)) from None
    finally:
        os.close(fd)
