"""BANKING77 mapped onto the five default departments, for the benchmarks that stream it."""

from __future__ import annotations

import json
from pathlib import Path

from classifier.examples import Example, Source

ROOT = Path(__file__).resolve().parents[1]


def find_datasets(explicit: str | None) -> Path:
    """The shared datasets folder (``../shared/datasets`` next to the checkout)."""
    candidates = [Path(explicit)] if explicit else []
    candidates += [ROOT.parent / "shared" / "datasets", ROOT.parent.parent / "shared" / "datasets"]
    for candidate in candidates:
        if (candidate / "banking77" / "train.jsonl").exists():
            return candidate
    raise SystemExit("BANKING77 not found; pass --datasets /path/to/shared/datasets")


def read_banking77(folder: Path, split: str) -> list[Example]:
    """One split of BANKING77 with labels mapped onto departments."""
    mapping = json.loads((folder / "department_mapping.json").read_text())["label_to_department"]
    with (folder / f"{split}.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [Example(r["text"], mapping[r["label"]], Source.STARTER) for r in rows]
