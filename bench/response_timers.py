"""Benchmark of the first-response timers: 10,000 open tickets whose targets fall due in a burst.

The real runtime (``open_runtime``: supervisor, the ``response-timers`` task on its production
interval, the real Slack client) runs against the loopback fake Slack from the tests, on SQLite
in a temporary folder (or ``--postgres URL``). 10,000 routed tickets are seeded straight into the
database with first-response targets of one minute, opened so that their nudges fall due within
``--burst`` seconds of each other; a tenth are answered shortly before they are due. A second
replica (another runtime on the same database) runs alongside, and the first is stopped and
started again in the middle of the burst. Reported:

* every nudge's delay from its due time to its post reaching Slack: p50 / p99 / max (goal: all
  within 60 s), nudges missing, posted twice, posted for an answered ticket (goal: 0, 0, 0);
  the same for the escalations that follow at twice the target;
* the sweep's cost: wall and CPU time of one sweep with 10,000 open tickets and nothing due,
  and what that comes to per minute at the production interval; and the CPU time of the burst.

The fake Slack answers without Slack's rate limits (chat.postMessage allows about one message
per second per channel): the figures are the bot's own capacity, not what Slack would accept.
Not a test: prints figures, ends with one JSON line, exits 1 if a goal is missed.

    python bench/response_timers.py                 # 10,000 tickets, burst of 10 s
    python bench/response_timers.py --tickets 2000  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from admin.settings import Settings  # noqa: E402
from bench.desk_seed import SeedTicket, seed  # noqa: E402
from bot.response_timers import SWEEP_SECONDS  # noqa: E402
from bot.runtime import Runtime, open_runtime  # noqa: E402
from classifier.taxonomy import Taxonomy, load_taxonomy  # noqa: E402
from data import DEFAULT_TAXONOMY  # noqa: E402
from data.db.database import Database  # noqa: E402
from data.db.schema import ticket_states  # noqa: E402
from tests.bot.keyword_classifier import KeywordClassifier  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402

TRIAGE = "C0TRIAGE"
SECRET = "bench-signing-secret"  # noqa: S105 - signs requests to a fake on loopback
GOAL_SECONDS = 60.0


def taxonomy_with_targets() -> Taxonomy:
    base = load_taxonomy(DEFAULT_TAXONOMY)
    return Taxonomy(
        tuple(replace(d, channel=f"C0{d.name.upper()}", first_response_minutes=1) for d in base)
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


class Replica:
    """One bot runtime on the shared database; stop and start it like a process."""

    def __init__(self, settings: Settings, taxonomy: Taxonomy, owner: str) -> None:
        self.settings, self.taxonomy, self.owner = settings, taxonomy, owner
        self.stack: AsyncExitStack | None = None
        self.runtime: Runtime | None = None

    async def start(self) -> None:
        self.stack = AsyncExitStack()
        self.runtime = await self.stack.enter_async_context(
            open_runtime(
                self.settings,
                taxonomy=self.taxonomy,
                classifier=KeywordClassifier(self.taxonomy),
                owner=self.owner,
                workers=2,
            )
        )

    async def stop(self) -> None:
        if self.stack is not None:
            await self.stack.aclose()
        self.stack = self.runtime = None


async def sweep_cost(settings: Settings, taxonomy: Taxonomy) -> dict[str, float]:
    """Wall and CPU time of sweeps that find 10,000 open tickets and nothing due."""
    replica = Replica(settings, taxonomy, "cost")
    await replica.start()
    try:
        assert replica.runtime is not None
        timers = replica.runtime.services.response_timers
        await timers.sweep()  # schedules every ticket once
        walls, cpus = [], []
        for _ in range(5):
            wall, cpu = time.perf_counter(), time.process_time()
            await timers.sweep()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    finally:
        await replica.stop()
    per_minute = 60.0 / SWEEP_SECONDS
    return {
        "sweep_ms": 1000 * statistics.median(walls),
        "sweep_cpu_ms": 1000 * statistics.median(cpus),
        "cpu_ms_per_minute": 1000 * statistics.median(cpus) * per_minute,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    taxonomy = taxonomy_with_targets()
    departments = list(taxonomy)
    with tempfile.TemporaryDirectory() as folder:
        url = args.postgres or f"sqlite+aiosqlite:///{Path(folder) / 'timers.db'}"
        async with FakeSlack() as fake:
            for dept in departments:
                fake.members[dept.channel] = ["U0AGENT"]
            fake.members[TRIAGE] = ["U0AGENT"]
            settings = Settings(
                slack_bot_token=fake.token,
                slack_signing_secret=SECRET,
                slack_api_url=fake.url,
                support_channels=("C0SUPPORT",),
                triage_channel=TRIAGE,
                database_url=url,
                auto_retrain=False,
                adaptive_threshold=False,
            )
            db = Database(url)
            await db.start()
            now = datetime.now(UTC)
            # Idle cost first: the same number of open tickets, all due in a day.
            idle = [
                SeedTicket(
                    departments[i % len(departments)].name,
                    departments[i % len(departments)].channel,
                    now + timedelta(days=1),
                )
                for i in range(args.tickets)
            ]
            await seed(db, idle)
            await db.close()
            cost = await sweep_cost(settings, taxonomy)
            db = Database(url)
            await db.start()
            async with db.transaction() as conn:  # the idle tickets resolved: out of the way
                await conn.execute(ticket_states.update().values(status="resolved"))

            start = datetime.now(UTC) + timedelta(seconds=args.lead)
            rows, due, answered = [], {}, set()
            for i in range(args.tickets):
                dept = departments[i % len(departments)]
                due_at = start + timedelta(seconds=args.burst * i / args.tickets)
                rows.append(SeedTicket(dept.name, dept.channel, due_at - timedelta(minutes=1)))
            ids = await seed(db, rows, first_id=args.tickets + 1)
            for ticket_id, row in zip(ids, rows, strict=True):
                due[ticket_id] = row.opened_at + timedelta(minutes=1)
            answer = set(ids[::10])  # a tenth answered 5 s before their nudge is due
            print(
                f"{len(ids):,} tickets seeded; nudges due from {start:%H:%M:%S} over "
                f"{args.burst:.0f} s; {len(answer):,} answered first",
                flush=True,
            )

            replicas = [
                Replica(settings, taxonomy, "replica-a"),
                Replica(settings, taxonomy, "replica-b"),
            ]
            for replica in replicas:
                await replica.start()
            cpu0 = time.process_time()
            wall0 = time.time() - time.monotonic()  # fake Slack stamps calls on the monotonic clock
            restarted = False
            last_due = max(due.values()) + timedelta(minutes=1)  # the escalations
            pending = sorted(answer, key=lambda t: due[t])
            expected = 2 * (len(ids) - len(answer))

            def posted() -> int:
                return sum(
                    1
                    for call in fake.called("chat.postMessage")
                    if isinstance(call.params.get("metadata"), dict)
                    and (call.params["metadata"].get("event_payload") or {}).get("kind")
                    in ("nudge", "escalation")
                )

            while datetime.now(UTC) < last_due + timedelta(seconds=args.settle) and (
                datetime.now(UTC) < last_due or posted() < expected
            ):
                now = datetime.now(UTC)
                ready = [t for t in pending if due[t] - timedelta(seconds=5) <= now]
                if ready:
                    async with db.transaction() as conn:
                        await conn.execute(
                            ticket_states.update()
                            .where(ticket_states.c.ticket_id.in_(ready))
                            .values(first_response_at=now, first_responder="U0AGENT")
                        )
                    answered.update(ready)
                    pending = [t for t in pending if t not in answered]
                if not restarted and now >= start + timedelta(seconds=args.burst / 2 + 15):
                    print("restarting replica-a mid-burst", flush=True)
                    await replicas[0].stop()
                    await replicas[0].start()
                    restarted = True
                await asyncio.sleep(0.5)
            burst_cpu = time.process_time() - cpu0
            for replica in replicas:
                await replica.stop()
            await db.close()

            posts: dict[tuple[int, str], list[float]] = {}
            for call in fake.called("chat.postMessage"):
                meta = call.params.get("metadata")
                if not isinstance(meta, dict):
                    continue
                payload = meta.get("event_payload") or {}
                kind = payload.get("kind")
                if kind in ("nudge", "escalation"):
                    key = (int(payload["ticket_id"]), str(kind))
                    posts.setdefault(key, []).append(wall0 + call.at)
    report: dict[str, Any] = {"tickets": args.tickets, "burst_seconds": args.burst}
    for kind, factor in (("nudge", 1), ("escalation", 2)):
        delays, missing, twice, for_answered = [], 0, 0, 0
        for ticket_id, due_at in due.items():
            times = posts.get((ticket_id, kind), [])
            if ticket_id in answered:
                for_answered += bool(times)
                continue
            if not times:
                missing += 1
                continue
            twice += len(times) > 1
            kind_due = due_at + timedelta(minutes=factor - 1)
            delays.append(min(times) - kind_due.timestamp())
        report[kind] = {
            "posted": len(delays),
            "missing": missing,
            "twice": twice,
            "for_answered": for_answered,
            "delay_p50_s": round(percentile(delays, 0.5), 2) if delays else None,
            "delay_p99_s": round(percentile(delays, 0.99), 2) if delays else None,
            "delay_max_s": round(max(delays), 2) if delays else None,
        }
    report["sweep"] = {k: round(v, 2) for k, v in cost.items()}
    report["burst_cpu_s"] = round(burst_cpu, 1)
    report["kinds_posted"] = dict(Counter(kind for _, kind in posts))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--burst", type=float, default=10.0, help="seconds the due times span")
    parser.add_argument("--lead", type=float, default=30.0, help="seconds before the first is due")
    parser.add_argument(
        "--settle", type=float, default=120.0, help="longest wait after the last is due"
    )
    parser.add_argument(
        "--postgres", default="", help="an empty PostgreSQL database (postgresql+asyncpg://...)"
    )
    args = parser.parse_args()
    report = asyncio.run(run(args))
    for kind in ("nudge", "escalation"):
        r = report[kind]
        print(
            f"{kind}s: {r['posted']:,} posted; delay after due p50 {r['delay_p50_s']} s, "
            f"p99 {r['delay_p99_s']} s, max {r['delay_max_s']} s; missing {r['missing']}, "
            f"twice {r['twice']}, for answered tickets {r['for_answered']}"
        )
    s = report["sweep"]
    print(
        f"sweep with {report['tickets']:,} open tickets, nothing due: {s['sweep_ms']} ms wall, "
        f"{s['sweep_cpu_ms']} ms CPU; {s['cpu_ms_per_minute']} ms CPU per minute at one sweep "
        f"every {SWEEP_SECONDS:.0f} s; the burst took {report['burst_cpu_s']} s CPU "
        "(bot and fake Slack in one process)"
    )
    ok = all(
        report[k]["missing"] == 0
        and report[k]["twice"] == 0
        and report[k]["for_answered"] == 0
        and (report[k]["delay_max_s"] or 0) <= GOAL_SECONDS
        for k in ("nudge", "escalation")
    )
    report["goals_met"] = ok
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
