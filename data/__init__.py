"""Persistence and shipped data: the database layer, its migrations, the taxonomy file and the
starter datasets. Imports ``classifier`` types only."""

from __future__ import annotations

from pathlib import Path

#: The folder of files shipped with the package.
DATA_DIR = Path(__file__).resolve().parent

#: The default department list.
DEFAULT_TAXONOMY = DATA_DIR / "taxonomy.toml"

#: Starter tickets written by this project for the default departments.
STARTER_TRAIN = DATA_DIR / "starter" / "train.jsonl"
STARTER_TEST = DATA_DIR / "starter" / "test.jsonl"
