"""Desk benchmark: tickets routed, then taken, answered and resolved by simulated agents through
signed interactions, with the bot restarted twice mid-run (issue #16, item 1's goal).

The real app runs in its own process (``open_runtime``, HTTP Events API, SQLite in a temporary
folder, the real Slack client) against the loopback fake Slack of the tests; this process plays
Slack and 30 agents. Phases:

1. ``--tickets`` tickets are posted in the support channel (each from its own requester) and
   routed: each card enters the desk (``open``).
2. Per ticket, three actions, sent at ``--rate`` actions a second in all: **Take it** on its card
   (a signed ``block_actions`` interaction), three seconds later the agent's **reply** in the
   ticket's thread (a signed ``message`` event: the first response), three seconds after that
   **Resolve**. Every tenth ticket gets a second agent pressing Take it at the same moment (one
   wins, the other is told who has it); every twentieth take is delivered twice with the same
   ``action_ts`` (a redelivery: applied once). At a third and at two thirds of the actions the
   bot is restarted: first stopped with SIGTERM, then killed with SIGKILL (a crash); what is
   sent while it is down fails and is sent again ``--retry-seconds`` later (the same request:
   Slack retries a failed event, an agent presses again), until the bot takes it. Neither Slack
   nor the agents hold requests back and release them all the moment the bot is back, which is
   what ``--retry-seconds 0`` does (the bench's first version: about ten seconds of actions
   arrive at once after each restart).
3. Once the bot has settled: every transition in the database is compared with what was asked,
   and every card (its status line and owner), the ticket's status emoji and the thread lines
   with the ticket's state in the database.

Reports transitions stored, ``lost`` (an asked take or resolution not stored), ``twice`` (one
stored more than once), answers not recorded, cards, emoji and thread lines that do not match,
and the acknowledgement time of the interactions (the HTTP round trip seen from here; the machine
is shared, so these are upper bounds: the load average is printed with them). The last line is
one JSON object. Exits 1 if anything was lost, applied twice or does not match.

    python bench/desk.py --tickets 300     # a quick run (about 30 s)
    python bench/desk.py                   # 5,000 tickets (about six minutes of actions)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from admin.settings import Settings  # noqa: E402
from bot.runtime import open_runtime  # noqa: E402
from bot.server import EVENTS_PATH, create_web_app  # noqa: E402
from classifier.examples import read_examples  # noqa: E402
from classifier.taxonomy import load_taxonomy  # noqa: E402
from data import DEFAULT_TAXONOMY, STARTER_TEST, STARTER_TRAIN  # noqa: E402
from tests.bot.keyword_classifier import KeywordClassifier  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.fakes.slack_events import (  # noqa: E402
    SlackSender,
    button_payload,
    message_event,
)

SUPPORT = "C0SUPPORT"
TRIAGE = "C0TRIAGE"
SECRET = "bench-signing-secret"  # noqa: S105 - the fake's, not a real secret
BOT_TOKEN = "xoxb-bench-token"  # noqa: S105 - the fake Slack's token
AGENTS = [f"U0AG{n:04d}" for n in range(30)]
#: Seconds between a ticket's take, its reply and its resolution.
LAG = 3.0
#: Seconds before a send the bot could not take (it was down) is sent again: about when an
#: agent whose press failed presses again, and longer than a restart takes here.
RETRY_SECONDS = 10.0
_STATUS = re.compile(r"\*Status:\* ([A-Za-z ]+?)(?: · owner <@(U[A-Z0-9]+)>)?$")
_NAMES = {"Open": "open", "In progress": "in_progress", "Resolved": "resolved"}


# -- the bot's process ------------------------------------------------------------------------


async def serve_bot(slack_url: str, database: str) -> None:
    """The bot in its own process until SIGTERM (or SIGKILL, a crash)."""
    taxonomy = load_taxonomy(DEFAULT_TAXONOMY)
    settings = Settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack_url,
        support_channels=(SUPPORT,),
        triage_channel=TRIAGE,
        database_url=f"sqlite+aiosqlite:///{database}",
        group_seconds=0.0,
        request_filter=False,  # every bench ticket is a request: none skipped
        auto_retrain=False,
        log_level="WARNING",
    )
    handled: list[str] = []

    @web.middleware
    async def time_interactions(request: web.Request, handler: Any) -> web.StreamResponse:
        # The acknowledgement as the bot sees it: request in, response out (no TCP, no driver).
        started = time.perf_counter()
        wall = time.time()
        response: web.StreamResponse = await handler(request)
        if request.content_type == "application/x-www-form-urlencoded":
            handled.append(f"{wall:.6f} {(time.perf_counter() - started) * 1000:.3f}\n")
        return response

    async def write_acks() -> None:
        # Appended every half second: a process killed mid-run keeps what it wrote.
        path = Path(database).parent / f"acks-{os.getpid()}.txt"
        with path.open("a") as out:
            while True:
                await asyncio.sleep(0.5)
                out.writelines(handled)
                handled.clear()
                out.flush()

    async with open_runtime(
        settings, taxonomy=taxonomy, classifier=KeywordClassifier(taxonomy)
    ) as runtime:
        web_app = create_web_app(runtime.app, runtime.services)
        web_app.middlewares.append(time_interactions)
        writer = asyncio.create_task(write_acks())
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"PORT {runner.addresses[0][1]}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        parent = os.getppid()

        async def orphaned() -> None:  # the driver died (Ctrl-C, a timeout): stop too
            while os.getppid() == parent:  # noqa: ASYNC110 - a parent's death sets no event
                await asyncio.sleep(1.0)
            stop.set()

        watch = asyncio.create_task(orphaned())
        profile_to = os.environ.get("TRIAGE_BENCH_PROFILE")  # cProfile the bot (no restarts)
        profiler = cProfile.Profile() if profile_to else None
        if profiler is not None:
            profiler.enable()
        await stop.wait()
        if profiler is not None and profile_to:
            profiler.disable()
            profiler.dump_stats(profile_to)
        await asyncio.sleep(0.6)  # the last acknowledgements written
        writer.cancel()
        watch.cancel()
        await runner.cleanup()


# -- the driver -------------------------------------------------------------------------------


@dataclass
class Bot:
    """The bot's current process and where it listens; ``up`` while it answers."""

    slack_url: str
    database: Path
    process: asyncio.subprocess.Process | None = None
    url: str = ""
    up: asyncio.Event = field(default_factory=asyncio.Event)
    #: Wall-clock times the bot went down (a stop began) and came up (it listens).
    downs: list[float] = field(default_factory=list)
    ups: list[float] = field(default_factory=list)

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve-bot",
            self.slack_url,
            str(self.database),
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = (await self.process.stdout.readline()).decode()
        while not line.startswith("PORT"):
            if not line:
                raise RuntimeError("the bot did not start")
            print(line.rstrip())
            line = (await self.process.stdout.readline()).decode()
        self.url = f"http://127.0.0.1:{line.split()[1]}{EVENTS_PATH}"
        self.ups.append(time.time())
        self.up.set()

    async def stop(self, sig: int) -> None:
        self.downs.append(time.time())
        self.up.clear()
        assert self.process is not None
        self.process.send_signal(sig)
        await self.process.wait()


