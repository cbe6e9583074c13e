"""The output folder of a batch job: one ``<key>.npz`` per matched pair and ``manifest.json``.

Why npz: numpy reads it with no extra dependency (``np.load``), pandas through numpy, and it
holds typed columns and a few scalars in one file (Parquet would need pyarrow). Each result
file is written to a temporary name and renamed (``os.replace``), so a file that exists is
complete: a job killed at any moment leaves only whole results, and a re-run trusts them.

Result file (``np.load(path)``; one row per query, x right and y down in pixels):
    pts1, pts3, query   (N, 2) float32   match in img1, in img3, and the middle-frame query
    score, score1, score3  (N,) float32  confidence (min of score1, score3: peak-to-mean ratios)
    key, img1, img3, fingerprint   str   the pair and the job's model hash + settings hash
    width, height  int; seconds_load, seconds_match  float
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from .spec import full_settings

FORMAT = "mind_engine.batch/1"
MANIFEST = "manifest.json"
ARRAYS = ("pts1", "pts3", "query", "score", "score1", "score3")
SCALARS = ("key", "img1", "img3", "fingerprint", "width", "height", "seconds_load", "seconds_match")


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def result_path(out_dir, key: str) -> Path:
    return Path(out_dir) / f"{key}.npz"


def write_result(out_dir, key: str, arrays: dict, meta: dict) -> Path:
    """Write one pair's result atomically; ``arrays`` holds ARRAYS, ``meta`` the SCALARS."""
    path = result_path(out_dir, key)
    cols = {k: np.asarray(arrays[k]) for k in ARRAYS}
    cols.update({k: np.asarray(meta[k]) for k in SCALARS})
    _atomic_write(path, lambda f: np.savez(f, **cols))
    return path


def read_result(path) -> dict:
    """A result file as a dict: arrays as numpy arrays, scalars as Python values."""
    with np.load(path, allow_pickle=False) as z:
        return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}


def stored_meta(path) -> dict | None:
    """A result file's scalars and its number of matches (``n_matches``); None when it is absent
    or unreadable (a damaged file is matched again and replaced)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {**{k: z[k].item() for k in SCALARS}, "n_matches": len(z["score"])}
    except Exception:  # numpy raises many types for damaged files
        return None


def finished(out_dir, key: str, name1: str, name3: str, fp: str) -> dict | None:
    """The stored scalars of a pair already matched with this fingerprint, else None (absent,
    made by other settings, for other images, or unreadable)."""
    meta = stored_meta(result_path(out_dir, key))
    if meta is None or meta["fingerprint"] != fp or meta["img1"] != name1 or meta["img3"] != name3:
        return None
    return meta


def stored_record(meta: dict, resumed: bool) -> dict:
    """The manifest record of a stored result (``stored_meta``); ``resumed``: made by an earlier run."""
    return {"key": meta["key"], "img1": meta["img1"], "img3": meta["img3"], "status": "ok", "resumed": resumed,
            "file": f"{meta['key']}.npz", "n_matches": meta["n_matches"], "width": meta["width"],
            "height": meta["height"], "seconds_load": meta["seconds_load"], "seconds_match": meta["seconds_match"]}


class Manifest:
    """``manifest.json``: the job's settings, model hash, versions, its ``state`` (running,
    finished, interrupted by a signal, aborted by an error) and one record per pair (status ``ok``
    or ``failed``, timings, attempts, worker, error). Rewritten atomically at most every
    ``every`` seconds and when the job ends, however it ends; results, not the manifest, decide
    what resume skips."""

    def __init__(self, out_dir, header: dict, records: dict | None = None, state: str | None = None,
                 every: float = 5.0):
        self.out_dir, self.path = Path(out_dir), Path(out_dir) / MANIFEST
        self.header, self.every, self.state = header, every, state
        self.records: dict[str, dict] = dict(records or {})
        self._last = 0.0

    @classmethod
    def read(cls, out_dir) -> "Manifest | None":
        """The manifest on disk, None where there is none (or it is unreadable)."""
        path = Path(out_dir) / MANIFEST
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        records = {r["key"]: r for r in doc.pop("pairs", [])}
        state = doc.pop("state", None)
        for k in ("updated", "counts"):
            doc.pop(k, None)
        return cls(out_dir, doc, records, state)

    def refuse_other(self, header: dict) -> None:
        """Refuse a job of other settings (``header``) in this folder, with what differs and the
        settings that would continue it (a folder of 0.2's defaults, one scale over the whole
        image, is refused by 0.3's, coarse to fine at radius 32: its manifest says levels 1)."""
        if self.header.get("fingerprint") in (None, header["fingerprint"]):
            return
        was, now = full_settings(self.header.get("settings", {})), full_settings(header["settings"])
        diff = {k: (was.get(k), now.get(k)) for k in sorted(set(was) | set(now))
                if k != "memory" and was.get(k) != now.get(k)}  # memory is not in the fingerprint
        same = ", ".join(f"{k}={was[k]!r}" for k in diff if k in was)
        if self.header.get("model", {}).get("sha256") != header["model"]["sha256"]:
            diff["model sha256"] = (self.header.get("model", {}).get("sha256"), header["model"]["sha256"])
        raise ValueError(f"{self.out_dir} holds results of other settings (was, now: {diff}); "
                         + (f"to continue it, pass {same}; or " if same else "")
                         + "use another output folder or empty this one")

    def reconcile(self) -> None:
        """Agree with the files: a record for every result file of this job's fingerprint (the
        pair a signal stopped between its file and its record, or the records a killed job had
        not written yet), none for an ``ok`` pair whose file is gone."""
        fp = self.header.get("fingerprint")
        for path in self.out_dir.glob("*.npz"):
            meta = stored_meta(path) if path.stem not in self.records else None
            if meta is not None and meta["fingerprint"] == fp:
                self.records[path.stem] = stored_record(meta, resumed=False)
        gone = [k for k, r in self.records.items() if r["status"] == "ok" and not result_path(self.out_dir, k).is_file()]
        for key in gone:
            del self.records[key]

    def repair(self) -> None:
        """After a job that died without a word (SIGKILL, power loss; its lock is free): remove its
        half-written temporary files, reconcile, and say it was interrupted."""
        for tmp in self.out_dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        self.reconcile()
        self.write("interrupted")

    def add(self, record: dict) -> None:
        self.records[record["key"]] = record
        if time.monotonic() - self._last >= self.every:
            self.write("running")

    def write(self, state: str) -> None:
        self.state = state
        recs = [self.records[k] for k in sorted(self.records)]
        counts = {s: sum(r["status"] == s for r in recs) for s in ("ok", "failed")}
        counts["resumed"] = sum(bool(r.get("resumed")) for r in recs)
        doc = {**self.header, "state": state, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "counts": counts, "pairs": recs}
        data = json.dumps(doc, indent=1, default=str).encode()
        _atomic_write(self.path, lambda f: f.write(data))
        self._last = time.monotonic()
