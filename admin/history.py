"""Bringing a team's labelled history in (``triage import``) and the training set out
(``triage export``).

An import reads every file twice, streaming: first to check every label (after ``--map``
renames) against the taxonomy, so a file with unknown labels stores nothing and the admin gets
one line naming them; then to store the rows in batches. Memory stays flat for any file size.
Imported tickets are training data for every later retrain; about a fifth of them (chosen by a
hash of the text, so the same each time) are held out to evaluate models on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from admin.errors import AdminError
from admin.training_data import assemble_training_data, read_starter
from classifier.examples import Example, write_examples
from classifier.protocols import ProgressEvent
from classifier.taxonomy import Taxonomy
from classifier.ticket_files import read_labelled_rows
from data.db.database import Database
from data.db.training_set import (
    add_imported_examples,
    is_holdout_text,
    list_training_examples,
)

#: Rows stored per INSERT.
BATCH = 1_000


@dataclass(frozen=True)
class ImportResult:
    """What an import stored."""

    stored: int
    held_out: int
    by_label: dict[str, int]


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    """``["old=new", ...]`` as a dict; AdminError for a pair without '='."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise AdminError(f"--map {pair!r}: write it as old=new (e.g. --map Tech=Technical).")
        mapping[old.strip()] = new.strip()
    return mapping


def _labelled(
    paths: Sequence[Path],
    taxonomy: Taxonomy,
    mapping: Mapping[str, str],
    progress: Callable[[ProgressEvent], None],
    stage: str,
) -> Iterator[tuple[Example, str | None]]:
    """Each row with its department (None when unknown), reporting progress by bytes."""
    total = sum(path.stat().st_size for path in paths if path.exists()) or 1
    done = 0
    for path in paths:
        last = 0
        for row in read_labelled_rows(path):
            label = mapping.get(row.example.label, row.example.label)
            department = taxonomy.current(label)
            yield row.example, department.name if department else None
            if row.bytes_read - last > 256_000:
                progress(ProgressEvent(stage, path.name, (done + row.bytes_read) / total))
                last = row.bytes_read
        done += path.stat().st_size
    progress(ProgressEvent(stage, "done", 1.0))


async def import_history(
    db: Database,
    taxonomy: Taxonomy,
    paths: Sequence[Path],
    *,
    mapping: Mapping[str, str] | None = None,
    progress: Callable[[ProgressEvent], None] = lambda _event: None,
) -> ImportResult:
    """Store the labelled tickets in ``paths`` as training data (see the module docstring)."""
    renames = dict(mapping or {})
    unknown: Counter[str] = Counter()
    rows = 0
    for example, department in _labelled(paths, taxonomy, renames, progress, "check"):
        rows += 1
        if department is None:
            unknown[renames.get(example.label, example.label)] += 1
    if unknown:
        shown = ", ".join(f"{label!r} ({count})" for label, count in unknown.most_common(10))
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise AdminError(
            f"Nothing imported: {sum(unknown.values())} of {rows} tickets have labels that are "
            f"not departments: {shown}{more}. Rename them with --map old=new, or add the "
            "departments to the taxonomy."
        )
    if not rows:
        raise AdminError("Nothing imported: the files hold no tickets.")
    by_label: Counter[str] = Counter()
    stored = held = 0
    batch: list[tuple[str, str]] = []
    async with db.transaction() as conn:
        # One transaction: an import is stored whole or not at all.
        for example, department in _labelled(paths, taxonomy, renames, progress, "store"):
            assert department is not None
            batch.append((example.text, department))
            by_label[department] += 1
            held += is_holdout_text(example.text)
            if len(batch) >= BATCH:
                stored += await add_imported_examples(conn, batch)
                batch = []
        stored += await add_imported_examples(conn, batch)
    return ImportResult(stored, held, dict(by_label))


async def export_training_set(
    db: Database,
    taxonomy: Taxonomy,
    out: Path,
    *,
    starter_train: Sequence[Path],
    starter_test: Sequence[Path],
) -> tuple[int, int]:
    """Write the training set a retrain would use now (starter, imported, generated,
    corrections; held-out tickets excluded) as plain JSONL; returns (written, held out)."""
    async with db.transaction() as conn:
        stored = await list_training_examples(conn)
    data = assemble_training_data(
        taxonomy,
        starter_train=read_starter(starter_train),
        starter_test=read_starter(starter_test),
        stored=stored,
    )
    written = write_examples(out, data.train)
    return written, len(data.holdout)
