"""Benchmark of ``/triage stats`` over 100,000 tickets, on SQLite and on PostgreSQL.

Seeds 100,000 routed tickets over the last 30 days into a fresh database (five departments,
most answered and resolved after log-normal waits, some open, a few corrected; targets and
business hours on two departments), then times what ``/triage stats [days]`` does before its
answer is posted: read and summarise the figures (``admin.desk_stats.build_desk_stats``),
render the message (``bot.admin_views.stats_message``): the answer posted; then the picture
(``admin.desk_stats_png``), uploaded in its thread afterwards, timed apart. For 7 and for 30
days, three times each. Goal: the answer in under 2 s.

Not a test: prints figures, ends with one JSON line, exits 1 if the goal is missed.

    python bench/desk_stats.py                 # SQLite, and PostgreSQL on 127.0.0.1:5432/test
    python bench/desk_stats.py --no-postgres   # SQLite only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from admin.desk_stats import build_desk_stats  # noqa: E402
from admin.desk_stats_png import desk_stats_png  # noqa: E402
from bench.desk_seed import SeedTicket, seed  # noqa: E402
from bot.admin_views import stats_message  # noqa: E402
from classifier.business_hours import parse_business_hours  # noqa: E402
from classifier.taxonomy import Taxonomy, load_taxonomy  # noqa: E402
from data import DEFAULT_TAXONOMY  # noqa: E402
from data.db.database import Database  # noqa: E402

GOAL_SECONDS = 2.0
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def taxonomy_with_targets() -> Taxonomy:
    office = parse_business_hours("Mon-Fri 09:00-18:00 Europe/Berlin")
    departments = []
    for d in load_taxonomy(DEFAULT_TAXONOMY):
        if d.name == "Billing":
            d = replace(d, first_response_minutes=30, resolution_hours=8.0, hours=office)
        elif d.name == "Technical":
            d = replace(d, first_response_minutes=15, resolution_hours=24.0)
        departments.append(d)
    return Taxonomy(tuple(departments))


def tickets(n: int, taxonomy: Taxonomy, now: datetime, seed_value: int) -> list[SeedTicket]:
    rng = random.Random(seed_value)
    names = list(taxonomy.labels)
    weights = [0.35, 0.25, 0.2, 0.15, 0.05][: len(names)]
    rows = []
    for _ in range(n):
        opened = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        name = rng.choices(names, weights)[0]
        channel = f"C0{name.upper()}"
        waited = timedelta(seconds=rng.lognormvariate(7.0, 1.0))  # median ~18 min
        first = opened + waited if rng.random() < 0.92 and opened + waited < now else None
        resolved_in = waited + timedelta(seconds=rng.lognormvariate(9.5, 1.0))
        resolved = opened + resolved_in if first and rng.random() < 0.9 else None
        if resolved is not None and resolved > now:
            resolved = None
        owner = f"U0AGENT{rng.randrange(30):02d}" if first or rng.random() < 0.5 else None
        corrected = rng.choice(names) if rng.random() < 0.05 else None
        rows.append(SeedTicket(name, channel, opened, first, owner, resolved, corrected))
    return rows


async def measure(url: str, taxonomy: Taxonomy, n: int, repeats: int) -> dict[str, Any]:
    db = Database(url)
    await db.start()
    try:
        now = datetime.now(UTC)
        started = time.perf_counter()
        await seed(db, tickets(n, taxonomy, now, seed_value=16))
        seeded = time.perf_counter() - started
        out: dict[str, Any] = {"seed_s": round(seeded, 1)}
        # The first picture in a process imports Pillow: once per process.
        warm = await build_desk_stats(db, taxonomy, days=1, now=now)
        await asyncio.to_thread(desk_stats_png, warm)
        for days in (7, 30):
            answers, pngs, cpus = [], [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                stats = await build_desk_stats(db, taxonomy, days=days, now=now)
                stats_message(stats)
                t1 = time.perf_counter()
                cpus.append(time.process_time() - c0)
                png = await asyncio.to_thread(desk_stats_png, stats)
                pngs.append(time.perf_counter() - t1)
                answers.append(t1 - t0)
                assert png.startswith(b"\x89PNG")
            counted = sum(d.tickets for d in stats.departments)
            out[f"days_{days}"] = {
                "tickets_counted": counted,
                "answer_s_median": round(statistics.median(answers), 3),
                "answer_s_max": round(max(answers), 3),
                "answer_cpu_s_median": round(statistics.median(cpus), 3),
                "png_s_median": round(statistics.median(pngs), 3),
            }
        return out
    finally:
        await db.close()


async def postgres(admin_url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    taxonomy = taxonomy_with_targets()
    report: dict[str, Any] = {"tickets": args.tickets}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'stats.db'}"
        report["sqlite"] = await measure(url, taxonomy, args.tickets, args.repeats)
    if args.postgres:
        name = f"triage_bench_stats_{uuid.uuid4().hex[:8]}"
        await postgres(args.postgres, f'CREATE DATABASE "{name}"')
        try:
            base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            report["postgresql"] = await measure(
                f"{base}/{name}", taxonomy, args.tickets, args.repeats
            )
        finally:
            await postgres(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", default=PG_ADMIN, help="PostgreSQL server (admin URL)")
    parser.add_argument("--no-postgres", dest="postgres", action="store_const", const="")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    worst = 0.0
    for engine in ("sqlite", "postgresql"):
        if engine not in report:
            continue
        r = report[engine]
        for days in (7, 30):
            f = r[f"days_{days}"]
            worst = max(worst, f["answer_s_max"])
            print(
                f"{engine}, {days} days ({f['tickets_counted']:,} tickets counted of "
                f"{report['tickets']:,}): answer {f['answer_s_median']} s median, "
                f"{f['answer_s_max']} s max, {f['answer_cpu_s_median']} s CPU in this process "
                f"(the database's own work is not in it); picture {f['png_s_median']} s more; "
                f"seeding took {r['seed_s']} s"
            )
    report["worst_answer_s"] = worst
    report["goal_met"] = worst < GOAL_SECONDS
    print(json.dumps(report))
    return 0 if report["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
