"""``triage corrections list`` and ``triage corrections revert`` against a real SQLite file:
one person's labels undone, the latest remaining human label winning again (#10, defect 4)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from admin.cli import build_app
from classifier.protocols import Prediction
from data.db import corrections as corrections_repo
from data.db import tickets as repo
from data.db.admin_actions import list_actions
from data.db.database import Database

app = build_app()

runner = CliRunner()
DAY1 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
DAY2 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAY3 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Seeded:
    url: str
    shared: int  # an agent's label, then Mallory's on top
    mallory_only: int
    early: int  # Mallory's label from before --since


async def _seed(url: str) -> Seeded:
    db = Database(url)
    await db.start()
    try:
        async with db.transaction() as conn:
            ids = []
            for n in range(3):
                new = repo.NewTicket("T1", "C0SUPPORT", f"170000000{n}.000100", "U1", f"t{n}")
                ticket, _ = await repo.store_ticket(conn, new)
                prediction = Prediction("Technical", 0.9, (("Technical", 0.9),), "m1", 1.0)
                await repo.save_prediction(conn, ticket.id, prediction)
                await repo.set_status(conn, ticket.id, repo.ROUTED, count_attempt=True)
                ids.append(ticket.id)
            shared, mallory_only, early = ids
            for ticket_id, user, label, at in [
                (early, "U0MALLORY", "Account", DAY1),
                (shared, "U0AGENT", "Billing", DAY2),
                (shared, "U0MALLORY", "Product", DAY3),
                (mallory_only, "U0MALLORY", "Billing", DAY3),
            ]:
                await corrections_repo.record_correction(
                    conn,
                    ticket_id,
                    user=user,
                    from_label="",
                    to_label=label,
                    via="reaction",
                    now=at,
                )
                await corrections_repo.sync_training_example(conn, ticket_id, f"t{ticket_id}")
    finally:
        await db.close()
    return Seeded(url, shared, mallory_only, early)


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TRIAGE_DATABASE_URL", url)
    return asyncio.run(_seed(url))


async def _state(url: str) -> tuple[dict[int, str | None], dict[int, str], list[str]]:
    db = Database(url)
    try:
        async with db.transaction() as conn:
            summaries = await repo.list_tickets(conn, limit=100)
            examples = {}
            for s in summaries:
                example = await corrections_repo.example_for_ticket(conn, s.ticket.id)
                examples[s.ticket.id] = example.label if example else None
            statuses = {s.ticket.id: s.ticket.status for s in summaries}
            actions = [f"{a.action}:{a.outcome}" for a in await list_actions(conn)]
    finally:
        await db.close()
    return examples, statuses, actions


def test_list_filters_by_user_and_date(seeded: Seeded) -> None:
    result = runner.invoke(app, ["corrections", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["corrections"]
    assert [(r["ticket_id"], r["user"], r["to"]) for r in rows] == [
        (seeded.mallory_only, "U0MALLORY", "Billing"),
        (seeded.shared, "U0MALLORY", "Product"),
        (seeded.shared, "U0AGENT", "Billing"),
        (seeded.early, "U0MALLORY", "Account"),
    ]
    mine = runner.invoke(
        app, ["corrections", "list", "--user", "U0MALLORY", "--since", "2026-11-02", "--json"]
    )
    assert [r["to"] for r in json.loads(mine.stdout)["corrections"]] == ["Billing", "Product"]
    table = runner.invoke(app, ["corrections", "list"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "U0MALLORY" in table.stdout
    assert "Product" in table.stdout


def test_revert_undoes_one_persons_labels_and_the_previous_human_label_wins(
    seeded: Seeded,
) -> None:
    result = runner.invoke(
        app, ["corrections", "revert", "--user", "U0MALLORY", "--since", "2026-11-02"]
    )
    assert result.exit_code == 0, result.output
    assert "Reverted 2 correction(s) by U0MALLORY on 2 ticket(s)" in result.stdout
    assert "retrain" in result.stdout
    examples, statuses, actions = asyncio.run(_state(seeded.url))
    assert examples == {
        seeded.shared: "Billing",  # the agent's label stands again
        seeded.mallory_only: None,  # no human label left: no training example
        seeded.early: "Account",  # before --since: kept
    }
    # The bot moves the two changed tickets' cards back.
    assert statuses[seeded.shared] == statuses[seeded.mallory_only] == repo.REQUEUED
    assert statuses[seeded.early] == repo.ROUTED
    assert actions == ["corrections-revert:done"]

    again = runner.invoke(app, ["corrections", "revert", "--user", "U0MALLORY", "--json"])
    assert json.loads(again.stdout)["tickets"] == [seeded.early]
    examples, _, _ = asyncio.run(_state(seeded.url))
    assert examples[seeded.early] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["corrections", "revert", "--user", "U0X", "--since", "yesterday"], "--since must be"),
        (["corrections", "list", "--limit", "0"], "--limit must be"),
        (["corrections", "revert", "--user", " "], "--user must name"),
    ],
)
def test_bad_input_is_one_line(seeded: Seeded, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
