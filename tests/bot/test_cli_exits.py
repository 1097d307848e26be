"""Every ``triage`` command's happy path ends cleanly: exit code 0 and no traceback on stderr.

A traceback after a successful run (e.g. an SDK client torn down after its event loop closed,
"RuntimeError: Event loop is closed") would surface here: stderr is read, and the collector
runs after each command so that a client left open is finalised inside the test, where pytest
turns an unraisable exception into an error.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import typer.main
from typer.testing import CliRunner, Result

from bot.cli import build_app
from tests.bot.conftest import SIGNING_SECRET, SUPPORT
from tests.fakes.openai_api import API_KEY, FakeOpenAI
from tests.fakes.slack_api import FakeSlack

app = build_app()

STARTER = "data/starter/train.jsonl"
#: What must never be on stderr after a command that succeeded.
UNCLEAN = ("Traceback", "Event loop is closed", "Unclosed", "Task was destroyed")


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI().serve_in_thread() as server:
        server.polls_per_state = 1
        yield server


def _clean(result: Result, command: list[str]) -> Result:
    # Finalise what the command left behind: an HTTP connection still open after its event
    # loop closed warns here (over TLS it is the "Event loop is closed" traceback).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == [], (command, leaked)
    assert result.exit_code == 0, (command, result.output)
    for marker in UNCLEAN:
        assert marker not in result.stderr, (command, result.stderr)
        assert marker not in result.stdout, (command, result.stdout)
    return result


def test_every_command_exits_cleanly(openai_fake: FakeOpenAI, tmp_path: Path) -> None:
    env = {
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": openai_fake.base_url,
        "TRIAGE_OPENAI_FINETUNE_POLL_SECONDS": "0",
        "TRIAGE_OPENAI_TIMEOUT_SECONDS": "5",
        "TRIAGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "TRIAGE_LEARNER": "tfidf",
    }
    runner = CliRunner()
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    model, state = tmp_path / "model.triage", tmp_path / "ft.json"

    covered: set[str] = set()

    def ok(*args: str) -> Result:
        covered.add(" ".join(a for a in args[:2] if not a.startswith("-")))
        return _clean(runner.invoke(app, list(args), env=env), list(args))

    gc.collect()  # what earlier tests left is not this test's business
    ok("config")
    ok("learners")
    ok("generate", "--train-out", str(train), "--test-out", str(test))
    ok("train", "--data", str(train), "--out", str(model), "--learner", "tfidf")
    ok("evaluate", "--model", str(model), "--test", str(test))
    ok("classify", "--model", str(model), "my money was taken twice")
    # The command the issue reported: a fine-tune trained and evaluated in two event loops.
    ok("evaluate", "--learner", "openai-finetune", "--train", str(train), "--test", str(test))
    ok("evaluate", "--learner", "openai", "--train", str(train), "--test", str(test))
    ok("finetune", "export", "--data", STARTER, "--out", str(tmp_path / "ft.jsonl"))
    ok("finetune", "start", "--data", STARTER, "--no-follow", "--state", str(state))
    ok("finetune", "status", "--state", str(state))
    ok("finetune", "resume", "--state", str(state))
    ok("finetune", "start", "--data", str(train), "--no-follow", "--state", str(state))
    ok("finetune", "cancel", "--state", str(state))
    ok("retrain", "--no-progress")
    ok("retrain", "--no-progress")
    ok("report", "--no-progress")
    ok("models", "list")
    ok("models", "rollback")
    ok("models", "activate", "2")
    ok("tickets", "list")
    ok("tickets", "retry", "--failed")
    ok("import", "--no-progress", str(train))
    ok("export", "--out", str(tmp_path / "training.jsonl"))
    ok("corrections", "list")
    ok("corrections", "revert", "--user", "U0NOBODY")
    ok("stats", "--days", "7")
    ok("stats", "--json", "--png", str(tmp_path / "stats.png"))
    # A command added later must be added here too (serve: the test below).
    assert _command_paths() - {"serve"} <= covered, _command_paths() - covered


#: What each command needs on its command line to get as far as reading the settings.
REACHES_SETTINGS: dict[str, list[str]] = {
    "config": [],
    "learners": [],
    "generate": [],
    "train": ["--data", STARTER, "--out", "unused.triage"],
    "evaluate": ["--model", "unused.triage", "--test", STARTER],
    "classify": ["my money was taken twice"],
    "finetune export": ["--data", STARTER],
    "finetune start": ["--data", STARTER],
    "finetune status": ["ftjob-1"],
    "finetune resume": ["ftjob-1"],
    "finetune cancel": ["ftjob-1"],
    "retrain": [],
    "report": [],
    "models list": [],
    "models rollback": [],
    "models activate": ["2"],
    "tickets list": [],
    "tickets retry": ["1"],
    "import": [STARTER],
    "export": ["--out", "unused.jsonl"],
    "corrections list": [],
    "corrections revert": ["--user", "U0NOBODY"],
    "stats": [],
    "serve": [],
}


def test_every_command_reports_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    """The one error wrapper is on every command: a setting that is wrong is one line on
    stderr naming it, exit code 2, no traceback (and its value, which may hold a password,
    is not repeated)."""
    assert set(REACHES_SETTINGS) == _command_paths()
    env = {"TRIAGE_DATABASE_URL": "postgresql+asyncpg://u:s3cret@db:notaport/x"}
    runner = CliRunner()
    for path, args in REACHES_SETTINGS.items():
        result = runner.invoke(app, [*path.split(), *args], env=env)
        assert result.exit_code == 2, (path, result.output)
        assert result.stderr.startswith("error: TRIAGE_DATABASE_URL: "), (path, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (path, result.stderr)
        assert "Traceback" not in result.output, path
        assert "s3cret" not in result.output, path


def _command_paths() -> set[str]:
    """Every command of ``triage``, as "name" or "group name"."""
    paths: set[str] = set()

    def walk(command: Any, prefix: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            if hasattr(sub, "commands"):  # a group
                walk(sub, f"{prefix}{name} ")
            else:
                paths.add(f"{prefix}{name}")

    walk(typer.main.get_command(app), "")
    return paths


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_serve_stops_cleanly_on_sigterm(fake_slack: FakeSlack, tmp_path: Path) -> None:
    """``triage serve`` in its own process: healthy, then SIGTERM, exit 0, nothing on stderr
    but log lines."""
    port = _free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.url,
        "TRIAGE_SUPPORT_CHANNELS": SUPPORT,
        "TRIAGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "TRIAGE_LEARNER": "tfidf",
        "PORT": str(port),
    }
    env.pop("SLACK_APP_TOKEN", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from bot.cli import main; main()",
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60), aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200 and (await response.json())["ok"]:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                if process.returncode is not None:
                    break
                await asyncio.sleep(0.1)  # the child's start-up, in real time
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = stderr.decode()
    assert process.returncode == 0, text
    for marker in UNCLEAN:
        assert marker not in text, text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(line.get("level") != "ERROR" for line in lines), text
    assert stdout == b""
