"""Reading a team's labelled ticket history one row at a time: JSONL or CSV, any size.

* ``.jsonl`` (or ``.json`` lines): plain ``{"text", "label"}`` or the seed's chat format, as
  ``classifier.examples`` reads them;
* ``.csv`` / ``.tsv``: a header with ``text`` and ``label`` columns (any case, any order, other
  columns ignored); comma, semicolon or tab separated (detected from the header line); an
  optional UTF-8 byte-order mark (what spreadsheet programs write).

Rows are yielded as they are read, with the bytes read so far, so a caller can show progress
and memory stays flat however large the file. Errors name the file and line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from classifier.errors import DatasetError
from classifier.examples import MAX_TEXT_CHARS, Example, Source, example_from_record

_DELIMITERS = (",", ";", "\t")
CSV_SUFFIXES = frozenset({".csv", ".tsv"})


@dataclass(frozen=True)
class Row:
    """One labelled ticket read from a file, and how far into the file it was."""

    example: Example
    line: int
    bytes_read: int


def _csv_delimiter(header: str, where: str) -> str:
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    if counts[best] == 0:
        raise DatasetError(f"{where}: the header names one column; a CSV needs text and label.")
    return best


def _read_csv(path: Path, fh: io.BufferedReader) -> Iterator[Row]:
    with io.TextIOWrapper(fh, encoding="utf-8-sig", newline="") as text:
        header_line = text.readline()
        where = f"{path}:1"
        delimiter = _csv_delimiter(header_line, where)
        header = next(csv.reader([header_line], delimiter=delimiter))
        columns = {name.strip().casefold(): i for i, name in enumerate(header)}
        if "text" not in columns or "label" not in columns:
            raise DatasetError(
                f"{where}: the header needs 'text' and 'label' columns (found: "
                f"{', '.join(repr(name.strip()) for name in header)})."
            )
        text_at, label_at = columns["text"], columns["label"]
        reader = csv.reader(text, delimiter=delimiter)
        for record in reader:
            line = reader.line_num + 1
            if not record or not any(cell.strip() for cell in record):
                continue
            where = f"{path}:{line}"
            if len(record) <= max(text_at, label_at):
                raise DatasetError(
                    f"{where}: the row has {len(record)} column(s), fewer than the header."
                )
            body, label = record[text_at].strip(), record[label_at].strip()
            if not body:
                raise DatasetError(f"{where}: the ticket text is missing or empty.")
            if not label:
                raise DatasetError(f"{where}: the label is missing or empty.")
            yield Row(Example(body[:MAX_TEXT_CHARS], label, Source.IMPORTED), line, fh.tell())


def _read_jsonl(path: Path, fh: io.BufferedReader) -> Iterator[Row]:
    read = 0
    for number, raw in enumerate(fh, start=1):
        read += len(raw)
        where = f"{path}:{number}"
        try:
            decoded = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
        except UnicodeDecodeError:
            raise DatasetError(f"{where}: not valid UTF-8 text.") from None
        if not decoded:
            continue
        try:
            record = json.loads(decoded)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON ({exc.msg}).") from None
        yield Row(example_from_record(record, where, Source.IMPORTED), number, read)


def read_labelled_rows(path: Path) -> Iterator[Row]:
    """Every labelled ticket in ``path``, streamed (see the module docstring)."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file.") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror}).") from None
    with fh:
        if path.suffix.casefold() in CSV_SUFFIXES:
            try:
                yield from _read_csv(path, fh)
            except UnicodeDecodeError:
                raise DatasetError(f"{path}: not valid UTF-8 text.") from None
            except csv.Error as exc:
                raise DatasetError(f"{path}: not a readable CSV file ({exc}).") from None
        else:
            yield from _read_jsonl(path, fh)
