"""``triage import`` / ``triage export`` against a real SQLite file, through the Typer app."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from admin.cli import build_app
from admin.history import ImportResult, import_history
from classifier.errors import DatasetError
from classifier.taxonomy import load_taxonomy
from classifier.ticket_files import read_labelled_rows
from data import DEFAULT_TAXONOMY
from data.db.database import Database
from data.db.training_set import is_holdout_text, list_training_examples

app = build_app()

runner = CliRunner()


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'triage.db'}"
    monkeypatch.setenv("TRIAGE_DATABASE_URL", url)
    return url


async def _stored(url: str) -> list[tuple[str, str, str]]:
    db = Database(url)
    await db.start()
    try:
        async with db.transaction() as conn:
            return [(e.text, e.label, e.source) for e in await list_training_examples(conn)]
    finally:
        await db.close()


def _one_error_line(result: object) -> str:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    lines = [x for x in result.stderr.splitlines() if x.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


def test_import_jsonl_plain_and_chat_with_a_renamed_label(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "history.jsonl"
    chat = {
        "messages": [
            {"role": "system", "content": "route"},
            {"role": "user", "content": "the app crashes on start"},
            {"role": "assistant", "content": "Tech"},
        ]
    }
    path.write_text(
        json.dumps({"text": "I was charged twice", "label": "billing"})
        + "\n"
        + json.dumps(chat)
        + "\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["import", str(path), "--map", "Tech=Technical", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "Imported 2 tickets (Billing 1, Technical 1)" in result.stdout
    stored = asyncio.run(_stored(database_url))
    assert sorted(stored) == [
        ("I was charged twice", "Billing", "imported"),
        ("the app crashes on start", "Technical", "imported"),
    ]


def test_import_csv_with_a_bom_and_semicolons(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(
        '\ufeffid;Label;Text\n1;Billing;"Refund; please"\n2;Account;reset my password\n'.encode()
    )
    result = runner.invoke(app, ["import", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(asyncio.run(_stored(database_url))) == [
        ("Refund; please", "Billing", "imported"),
        ("reset my password", "Account", "imported"),
    ]


def test_a_file_whose_labels_are_all_unknown_stores_nothing_and_names_them(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "other.csv"
    path.write_text("text,label\nparcel lost,Shipping\nlate parcel,Shipping\nbox back,Returns\n")
    line = _one_error_line(runner.invoke(app, ["import", str(path), "--no-progress"]))
    assert "Nothing imported: 3 of 3 tickets have labels that are not departments" in line
    assert "'Shipping' (2), 'Returns' (1)" in line
    assert asyncio.run(_stored(database_url)) == []


def test_a_csv_without_text_and_label_columns_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("body,department\nx,Billing\n")
    with pytest.raises(DatasetError, match=r"bad\.csv:1: the header needs 'text' and 'label'"):
        list(read_labelled_rows(path))


def test_export_writes_the_training_set(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    rows = [{"text": f"invoice question number {i}", "label": "Billing"} for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert runner.invoke(app, ["import", str(path), "--no-progress"]).exit_code == 0
    out = tmp_path / "out" / "training.jsonl"
    result = runner.invoke(app, ["export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    imported = [r for r in exported if r["source"] == "imported"]
    starter = [r for r in exported if r["source"] == "starter"]
    # Held-out imported tickets are not exported; every other one is.
    kept = {r["text"] for r in rows if not is_holdout_text(r["text"])}
    assert {r["text"] for r in imported} == kept
    assert len(kept) < len(rows)
    assert starter  # the shipped starter tickets are part of the training set
    assert f"Wrote {len(exported)} training examples" in result.stdout


async def _traced_import(url: str, path: Path, rows: int) -> tuple[ImportResult, int, list[float]]:
    """Import ``rows`` generated tickets from ``path``: the result, the peak of traced memory
    during the import, and the progress fractions reported."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            fh.write(
                json.dumps({"text": f"ticket {i} about my invoice", "label": "Billing"}) + "\n"
            )
    db = Database(url)
    await db.start()
    fractions: list[float] = []
    try:
        tracemalloc.start()
        result = await import_history(
            db,
            load_taxonomy(DEFAULT_TAXONOMY),
            [path],
            progress=lambda e: fractions.append(e.fraction or 0.0),
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        await db.close()
    return result, peak, fractions


async def test_an_import_streams_with_flat_memory(tmp_path: Path) -> None:
    # Memory is traced (which makes Python about 8x slower), so the sizes are modest: the
    # larger import's extra 10,000 rows would take over 2 MB if they were held, and its peak
    # stays within 0.5 MB of the smaller one's (the first import also pays one-time costs).
    small, small_peak, _ = await _traced_import(
        f"sqlite+aiosqlite:///{tmp_path / 'small.db'}", tmp_path / "small.jsonl", 2_000
    )
    large, large_peak, fractions = await _traced_import(
        f"sqlite+aiosqlite:///{tmp_path / 'large.db'}", tmp_path / "large.jsonl", 12_000
    )
    assert (small.stored, large.stored) == (2_000, 12_000)
    assert 1_800 < large.held_out < 3_000  # about a fifth is held out
    assert large_peak < small_peak + 500_000, (small_peak, large_peak)
    assert large_peak < 8_000_000, large_peak
    assert any(0.0 < f < 1.0 for f in fractions)  # progress along the way, as it reads
    assert fractions[-1] == 1.0
