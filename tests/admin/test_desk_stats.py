"""The desk's figures: counts, medians and p90, breaches on the business-hours clock, backlog,
corrections, days, the stable JSON, the picture and ``triage stats``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from admin.desk_stats import SCHEMA, Spread, build_desk_stats, render_lines
from admin.desk_stats_png import desk_stats_png
from bot.cli import build_app
from classifier.business_hours import parse_business_hours
from classifier.taxonomy import Taxonomy
from data.db import corrections as corrections_repo
from data.db import desk
from data.db import tickets as tickets_repo
from data.db.database import Database

#: Monday 30 November 2026, 12:00 UTC: "now" for the figures.
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database: SQLite, and PostgreSQL where one answers (the figures' queries
    are the same code on both)."""
    database = Database(database_url)
    await database.start()
    yield database
    await database.close()


def with_targets(taxonomy: Taxonomy) -> Taxonomy:
    office = parse_business_hours("Mon-Fri 09:00-18:00 UTC")
    changed = []
    for dept in taxonomy:
        if dept.name == "Billing":
            dept = replace(dept, first_response_minutes=30, resolution_hours=4.0)
        if dept.name == "Technical":
            dept = replace(dept, first_response_minutes=60, hours=office)
        changed.append(dept)
    return Taxonomy(tuple(changed))


async def ticket(
    db: Database,
    department: str,
    opened: datetime,
    *,
    answered: timedelta | None = None,
    resolved: timedelta | None = None,
    taken_by: str | None = None,
) -> int:
    new = tickets_repo.NewTicket(
        workspace="T1", channel="C1", ts=f"{opened.timestamp():.6f}", user="UREQ", text="help"
    )
    async with db.transaction() as conn:
        stored, _ = await tickets_repo.store_ticket(conn, new)
        await desk.open_ticket(conn, stored.id, department, opened_at=opened, at=opened)
        if taken_by:
            await desk.take(conn, stored.id, taken_by, at=opened + MINUTE, source=desk.BUTTON)
        if answered is not None:
            await desk.record_first_response(conn, stored.id, "UAGENT", at=opened + answered)
        if resolved is not None:
            await desk.resolve(conn, stored.id, "UAGENT", at=opened + resolved, source=desk.BUTTON)
    return stored.id


def test_median_and_p90_use_the_nearest_rank() -> None:
    spread = Spread.of([float(s) for s in range(1, 11)])
    assert (spread.count, spread.median, spread.p90) == (10, 5.5, 9.0)
    assert Spread.of([]).as_json() == {"count": 0, "median": None, "p90": None}
    assert Spread.of([7.0]).p90 == 7.0