def read_acks(folder: Path) -> list[tuple[float, float]]:
    """When each acknowledgement began (wall clock) and its time (milliseconds), as every
    bot process wrote them."""
    found = []
    for path in folder.glob("acks-*.txt"):
        for line in path.read_text().splitlines():
            wall, ms = line.split()
            found.append((float(wall), float(ms)))
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def texts() -> list[str]:
    for path in (STARTER_TEST, STARTER_TRAIN):
        if path.exists():
            return [e.text for e in read_examples(path)]
    return ["I was charged twice", "The app crashes", "How do I export?", "Reset my password"]


def query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the bot's SQLite file (read-only; the bot keeps writing)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


@dataclass
class Sent:
    acks_ms: list[float] = field(default_factory=list)
    #: Per answered send: when it was sent (wall clock), its round trip (ms), whether it had
    #: waited for the bot to come back (sent while it was down), and its content type.
    trace: list[tuple[float, float, bool, str]] = field(default_factory=list)
    failed: int = 0  # sends that got no 200 (the bot was down): sent again
    actions: int = 0
    bot_cpu_s: float | None = None  # the bot's CPU time in the phase (runs without restarts)
    #: Seconds before a send the bot could not take is sent again (0: wait for the bot to be
    #: back, then send at once).
    retry_seconds: float = 0.0


