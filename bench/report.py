"""What every benchmark script ends with: its JSON, written under bench/results/ or where asked."""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_json(doc: dict, out: str | Path | None, default_name: str) -> Path:
    """Write ``doc`` to ``out`` (default: bench/results/``default_name``) and say where."""
    path = Path(out) if out else RESULTS / default_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")
    return path