async def test_figures_per_department(db: Database, taxonomy: Taxonomy) -> None:
    targets = with_targets(taxonomy)
    # Billing: answered in 10, 20 and 50 minutes (one breach of 30), one resolved in 5 h (a
    # breach of 4 h), one still unanswered after 2 h (a breach), one taken.
    await ticket(
        db, "Billing", NOW - timedelta(hours=6), answered=10 * MINUTE, resolved=300 * MINUTE
    )
    await ticket(db, "Billing", NOW - timedelta(hours=5), answered=20 * MINUTE, taken_by="UBOB")
    await ticket(db, "Billing", NOW - timedelta(hours=4), answered=50 * MINUTE)
    oldest_open = await ticket(db, "Billing", NOW - timedelta(days=30))  # before the period
    waiting = await ticket(db, "Billing", NOW - timedelta(hours=2))
    # Technical, on office hours: asked Friday 17:30, answered Monday 09:20 -> 50 open minutes,
    # within its 60; asked Sunday, answered Monday 10:30 -> 90 open minutes, a breach.
    await ticket(
        db,
        "Technical",
        datetime(2026, 11, 27, 17, 30, tzinfo=UTC),
        answered=timedelta(days=2, hours=15, minutes=50),
    )
    await ticket(
        db,
        "Technical",
        datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
        answered=timedelta(hours=22, minutes=30),
    )
    async with db.transaction() as conn:
        await corrections_repo.record_correction(
            conn,
            waiting,
            user="UBOB",
            from_label="Product",
            to_label="Billing",
            via="reaction",
            now=NOW - timedelta(hours=1),
        )

    stats = await build_desk_stats(db, targets, days=7, now=NOW)
    by_name = {d.department: d for d in stats.departments}
    billing, technical = by_name["Billing"], by_name["Technical"]
    assert [d.department for d in stats.departments][:2] == ["Technical", "Billing"]
    assert billing.tickets == 4
    assert billing.taken == 3  # taken by button, or by the first reply
    assert billing.first_response.count == 3
    assert billing.first_response.median == 20 * 60
    assert billing.first_response.p90 == 50 * 60
    assert billing.resolution.median == 300 * 60
    assert (billing.first_response_breaches, billing.resolution_breaches) == (2, 2)
    assert billing.backlog.open == 4
    assert billing.backlog.oldest is not None
    assert billing.backlog.oldest.ticket_id == oldest_open
    assert (billing.corrected_in, billing.corrected_out) == (1, 0)
    assert by_name["Product"].corrected_out == 1
    assert technical.tickets == 2
    assert technical.first_response_breaches == 1
    assert technical.resolution_breaches == 0  # no resolution target
    assert by_name["Account"].tickets == 0
    assert by_name["Account"].share_taken is None

    days = {d.day: d for d in stats.daily}
    assert len(stats.daily) == 8
    assert days["2026-11-30"].tickets["Billing"] == 4
    assert days["2026-11-29"].tickets["Technical"] == 1
    assert days["2026-11-30"].median_first_response == 20 * 60
    assert any("Billing: 4 tickets, 75 % taken" in line for line in render_lines(stats))


async def test_the_json_is_stable_for_dashboards(db: Database, taxonomy: Taxonomy) -> None:
    await ticket(db, "Billing", NOW - timedelta(hours=3), answered=5 * MINUTE)
    stats = await build_desk_stats(db, with_targets(taxonomy), days=1, now=NOW)
    data = json.loads(json.dumps(stats.as_json()))
    assert data["schema"] == SCHEMA == "triage.stats/1"
    assert set(data) == {"schema", "since", "until", "days", "departments", "daily"}
    billing = next(d for d in data["departments"] if d["department"] == "Billing")
    assert set(billing) == {
        "department",
        "tickets",
        "taken",
        "share_taken",
        "first_response_seconds",
        "resolution_seconds",
        "backlog",
        "breaches",
        "corrections",
        "targets",
    }
    assert billing["first_response_seconds"] == {"count": 1, "median": 300.0, "p90": 300.0}
    assert billing["backlog"]["open"] == 1
    assert set(billing["backlog"]["oldest"]) == {"ticket_id", "opened_at", "age_seconds", "link"}
    assert billing["targets"] == {
        "first_response_minutes": 30,
        "resolution_hours": 4.0,
        "hours": None,
    }
    assert set(data["daily"][0]) == {"date", "tickets", "median_first_response_seconds"}


async def test_the_picture_is_a_png(db: Database, taxonomy: Taxonomy) -> None:
    await ticket(db, "Billing", NOW - timedelta(days=2), answered=5 * MINUTE)
    stats = await build_desk_stats(db, taxonomy, days=14, now=NOW)
    assert desk_stats_png(stats).startswith(b"\x89PNG\r\n\x1a\n")
    empty = await build_desk_stats(db, taxonomy, days=1, now=NOW - timedelta(days=300))
    assert desk_stats_png(empty).startswith(b"\x89PNG\r\n\x1a\n")


def test_triage_stats_prints_json_and_writes_the_picture(tmp_path: Path) -> None:
    png = tmp_path / "desk.png"
    result = CliRunner().invoke(
        build_app(),
        ["stats", "--days", "3", "--json", "--png", str(png)],
        env={"TRIAGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"},
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["schema"] == "triage.stats/1"
    assert data["days"] == 3
    assert [d["department"] for d in data["departments"]][:2] == ["Technical", "Billing"]
    assert png.read_bytes().startswith(b"\x89PNG")
    refused = CliRunner().invoke(build_app(), ["stats", "--days", "0"])
    assert refused.exit_code == 2
