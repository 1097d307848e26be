"""``triage tickets list`` and ``triage tickets retry`` against a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from admin.cli import build_app
from classifier.protocols import Prediction
from data.db import tickets as repo
from data.db.admin_actions import AdminAction, list_actions
from data.db.database import Database

app = build_app()

LONG_TEXT = "Refund for invoice 4411 please,\nI was charged twice " + "x" * 80


@dataclass(frozen=True)
class Seeded:
    url: str
    routed: int
    failed: int  # classified as Billing, then Slack refused it
    failed_unclassified: int
    received: int


async def _seed(url: str) -> Seeded:
    db = Database(url)
    await db.start()
    try:
        async with db.transaction() as conn:
            ids = []
            for n, (text, status, label) in enumerate(
                [
                    ("the app crashes", repo.ROUTED, "Technical"),
                    (LONG_TEXT, repo.FAILED, "Billing"),
                    ("[bold]no prediction[/bold]", repo.FAILED, None),
                    ("just arrived", repo.RECEIVED, None),
                ]
            ):
                new = repo.NewTicket("T1", "C0SUPPORT", f"170000000{n}.000100", "U1", text)
                ticket, _ = await repo.store_ticket(conn, new)
                if label is not None:
                    prediction = Prediction(label, 0.9, ((label, 0.9),), "m1", 1.0)
                    await repo.save_prediction(conn, ticket.id, prediction)
                await repo.set_status(conn, ticket.id, status, count_attempt=status != "received")
                ids.append(ticket.id)
    finally:
        await db.close()
    return Seeded(url, *ids)


async def _read(url: str) -> tuple[dict[int, repo.Ticket], list[AdminAction]]:
    db = Database(url)
    try:
        async with db.transaction() as conn:
            summaries = await repo.list_tickets(conn, limit=100)
            actions = await list_actions(conn)
    finally:
        await db.close()
    return {s.ticket.id: s.ticket for s in summaries}, actions


def statuses(seeded: Seeded) -> dict[int, tuple[str, int]]:
    found, _ = asyncio.run(_read(seeded.url))
    return {ticket_id: (t.status, t.attempts) for ticket_id, t in found.items()}


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TRIAGE_DATABASE_URL", url)
    return asyncio.run(_seed(url))


runner = CliRunner()


def test_list_shows_the_newest_tickets_in_a_table(seeded: Seeded) -> None:
    wide = {"COLUMNS": "200"}  # a terminal wide enough for one line per ticket
    result = runner.invoke(app, ["tickets", "list"], env=wide)
    assert result.exit_code == 0, result.output
    assert "Tickets (newest first)" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[:5] for row in rows] == [
        [str(seeded.received), "C0SUPPORT", "1700000003.000100", "received", "0"],
        [str(seeded.failed_unclassified), "C0SUPPORT", "1700000002.000100", "failed", "1"],
        [str(seeded.failed), "C0SUPPORT", "1700000001.000100", "failed", "1"],
        [str(seeded.routed), "C0SUPPORT", "1700000000.000100", "routed", "1"],
    ]
    # Then the date and time of the last update, the label, and the start of the text (the
    # ticket's own brackets shown as typed, not read as markup).
    assert rows[1][7:] == ["-", "[bold]no", "prediction[/bold]"]
    assert rows[2][7:] == ["Billing", *" ".join(LONG_TEXT.split())[:60].split()]
    assert rows[3][7:] == ["Technical", "the", "app", "crashes"]

    failed = runner.invoke(app, ["tickets", "list", "--status", "failed"], env=wide)
    assert failed.exit_code == 0, failed.output
    assert "Failed tickets (newest first)" in failed.stdout
    assert "Technical" not in failed.stdout
    assert "received" not in failed.stdout

    none = runner.invoke(app, ["tickets", "list", "--status", "requeued"])
    assert (none.exit_code, none.stdout) == (0, "No requeued tickets.\n")


def test_list_as_json(seeded: Seeded) -> None:
    result = runner.invoke(app, ["tickets", "list", "--status", "failed", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["tickets"]
    assert [row["id"] for row in rows] == [seeded.failed_unclassified, seeded.failed]
    unclassified, failed = rows
    assert failed["channel"] == "C0SUPPORT"
    assert failed["ts"] == "1700000001.000100"
    assert (failed["status"], failed["attempts"], failed["label"]) == ("failed", 1, "Billing")
    assert unclassified["label"] is None
    assert failed["text"] == " ".join(LONG_TEXT.split())[:60]
    assert len(failed["text"]) == 60
    assert failed["updated_at"].endswith("+00:00")

    newest = json.loads(runner.invoke(app, ["tickets", "list", "--limit", "1", "--json"]).stdout)
    assert [row["id"] for row in newest["tickets"]] == [seeded.received]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--status", "lost"], "There is no ticket status 'lost'; use one of received"),
        (["list", "--limit", "0"], "--limit must be from 1 to 1000, not 0."),
        (["retry", "abc"], "'abc' is not a ticket id; ids are whole numbers"),
        (["retry", "0"], "'0' is not a ticket id"),
        (["retry"], "give the ids of the tickets to retry, or --failed"),
        (["retry", "2", "--failed"], "give ticket ids or --failed, not both."),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    seeded: Seeded, args: list[str], message: str
) -> None:
    before = statuses(seeded)
    result = runner.invoke(app, ["tickets", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
    assert statuses(seeded) == before  # nothing changed


def test_retry_by_id_requeues_that_failed_ticket_only(seeded: Seeded) -> None:
    result = runner.invoke(app, ["tickets", "retry", str(seeded.failed)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"Requeued 1 ticket: #{seeded.failed}. A running bot routes it within seconds; a "
        "stopped one at its next start.\n"
    )
    assert result.stderr == ""
    after = statuses(seeded)
    assert after[seeded.failed] == ("requeued", 0)  # attempts start again
    assert after[seeded.failed_unclassified] == ("failed", 1)
    _, actions = asyncio.run(_read(seeded.url))
    assert actions[0].action == "ticket-retry"
    assert actions[0].user.startswith("cli:")
    assert actions[0].detail["requeued"] == [seeded.failed]


def test_retry_failed_requeues_every_failed_ticket(seeded: Seeded) -> None:
    result = runner.invoke(app, ["tickets", "retry", "--failed"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"Requeued 2 tickets: #{seeded.failed}, #{seeded.failed_unclassified}. A running bot "
        "routes them within seconds; a stopped one at its next start.\n"
    )
    after = statuses(seeded)
    assert after[seeded.failed] == after[seeded.failed_unclassified] == ("requeued", 0)
    assert after[seeded.routed] == ("routed", 1)
    assert after[seeded.received] == ("received", 0)

    again = runner.invoke(app, ["tickets", "retry", "--failed"])
    assert (again.exit_code, again.stdout) == (0, "No failed tickets to retry.\n")


def test_ids_that_are_not_failed_are_refused_one_by_one(seeded: Seeded) -> None:
    result = runner.invoke(
        app,
        ["tickets", "retry", str(seeded.routed), f"#{seeded.failed}", "99", str(seeded.received)],
    )
    assert result.exit_code == 1
    assert result.stdout.startswith(f"Requeued 1 ticket: #{seeded.failed}.")
    assert result.stderr.splitlines() == [
        f"#{seeded.routed} not requeued: it is routed, not failed.",
        "#99 not requeued: there is no ticket #99.",
        f"#{seeded.received} not requeued: it is received, not failed: the bot is still "
        "working on it.",
    ]
    after = statuses(seeded)
    assert after[seeded.failed] == ("requeued", 0)
    assert after[seeded.routed] == ("routed", 1)
    assert after[seeded.received] == ("received", 0)

    twice = runner.invoke(app, ["tickets", "retry", str(seeded.failed)])
    assert twice.exit_code == 1
    assert twice.stdout == "Requeued 0 tickets.\n"
    assert "it is already requeued" in twice.stderr


def test_retry_as_json(seeded: Seeded) -> None:
    result = runner.invoke(
        app, ["tickets", "retry", "--json", str(seeded.failed), str(seeded.routed)]
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "requeued": [seeded.failed],
        "refused": [{"id": seeded.routed, "reason": "it is routed, not failed"}],
    }
    assert result.stderr == ""
