"""Whether a job may write into an output folder that already holds files: the manifest is
evidence, not permission.

Every result file carries the fingerprint of the job that wrote it (``store.py``), so the
results speak for themselves. A job continues a folder only when nothing there says it was made
by another model or other settings: not the manifest (checked first, so that its refusal can
say which settings differ), and not any result file. Where ``manifest.json`` is missing, empty,
not JSON or not a manifest, the result files alone decide: every one must carry this job's
fingerprint (the settings, recovered), else the job is refused in one line before it writes
anything, since nothing says whose an unreadable file was. A readable manifest of this job's
fingerprint vouches for a damaged result file, which is matched again (as before).

``restart=True`` (``--restart``) starts over instead: the manifest and every result file move
into a new ``DIR/replaced-<time>/`` folder, nothing is deleted.
"""
from __future__ import annotations

import time
from pathlib import Path

from .store import MANIFEST, Manifest, ManifestError, stored_fingerprint

REPLACED = "replaced-"


def set_aside(out_dir: Path) -> Path | None:
    """Move ``manifest.json`` and every result file into a new ``out_dir/replaced-<time>/``; remove
    half-written temporary files (their job is dead: the caller holds the lock). Returns the new
    folder, None when there was nothing to move."""
    for tmp in out_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    files = sorted(out_dir.glob("*.npz"))
    manifest = out_dir / MANIFEST
    if manifest.exists() or manifest.is_symlink():
        files.append(manifest)
    if not files:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest, n = out_dir / f"{REPLACED}{stamp}", 1
    while dest.exists():
        n += 1
        dest = out_dir / f"{REPLACED}{stamp}-{n}"
    dest.mkdir()
    for f in files:
        f.rename(dest / f.name)
    return dest


def _foreign(out_dir: Path, fp: str) -> tuple[list[str], list[str]]:
    """The result files of another fingerprint, and those that cannot be read."""
    other, unreadable = [], []
    for path in sorted(out_dir.glob("*.npz")):
        found = stored_fingerprint(path)
        if found is None:
            unreadable.append(path.name)
        elif found != fp:
            other.append(path.name)
    return other, unreadable


class FolderRefused(ValueError):
    """A folder holding results that are not this job's, refused: the message names ``match_many``'s
    arguments (``stride=8``); ``command_line`` says the same with the commands' options
    (``--stride 8``), which the batch commands report instead."""

    def __init__(self, message: str, command_line: str):
        super().__init__(message)
        self.command_line = command_line


def _hint(out_dir: Path, restart: str = "restart=True (mind-engine: --restart)") -> str:
    return (f"use another output folder, or start over with {restart}, which moves "
            f"the earlier files into {out_dir / REPLACED}<time>/")


def _option(name: str, value) -> str:
    """A setting as the batch commands' option gives it (``--radius none``, ``--queries FILE``)."""
    if name == "queries":
        return "--queries FILE" if value is not None else "no --queries"
    return f"--{name} {'none' if value is None else value}"


def _listed(what: str, names: list[str]) -> str:
    return f"{len(names)} result file{'s' if len(names) > 1 else ''} {what} ({', '.join(names[:3])}" + \
        (", ...)" if len(names) > 3 else ")")


def _differences(old: Manifest, header: dict, diff: dict) -> str:
    """What ``Manifest.differences`` found, in words; where it found no setting or model that
    differs, the fingerprints that do (a manifest edited by hand, or written by another version)."""
    if diff:
        return "; ".join(f"{k} was {a!r}, now {b!r}" for k, (a, b) in diff.items())
    return (f"its fingerprint {old.header.get('fingerprint')!r} is not this job's {header['fingerprint']!r}, though "
            f"it records the same settings and model: it was edited, or written by another version")


def claim(out_dir: Path, header: dict, restart: bool = False) -> dict:
    """Check ``out_dir``'s earlier files against this job (``header``, whose fingerprint its
    results will carry) before it writes anything, after moving them aside if ``restart``;
    repair a manifest its killed job left ``running``. Returns what the new manifest's header
    should say about the earlier files (``restart``: where they went; ``recovered``: why the
    results, not the manifest, let the job continue). Raises ValueError, in one line, where the
    folder holds results of another job."""
    moved = set_aside(out_dir) if restart else None
    if moved is not None:
        return {"restart": f"the earlier manifest and results were moved into {moved}"}
    try:
        old, broken = Manifest.read(out_dir), None
    except ManifestError as e:
        old, broken = None, str(e)
    if old is not None:
        if old.state == "running":  # its job died without a word: we hold the lock now
            old.repair()
        diff = old.differences(header)
        if diff is not None:
            was = old.settings()
            same = [k for k in diff if k in was]
            said = f"{out_dir} holds results of other settings ({_differences(old, header, diff)}); "
            python = ", ".join(f"{k}={was[k]!r}" for k in same)
            option = " ".join(_option(k, was[k]) for k in same)
            raise FolderRefused(said + (f"to continue it, pass {python}; or " if same else "") + _hint(out_dir),
                                said + (f"to continue it, pass {option}; or " if same else "")
                                + _hint(out_dir, "--restart"))
    other, unreadable = _foreign(out_dir, header["fingerprint"])
    if old is not None:
        unreadable = []  # a manifest of this job vouches for them: matched again
    if not (other or unreadable):
        n = len(list(out_dir.glob("*.npz")))
        if old is not None or not (broken or n):
            return {}
        found = f"its {n} result file(s) carried this job's fingerprint" if n else "it held no result file"
        return {"recovered": f"{broken or f'{out_dir / MANIFEST} was missing'}; {found}"}
    found = "; ".join(_listed(w, n) for w, n in (("of other settings or another model", other),
                                                 ("that cannot be read", unreadable)) if n)
    if old is not None:
        said = f"{out_dir} holds results of other settings than its manifest says: {found}"
    elif broken:
        said = f"{broken}, and {out_dir} holds {found}"
    else:
        said = f"{out_dir} has no {MANIFEST} and holds {found}"
    raise FolderRefused(f"{said}; {_hint(out_dir)}", f"{said}; {_hint(out_dir, '--restart')}")