async def deliver(
    bot: Bot, session: aiohttp.ClientSession, sent: Sent, body: str, content_type: str
) -> None:
    """Send until the bot answers 200; time each answered round trip."""
    waited = False
    while True:
        if not bot.up.is_set() and sent.retry_seconds > 0:  # refused: the bot is down
            sent.failed += 1
            waited = True
            await asyncio.sleep(sent.retry_seconds)
            continue
        waited = waited or not bot.up.is_set()
        await bot.up.wait()
        sender = SlackSender(bot.url, SECRET, session)
        wall, started = time.time(), time.monotonic()
        try:
            status, _ = await sender.post(body, content_type)
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        if status == 200:
            ms = (time.monotonic() - started) * 1000
            sent.acks_ms.append(ms)
            sent.trace.append((wall, ms, waited, content_type))
            return
        waited = True
        sent.failed += 1
        await asyncio.sleep(sent.retry_seconds or 0.2)


@dataclass(frozen=True)
class Card:
    ticket_id: int
    ts: str  # the ticket's message
    channel: str
    card_ts: str
    department: str


def cards_of(fake: FakeSlack, database: Path) -> list[Card]:
    """Every ticket's live card (its metadata names the ticket), with the ticket's ts."""
    ticket_ts = {int(i): str(ts) for i, ts in query(database, "SELECT id, ts FROM tickets")}
    channels = [d.channel for d in load_taxonomy(DEFAULT_TAXONOMY)] + [TRIAGE]
    found: dict[int, Card] = {}
    for channel in channels:
        for message in fake.live_messages(channel):
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("kind") != "card" or message.get("thread_ts"):
                continue
            ticket_id = int(payload["ticket_id"])
            value = re.search(r'"value": "(\d+):([A-Za-z]+)"', blocks_text(message))
            department = value.group(2) if value else ""
            found[ticket_id] = Card(
                ticket_id, ticket_ts[ticket_id], channel, str(message["ts"]), department
            )
    return [found[i] for i in sorted(found)]


def card_status(message: dict[str, Any] | None) -> re.Match[str] | None:
    """The status line of a card as Slack has it now."""
    if message is None:
        return None
    raw = message.get("blocks")
    blocks = json.loads(raw) if isinstance(raw, str) else raw or []
    for block in blocks:
        for element in block.get("elements", []) if block.get("type") == "context" else []:
            found = _STATUS.match(str(element.get("text", "")))
            if found:
                return found
    return None


def blocks_text(message: dict[str, Any]) -> str:
    blocks = message.get("blocks")
    return blocks if isinstance(blocks, str) else json.dumps(blocks)


def press(agent: str, card: Card, action: str, action_ts: str) -> dict[str, Any]:
    payload = button_payload(
        agent,
        card.channel,
        card.card_ts,
        f"triage_desk:{action}",
        f"{card.ticket_id}:{card.department}",
    )
    payload["actions"][0]["action_ts"] = action_ts
    payload["actions"][0]["block_id"] = f"triage_desk_{card.ticket_id}"
    return payload


async def route(bot: Bot, session: aiohttp.ClientSession, tickets: int) -> float:
    """Post ``tickets`` tickets and wait until every one is on the desk; the seconds it took."""
    sender = SlackSender(bot.url, SECRET, session)
    corpus = texts()
    started = time.monotonic()
    sent = Sent()
    jobs = []
    for n in range(tickets):
        event = message_event(SUPPORT, sender.new_ts(), corpus[n % len(corpus)], f"U{n:08d}")
        body = json.dumps(sender.envelope(event))
        jobs.append(asyncio.create_task(deliver(bot, session, sent, body, "application/json")))
        await asyncio.sleep(1 / 200)
    await asyncio.gather(*jobs)
    while time.monotonic() - started < 600:
        (count,) = query(bot.database, "SELECT COUNT(*) FROM ticket_states")[0]
        if count >= tickets:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


