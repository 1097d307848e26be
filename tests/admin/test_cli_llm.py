"""``triage generate`` and ``triage finetune`` against the fake OpenAI API (in a thread)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from admin.cli import build_app
from classifier.examples import Source, read_examples
from tests.fakes.openai_api import API_KEY, FakeOpenAI, chat_jsonl_problems

app = build_app()

runner = CliRunner()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """The fake API on its own loop in a thread: the commands run their own event loop."""
    with FakeOpenAI().serve_in_thread() as server:
        yield server


def env(fake: FakeOpenAI | None) -> dict[str, str | None]:
    if fake is None:
        return {"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None}
    return {
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "TRIAGE_OPENAI_FINETUNE_POLL_SECONDS": "0",
        "TRIAGE_OPENAI_TIMEOUT_SECONDS": "5",
        "TRIAGE_OPENAI_MAX_RETRIES": "1",
    }


def test_generate_offline_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["generate", "--train-out", str(tmp_path / "t.jsonl")], env=env(None)
    )
    assert result.exit_code == 2
    assert "OPENAI_API_KEY is not set" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "t.jsonl").exists()


def test_generate_writes_the_seeds_split_in_chat_format(fake: FakeOpenAI, tmp_path: Path) -> None:
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    args = ["generate", "--train-out", str(train), "--test-out", str(test), "--seed", "3"]
    result = runner.invoke(app, args, env=env(fake))
    assert result.exit_code == 0, result.output
    train_examples = read_examples(train)
    test_examples = read_examples(test)
    assert (len(train_examples), len(test_examples)) == (50, 15)
    assert {e.source for e in train_examples + test_examples} == {Source.GENERATED}
    assert {e.label for e in test_examples} == {
        "Technical",
        "Billing",
        "Account",
        "Product",
        "Other",
    }
    record = json.loads(train.read_text().splitlines()[0])
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
    # The fake adds a duplicate and a wrongly labelled ticket to every batch: both rejected.
    # Two batches per department (13 wanted, at most 10 per batch): 10 of each rejected.
    assert "wrong department 10, duplicate 10" in result.output
    texts = [e.text for e in train_examples + test_examples]
    assert len(set(texts)) == len(texts)

    # Seeded: the same seed asks the same questions and splits the same way.
    again = tmp_path / "again.jsonl"
    args = ["generate", "--train-out", str(again), "--test-out", str(tmp_path / "t2.jsonl")]
    assert runner.invoke(app, [*args, "--seed", "3"], env=env(fake)).exit_code == 0
    assert again.read_bytes() == train.read_bytes()


def test_finetune_start_records_the_job_then_resume_finishes_it(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    data = Path("data/starter/train.jsonl")
    state = tmp_path / "state.json"
    fake.polls_per_state = 2
    common = ["--state", str(state)]
    started = runner.invoke(
        app, ["finetune", "start", "--data", str(data), "--no-follow", *common], env=env(fake)
    )
    assert started.exit_code == 0, started.output
    job_id = json.loads(state.read_text())["job_id"]
    assert job_id in started.output
    assert chat_jsonl_problems(next(iter(fake.file_bytes.values()))) == []

    # Starting the same thing again (say, after a crash) reuses the job.
    again = runner.invoke(
        app, ["finetune", "start", "--data", str(data), "--max-wait", "0", *common], env=env(fake)
    )
    assert again.exit_code == 2
    assert "triage finetune resume" in again.output
    assert json.loads(state.read_text())["job_id"] == job_id

    status = runner.invoke(app, ["finetune", "status", *common], env=env(fake))
    assert status.exit_code == 0
    assert job_id in status.output

    resumed = runner.invoke(app, ["finetune", "resume", *common], env=env(fake))
    assert resumed.exit_code == 0, resumed.output
    saved = json.loads(state.read_text())
    assert saved["fine_tuned_model"].startswith("ft:")
    assert saved["fine_tuned_model"] in resumed.output
    assert len(fake.jobs) == 1
    assert len(fake.requests_to("POST", "/v1/fine_tuning/jobs")) == 1


def test_finetune_cancel_uses_the_recorded_job(fake: FakeOpenAI, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    args = ["--data", "data/starter/train.jsonl", "--no-follow", "--state", str(state)]
    assert runner.invoke(app, ["finetune", "start", *args], env=env(fake)).exit_code == 0
    result = runner.invoke(app, ["finetune", "cancel", "--state", str(state)], env=env(fake))
    assert result.exit_code == 0
    assert "cancelled" in result.output
    [job] = fake.jobs.values()
    assert job["status"] == "cancelled"


def test_finetune_refusal_is_one_line_naming_alternatives(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.refuse_fine_tuning("not_eligible")
    args = ["--data", "data/starter/train.jsonl", "--state", str(tmp_path / "s.json")]
    result = runner.invoke(app, ["finetune", "start", *args], env=env(fake))
    assert result.exit_code == 2
    assert "local learner" in result.output
    assert "prompted learner" in result.output
    assert "Traceback" not in result.output
    assert fake.jobs == {}


def test_finetune_export_writes_the_exact_upload(tmp_path: Path) -> None:
    out = tmp_path / "ft.jsonl"
    result = runner.invoke(
        app, ["finetune", "export", "--data", "data/starter/train.jsonl", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert chat_jsonl_problems(out.read_bytes()) == []


def test_generate_finetune_evaluate_reports_baseline_against_fine_tuned(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    """The seed's pipeline from the terminal: baseline (prompted) vs fine-tuned, one report."""
    train, test, state = tmp_path / "train.jsonl", tmp_path / "test.jsonl", tmp_path / "s.json"
    generated = runner.invoke(
        app, ["generate", "--train-out", str(train), "--test-out", str(test)], env=env(fake)
    )
    assert generated.exit_code == 0, generated.output
    tuned = runner.invoke(
        app, ["finetune", "start", "--data", str(train), "--state", str(state)], env=env(fake)
    )
    assert tuned.exit_code == 0, tuned.output
    ft_model = json.loads(state.read_text())["fine_tuned_model"]

    args = ["evaluate", "--learner", "openai", "--train", str(train), "--test", str(test)]
    result = runner.invoke(app, [*args, "--compare", ft_model, "--json"], env=env(fake))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["learner"] == "openai"
    assert report["n_test"] == 15
    comparison = report["comparison"]
    assert comparison["model_b"] == ft_model
    assert comparison["accuracy_b"] > comparison["accuracy_a"]  # fine-tuning helped, as in the seed
    baseline_tokens = report["usage"]["prompt_tokens_per_call"]
    tuned_tokens = report["compared_usage"]["prompt_tokens_per_call"]
    assert tuned_tokens * 3 < baseline_tokens  # and needs a far shorter prompt
    assert report["usage"]["cost_per_1000_tickets_usd"] > 0

    shown = runner.invoke(
        app, ["evaluate", "--model", ft_model, "--test", str(test)], env=env(fake)
    )
    assert shown.exit_code == 0, shown.output
    assert "est. cost per 1,000 tickets" in shown.output
    classified = runner.invoke(
        app, ["classify", "--model", ft_model, "--json", "my money was taken twice"], env=env(fake)
    )
    assert json.loads(classified.stdout)["predictions"][0]["label"] == "Billing"


def test_llm_learners_need_a_key(fake: FakeOpenAI) -> None:
    without = runner.invoke(app, ["learners"], env=env(None))
    assert without.exit_code == 0
    row = next(line for line in without.output.splitlines() if "openai " in line)
    assert "no" in row
    trained = runner.invoke(
        app,
        ["evaluate", "--learner", "openai", "--train", "data/starter/train.jsonl",
         "--test", "data/starter/test.jsonl"],
        env=env(None),
    )  # fmt: skip
    assert trained.exit_code == 2
    assert "OPENAI_API_KEY" in trained.output
    ft = runner.invoke(
        app, ["evaluate", "--model", "ft:x:y:z", "--test", "data/starter/test.jsonl"], env=env(None)
    )
    assert ft.exit_code == 2
    assert "OPENAI_API_KEY" in ft.output
