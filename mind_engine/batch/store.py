"""The output folder of a batch job: one ``<key>.npz`` per matched pair and ``manifest.json``.

Why npz: numpy reads it with no extra dependency (``np.load``), pandas through numpy, and it
holds typed columns and a few scalars in one file (Parquet would need pyarrow). Each result
file is written through ``safe_write`` (a temporary renamed with ``os.replace``), so a file that
exists is complete: a job killed at any moment leaves only whole results, and a re-run trusts them.

Result file (``np.load(path)``; one row per query, x right and y down in pixels):
    pts1, pts3, query   (N, 2) float32   match in img1, in img3, and the middle-frame query
    score, score1, score3  (N,) float32  confidence (min of score1, score3: peak-to-mean ratios)
    texture        (N,) float32      the images' variation there (``Matches.texture``; results
                                     written before it existed lack it)
    key, img1, img3, fingerprint   str   the pair and the job's model hash + settings hash
    width, height  int; seconds_load, seconds_match  float
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np

from ..safe_write import write_bytes, write_json
from .spec import full_settings

FORMAT = "mind_engine.batch/1"
MANIFEST = "manifest.json"
STATES = ("running", "finished", "interrupted", "aborted")
STATUSES = ("ok", "failed")
ARRAYS = ("pts1", "pts3", "query", "score", "score1", "score3", "texture", "pts1_raw", "pts3_raw", "refinement",
          "consistent")
SCALARS = ("key", "img1", "img3", "fingerprint", "width", "height", "seconds_load", "seconds_match")


def result_path(out_dir, key: str) -> Path:
    return Path(out_dir) / f"{key}.npz"


def write_result(out_dir, key: str, arrays: dict, meta: dict) -> Path:
    """Write one pair's result atomically; ``arrays`` holds ARRAYS, ``meta`` the SCALARS."""
    path = result_path(out_dir, key)
    cols = {k: np.asarray(arrays[k]) for k in ARRAYS}
    cols.update({k: np.asarray(meta[k]) for k in SCALARS})
    buf = io.BytesIO()
    np.savez(buf, **cols)
    write_bytes(path, buf.getbuffer())
    return path


def read_result(path) -> dict:
    """A result file as a dict: arrays as numpy arrays, scalars as Python values."""
    with np.load(path, allow_pickle=False) as z:
        return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}


def result_files(out_dir) -> dict[tuple[str, str], Path]:
    """Each matched pair's result file, by the pair's (img1, img3) names as the job was given them
    (a pair list's paths as written in it; a video's frame names), read from ``manifest.json``:
    keys name the files (``line000002``), the manifest says whose they are. ``{}`` where no
    manifest is; a manifest that cannot be read raises ``ManifestError``."""
    manifest = Manifest.read(out_dir)
    if manifest is None:
        return {}
    return {(r["img1"], r["img3"]): result_path(out_dir, k) for k, r in manifest.records.items()
            if r["status"] == "ok"}


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


def stored_fingerprint(path) -> str | None:
    """The fingerprint a result file carries (the job that wrote it), None when it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["fingerprint"].item())
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


class ManifestError(ValueError):
    """``manifest.json`` exists but cannot be read, or is not a manifest of this format."""


def _shown(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def manifest_problem(doc) -> str | None:
    """What keeps ``doc`` (the parsed ``manifest.json``) from being a manifest this code wrote, in
    a few words; None when it is one."""
    if not isinstance(doc, dict):
        return f"it holds {_shown(doc)}, not a JSON object"
    if doc.get("format") != FORMAT:
        return f"its format is {_shown(doc.get('format'))}, not {FORMAT!r}"
    for key, kind, what in (("fingerprint", str, "a string"), ("settings", dict, "an object"),
                            ("model", dict, "an object"), ("pairs", list, "a list"), ("state", str, "a string")):
        if not isinstance(doc.get(key), kind):
            return f"its {key!r} is {_shown(doc.get(key))}, not {what}"
    if not isinstance(doc["model"].get("sha256"), str):
        return f"its model's 'sha256' is {_shown(doc['model'].get('sha256'))}, not a string"
    if doc["state"] not in STATES:
        return f"its state is {_shown(doc['state'])}, not one of {list(STATES)}"
    for i, r in enumerate(doc["pairs"]):
        if not (isinstance(r, dict) and isinstance(r.get("key"), str) and r.get("status") in STATUSES):
            return f"its pairs[{i}] is {_shown(r)}, not a record with a string 'key' and a 'status' in {list(STATUSES)}"
    return None


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
        """The manifest on disk, None where there is none; ``ManifestError`` (one line) where the
        file cannot be read, is not JSON, or does not have a manifest's structure."""
        path = Path(out_dir) / MANIFEST
        if not path.exists() and not path.is_symlink():
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
            raise ManifestError(f"{path} cannot be read: {e}") from None
        if not text.strip():
            raise ManifestError(f"{path} is empty")
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise ManifestError(f"{path} is not valid JSON: {e}") from None
        problem = manifest_problem(doc)
        if problem is not None:
            raise ManifestError(f"{path} is not a manifest of this job format: {problem}")
        records = {r["key"]: r for r in doc.pop("pairs", [])}
        state = doc.pop("state", None)
        for k in ("updated", "counts"):
            doc.pop(k, None)
        return cls(out_dir, doc, records, state)

    def differences(self, header: dict) -> dict | None:
        """None when a job of ``header`` is this manifest's job (the same fingerprint), else what
        differs: {setting: (was, now)}, settings that older manifests leave out read back as
        ``spec.full_settings`` says (a folder of 0.2's defaults, one scale over the whole image,
        differs from 0.3's, coarse to fine at radius 32, in levels and radius)."""
        if self.header.get("fingerprint") == header["fingerprint"]:
            return None
        was, now = self.settings(), full_settings(header["settings"])
        diff = {k: (was.get(k), now.get(k)) for k in sorted(set(was) | set(now))
                if k != "memory" and was.get(k) != now.get(k)}  # memory is not in the fingerprint
        if self.header.get("model", {}).get("sha256") != header["model"]["sha256"]:
            diff["model sha256"] = (self.header.get("model", {}).get("sha256"), header["model"]["sha256"])
        return diff

    def settings(self) -> dict:
        """The settings of this manifest's job, in full (``spec.full_settings``)."""
        return full_settings(self.header.get("settings", {}))

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
        write_json(self.path, doc, default=str)
        self._last = time.monotonic()