@dataclass(frozen=True)
class Action:
    at: float  # virtual time: orders the actions, which are then sent at the rate
    kind: str  # take | reply | resolve
    card: Card
    agent: str
    again: bool = False  # a redelivery of the previous take (the same action_ts)


def schedule(cards: list[Card], rate: float) -> list[Action]:
    actions = []
    for i, card in enumerate(cards):
        base = i * 3 / rate
        agent = AGENTS[i % len(AGENTS)]
        actions.append(Action(base, "take", card, agent))
        if i % 10 == 0:  # two agents at the same moment
            actions.append(Action(base, "take", card, AGENTS[(i + 1) % len(AGENTS)]))
        if i % 20 == 5:  # delivered twice
            actions.append(Action(base + 0.2, "take", card, agent, again=True))
        actions.append(Action(base + LAG, "reply", card, agent))
        actions.append(Action(base + 2 * LAG, "resolve", card, agent))
    return sorted(actions, key=lambda a: a.at)


async def act(
    bot: Bot,
    session: aiohttp.ClientSession,
    actions: list[Action],
    rate: float,
    sent: Sent,
    restarts_wanted: int = 2,
) -> list[float]:
    """Send ``actions`` at ``rate`` a second, restarting the bot at a third (SIGTERM) and at
    two thirds (SIGKILL); returns when each restart began (seconds into the phase)."""
    sender = SlackSender(bot.url, SECRET, session)
    action_ts: dict[tuple[int, str], str] = {}
    jobs: list[asyncio.Task[None]] = []
    restarts: list[float] = []
    signals = [signal.SIGTERM, signal.SIGKILL][:restarts_wanted]
    marks = {(k + 1) * len(actions) // 3: sig for k, sig in enumerate(signals)}

    async def restart(sig: int, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await before  # one restart at a time
        await bot.stop(sig)
        await bot.start()

    # An agent acts on a ticket only once their previous action on it was acknowledged (a
    # press retried after a restart must not overtake the next one).
    previous: dict[int, asyncio.Task[None]] = {}

    async def one(action: Action, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.shield(after)
        card = action.card
        if action.kind == "reply":
            # A ts of its own (the tickets' came from another sender's counter).
            reply_ts = f"{1_800_000_000 + card.ticket_id}.000200"
            event = message_event(
                SUPPORT, reply_ts, "Looking into it now", action.agent, thread_ts=card.ts
            )
            body = json.dumps(sender.envelope(event))
            await deliver(bot, session, sent, body, "application/json")
            return
        key = (card.ticket_id, action.kind)
        if not action.again:
            action_ts[key] = f"{time.time():.6f}"
        payload = press(action.agent, card, action.kind, action_ts[key])
        await deliver(bot, session, sent, *form(payload))

    begin = time.monotonic()
    assert bot.process is not None
    cpu_before = (bot.process.pid, cpu_seconds(bot.process.pid))
    restarting: asyncio.Task[None] | None = None
    for n, action in enumerate(actions):
        delay = begin + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if n in marks:
            restarts.append(time.monotonic() - begin)
            restarting = asyncio.create_task(restart(marks[n], restarting))
        after = previous.get(action.card.ticket_id)
        if action.again or (action.kind == "take" and after is not None):
            after = None  # a redelivery, or a second agent at the same moment: no waiting
        job = asyncio.create_task(one(action, after))
        if action.kind != "take" or action.card.ticket_id not in previous:
            previous[action.card.ticket_id] = job
        jobs.append(job)
        sent.actions += 1
    await asyncio.gather(*jobs)
    if restarting is not None:
        await restarting
    if not restarts_wanted and bot.process is not None and bot.process.pid == cpu_before[0]:
        sent.bot_cpu_s = cpu_seconds(cpu_before[0]) - cpu_before[1]
    return restarts


def form(payload: dict[str, Any]) -> tuple[str, str]:
    from urllib.parse import urlencode

    return urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"


async def settle(database: Path, tickets: int, seconds: float = 600.0) -> float:
    """Wait until every ticket is resolved and its Slack side shows it (a first response
    that was lost is counted by ``check``, not waited for); seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        (done,) = query(
            database,
            "SELECT COUNT(*) FROM ticket_states WHERE status = 'resolved' "
            "AND synced_version = version",
        )[0]
        if done >= tickets:
            break
        if int(time.monotonic() - started) % 15 == 0:
            rows = query(
                database,
                "SELECT status, synced_version = version, first_response_at IS NOT NULL, "
                "COUNT(*) FROM ticket_states GROUP BY 1, 2, 3",
            )
            print(f"  settling: {rows}", flush=True)
        await asyncio.sleep(1.0)
    return time.monotonic() - started


def check(fake: FakeSlack, database: Path, cards: list[Card]) -> dict[str, int]:
    """Compare what was asked, what the database holds and what Slack shows."""
    states = {
        int(row[0]): row[1:]
        for row in query(
            database,
            "SELECT ticket_id, status, assignee, first_response_at, synced_version, version "
            "FROM ticket_states",
        )
    }
    moves: dict[int, Counter[tuple[str | None, str]]] = {}
    total = 0
    for ticket_id, before, after in query(
        database, "SELECT ticket_id, from_status, to_status FROM ticket_transitions"
    ):
        moves.setdefault(int(ticket_id), Counter())[(before, after)] += 1
        total += 1
    asked = [(None, "open"), ("open", "in_progress"), ("in_progress", "resolved")]
    lost = twice = unanswered = cards_off = emoji_off = lines_missing = lines_twice = 0
    threads: dict[str, Counter[str]] = {}
    for call in fake.called("chat.postMessage", channel=SUPPORT):
        text = str(call.params.get("text"))
        kind = "taken" if "is on it" in text else "resolved" if "Resolved by" in text else None
        if kind and call.params.get("thread_ts"):
            threads.setdefault(str(call.params["thread_ts"]), Counter())[kind] += 1
    for card in cards:
        seen = moves.get(card.ticket_id, Counter())
        lost += sum(1 for move in asked if seen[move] == 0)
        twice += sum(max(0, seen[move] - 1) for move in asked)
        twice += sum(n for move, n in seen.items() if move not in asked)
        state = states.get(card.ticket_id)
        if state is None:
            cards_off += 1
            continue
        status, assignee, answered = state[0], state[1], state[2]
        unanswered += answered is None
        shown = card_status(fake.message(card.channel, card.card_ts))
        if shown is None or (_NAMES.get(shown.group(1)), shown.group(2)) != (status, assignee):
            cards_off += 1
        reactions = fake.reactions_on(SUPPORT, card.ts)
        emoji_off += not ("white_check_mark" in reactions and "eyes" not in reactions)
        lines = threads.get(card.ts, Counter())
        lines_missing += (lines["taken"] == 0) + (lines["resolved"] == 0)
        lines_twice += max(0, lines["taken"] - 1) + max(0, lines["resolved"] - 1)
    return {
        "transitions": total,
        "expected_transitions": len(asked) * len(cards),
        "lost": lost,
        "twice": twice,
        "answers_missing": unanswered,
        "mismatched_cards": cards_off,
        "mismatched_emoji": emoji_off,
        "thread_lines_missing": lines_missing,
        "thread_lines_twice": lines_twice,
    }


def write_trace(path: Path, bot: Bot, sent: Sent, in_bot: list[tuple[float, float]]) -> None:
    """Every acknowledgement as the driver and the bot saw it, and when the bot was down."""
    found = {"downs": bot.downs, "ups": bot.ups, "driver": sent.trace, "bot": in_bot}
    path.write_text(json.dumps(found))


async def run(
    tickets: int,
    rate: float,
    restarts_wanted: int,
    trace: Path | None = None,
    retry_seconds: float = 0.0,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack(token=BOT_TOKEN) as fake:
            fake.members[TRIAGE] = list(AGENTS)
            bot = Bot(fake.url, Path(tmp) / "bench.db")
            await bot.start()
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                routed_s = await route(bot, session, tickets)
                cards = cards_of(fake, bot.database)
                print(
                    f"{len(cards)} tickets routed and on the desk in {routed_s:.1f} s", flush=True
                )
                actions = schedule(cards, rate)
                sent = Sent(retry_seconds=retry_seconds)
                began = time.monotonic()
                restarts = await act(bot, session, actions, rate, sent, restarts_wanted)
                acted_s = time.monotonic() - began
                load = os.getloadavg()
                print(
                    f"{sent.actions} actions sent in {acted_s:.1f} s "
                    f"({sent.actions / acted_s:.1f}/s); restarts at "
                    + ", ".join(f"{t:.0f} s" for t in restarts),
                    flush=True,
                )
                waited = await settle(bot.database, len(cards))
            figures = check(fake, bot.database, cards)
            await bot.stop(signal.SIGTERM)
            in_bot_trace = read_acks(Path(tmp))
    in_bot = [ms for _wall, ms in in_bot_trace]
    if trace is not None:
        write_trace(trace, bot, sent, in_bot_trace)
    acks = sent.acks_ms
    return {
        "tickets": len(cards),
        "actions": sent.actions,
        **figures,
        "ack_p50_ms": round(statistics.median(acks), 1) if acks else None,
        "ack_p99_ms": round(percentile(acks, 99), 1),
        "ack_max_ms": round(max(acks), 1) if acks else None,
        "ack_in_bot_p50_ms": round(statistics.median(in_bot), 1) if in_bot else None,
        "ack_in_bot_p99_ms": round(percentile(in_bot, 99), 1),
        "sent_again_while_down": sent.failed,
        "bot_cpu_ms_per_action": round(sent.bot_cpu_s / sent.actions * 1000, 2)
        if sent.bot_cpu_s is not None
        else None,
        "restarts": len(restarts),
        "settle_s": round(waited, 1),
        "load_average": [round(x, 2) for x in load],
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=50.0, help="actions a second, in all")
    parser.add_argument("--restarts", type=int, default=2, choices=(0, 1, 2))
    parser.add_argument(
        "--retry-seconds",
        type=float,
        default=RETRY_SECONDS,
        help="a send the bot could not take is sent again this much later (0: at once when "
        "the bot is back)",
    )
    parser.add_argument(
        "--trace", type=Path, help="write every acknowledgement's time and timing here (JSON)"
    )
    parser.add_argument("--serve-bot", nargs=2, metavar=("SLACK_URL", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bot:
        await serve_bot(*args.serve_bot)
        return 0
    result = await run(args.tickets, args.rate, args.restarts, args.trace, args.retry_seconds)
    print(
        f"\ntransitions {result['transitions']} (expected {result['expected_transitions']}): "
        f"lost {result['lost']}, applied twice {result['twice']}; answers missing "
        f"{result['answers_missing']}"
    )
    print(
        f"cards not matching the database {result['mismatched_cards']}, status emoji "
        f"{result['mismatched_emoji']}, thread lines missing {result['thread_lines_missing']} "
        f"/ twice {result['thread_lines_twice']}"
    )
    print(
        f"interaction ack (round trip from here): p50 {result['ack_p50_ms']} ms, "
        f"p99 {result['ack_p99_ms']} ms, max {result['ack_max_ms']} ms; "
        f"{result['sent_again_while_down']} sends repeated while the bot was down "
        f"(load average {result['load_average']}: a shared machine, upper bounds)"
    )
    print(
        f"interaction ack inside the bot (request in, response out): p50 "
        f"{result['ack_in_bot_p50_ms']} ms, p99 {result['ack_in_bot_p99_ms']} ms"
    )
    print(json.dumps(result))
    bad = (
        result["lost"]
        or result["twice"]
        or result["mismatched_cards"]
        or result["answers_missing"]
        or result["mismatched_emoji"]
        or result["thread_lines_missing"]
        or result["thread_lines_twice"]
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
