"""The local-model commands, driven through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from admin.cli import build_app
from classifier.examples import Example, write_examples
from classifier.learners.embedding import encoder_available
from data import STARTER_TRAIN
from tests.classifier.learners.conftest import ACCOUNT, BILLING, TECHNICAL

app = build_app()

runner = CliRunner()


def _tickets() -> list[Example]:
    return [
        Example(text, label)
        for label, texts in (("Billing", BILLING), ("Technical", TECHNICAL), ("Account", ACCOUNT))
        for text in texts
    ]


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    write_examples(path, _tickets())
    return path


@pytest.fixture
def test_file(tmp_path: Path) -> Path:
    path = tmp_path / "test.jsonl"
    write_examples(
        path,
        [
            Example("I was billed twice, please refund", "Billing"),
            Example("The app shows error 500", "Technical"),
            Example("How do I reset my password", "Account"),
        ],
    )
    return path


@pytest.fixture
def model_file(tmp_path: Path, train_file: Path) -> Path:
    out = tmp_path / "models" / "m.triage"
    result = runner.invoke(
        app, ["train", "--data", str(train_file), "--out", str(out), "--learner", "tfidf"]
    )
    assert result.exit_code == 0, result.output
    return out


def _error_line(result: object) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == 2, (result.exit_code, result.output)  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_train_writes_a_model_and_says_so(model_file: Path) -> None:
    assert model_file.read_bytes().startswith(b"TRIAGE-MODEL")


def test_train_uses_the_taxonomy_departments(train_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.triage"
    result = runner.invoke(
        app, ["train", "--data", str(train_file), "--out", str(out), "--learner", "tfidf"]
    )
    assert "tfidf-" in result.stdout
    # Product and Other have no examples: the model leaves them out and the user is told.
    assert "no training examples for Product, Other" in result.stderr


def test_evaluate_json_is_one_object_with_the_report(model_file: Path, test_file: Path) -> None:
    result = runner.invoke(
        app, ["evaluate", "--model", str(model_file), "--test", str(test_file), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accuracy"] == 1.0
    assert report["n_test"] == 3
    assert report["n_train"] == 24
    assert report["learner"] == "tfidf"
    assert report["model_id"].startswith("tfidf-")
    assert isinstance(report["train_seconds"], float)
    assert set(report["per_class"]) == {"Technical", "Billing", "Account"}
    assert report["per_class"]["Billing"]["support"] == 1
    assert report["confusion"]["labels"] == ["Technical", "Billing", "Account"]
    low, high = report["accuracy_ci"]
    assert 0 < low < high <= 1
    assert 0 <= report["macro_f1"] <= 1
    assert report["selection"] is None  # the tfidf learner has one fixed configuration


@pytest.mark.embeddings
@pytest.mark.skipif(not encoder_available(), reason="the embeddings extra is not installed")
def test_evaluate_json_says_what_the_embedding_learner_selected(
    train_file: Path, test_file: Path
) -> None:
    result = runner.invoke(
        app,
        [
            "evaluate",
            *("--train", str(train_file), "--test", str(test_file)),
            *("--learner", "embedding", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    selection = json.loads(result.stdout)["selection"]
    names = [c["name"] for c in selection["candidates"]]
    assert selection["chosen"]["name"] in names
    assert len(names) >= 7  # feature mixes, then heads on the best mix
    assert selection["scheme"] == "stratified 5-fold"


def test_evaluate_trains_first_compares_and_draws(
    train_file: Path, test_file: Path, model_file: Path, tmp_path: Path
) -> None:
    png = tmp_path / "confusion.png"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--train",
            str(train_file),
            "--test",
            str(test_file),
            "--learner",
            "tfidf",
            "--compare",
            str(model_file),
            "--png",
            str(png),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_train"] == 24
    assert report["comparison"]["both_right"] == 3
    assert report["comparison"]["mcnemar_p_value"] == 1.0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_evaluate_table_output(model_file: Path, test_file: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--model", str(model_file), "--test", str(test_file)])
    assert result.exit_code == 0, result.output
    assert "accuracy 100.0%" in result.stdout
    assert "Billing" in result.stdout
    assert "Confusion matrix" in result.stdout
    # The confusion matrix's Account row: its one ticket on the diagonal, nothing elsewhere.
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ Account ")]
    assert len(rows) == 2  # the per-label table's row, then the confusion matrix's
    cells = [cell.strip() for cell in rows[1].split("│")[2:-1]]
    assert cells == [".", ".", "1"]  # columns: Technical, Billing, Account


def test_classify_with_a_model(model_file: Path) -> None:
    result = runner.invoke(
        app, ["classify", "--model", str(model_file), "--json", "please refund my payment"]
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)["predictions"]
    assert row["label"] == "Billing"
    assert 0 < row["runner_up"]["confidence"] <= row["confidence"] <= 1


@pytest.mark.skipif(not STARTER_TRAIN.exists(), reason="the starter data is not on this branch")
def test_classify_without_a_model_trains_on_the_starter_data() -> None:
    # TRIAGE_LEARNER picks the learner trained for the occasion; tfidf keeps the test quick.
    result = runner.invoke(
        app, ["classify", "--json", "my invoice is wrong"], env={"TRIAGE_LEARNER": "tfidf"}
    )
    assert result.exit_code == 0, result.output
    assert "the 'tfidf' learner was trained on the starter data" in result.stderr
    assert json.loads(result.stdout)["predictions"][0]["label"] == "Billing"


def test_learners_lists_every_learner_and_the_auto_choice() -> None:
    result = runner.invoke(app, ["learners"])
    assert result.exit_code == 0, result.output
    for name in ("tfidf", "embedding", "openai", "openai-finetune"):
        assert name in result.stdout
    assert '"auto" picks' in result.stdout
    assert "OPENAI_API_KEY" in result.stdout


def test_fifty_thousand_character_tickets_train_and_classify(
    tmp_path: Path, model_file: Path
) -> None:
    data = tmp_path / "long.jsonl"
    write_examples(data, [*_tickets(), Example("refund " * 7200, "Billing")])
    out = tmp_path / "long.triage"
    result = runner.invoke(
        app, ["train", "--data", str(data), "--out", str(out), "--learner", "tfidf"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["classify", "--model", str(out), "--json", "refund " * 7200])
    assert json.loads(result.stdout)["predictions"][0]["label"] == "Billing"


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file has no examples"),
        (b'{"text": "a", "label": "Billing"}\n{"text": "b", "label": "Billing"}\n', "one label"),
        (
            b'{"text": "a", "label": "X"}\n{"text": "b", "label": "X"}\n'
            b'{"text": "c", "label": "Y"}\n',
            "too few for 'Y'",
        ),
        (b'{"text": "caf\xe9", "label": "Billing"}\n', "not valid UTF-8"),
    ],
)
def test_bad_training_files_give_one_line_and_exit_2(
    tmp_path: Path, content: bytes, message: str
) -> None:
    data = _write(tmp_path / "bad.jsonl", content)
    result = runner.invoke(
        app, ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--learner", "tfidf"]
    )
    assert message in _error_line(result)


def test_unknown_test_labels_are_named(tmp_path: Path, model_file: Path) -> None:
    test = _write(tmp_path / "t.jsonl", b'{"text": "hi", "label": "Sales"}\n')
    result = runner.invoke(app, ["evaluate", "--model", str(model_file), "--test", str(test)])
    assert "'Sales'" in _error_line(result)


def test_a_file_that_is_not_a_model(tmp_path: Path, test_file: Path) -> None:
    fake = _write(tmp_path / "fake.triage", b"\x89PNG not a model")
    result = runner.invoke(app, ["evaluate", "--model", str(fake), "--test", str(test_file)])
    assert "not a triage model file" in _error_line(result)


def test_a_missing_model_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["classify", "--model", str(tmp_path / "none"), "hello"])
    assert "no such model file" in _error_line(result)


def test_an_unknown_learner(train_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", "--data", str(train_file), "--out", str(tmp_path / "m"), "--learner", "x"]
    )
    assert "Unknown learner 'x'" in _error_line(result)


def test_a_fine_tune_reference_is_handed_to_the_llm_seam(test_file: Path) -> None:
    result = runner.invoke(
        app, ["evaluate", "--model", "ft:gpt-4o-mini:acme::abc", "--test", str(test_file)]
    )
    assert "OpenAI fine-tune" in _error_line(result)


def test_evaluate_needs_a_model_or_training_data(test_file: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--test", str(test_file)])
    assert "--model" in _error_line(result)


def test_an_empty_ticket_text(model_file: Path) -> None:
    result = runner.invoke(app, ["classify", "--model", str(model_file), "  "])
    assert "empty" in _error_line(result)


SHOP_TAXONOMY = """
[[department]]
name = "Shipping"
description = "Parcels, couriers, tracking numbers and late deliveries."
channel = "C1"
emoji = "truck"
examples = ["My parcel has not arrived after two weeks", "Where is my delivery?"]

[[department]]
name = "Returns"
description = "Sending goods back, return labels, exchanges and refunds for returned items."
channel = "C2"
emoji = "back"
examples = ["I want to send this jacket back", "Can I exchange the shoes for a bigger size?"]
"""


@pytest.fixture
def shop_taxonomy(tmp_path: Path) -> Path:
    path = tmp_path / "shop.toml"
    path.write_text(SHOP_TAXONOMY, encoding="utf-8")
    return path


def test_evaluate_from_the_taxonomy_alone(shop_taxonomy: Path, tmp_path: Path) -> None:
    test = tmp_path / "shop-test.jsonl"
    write_examples(
        test,
        [
            Example("the courier says my parcel was delivered but it was not", "Shipping"),
            Example("please send me a return label for the jacket", "Returns"),
        ],
    )
    result = runner.invoke(
        app,
        [
            *("evaluate", "--taxonomy", str(shop_taxonomy), "--test", str(test)),
            *("--learner", "tfidf", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # No --train: the model learnt from the taxonomy alone, and its labels are the taxonomy's.
    assert report["n_train"] == 0
    assert report["confusion"]["labels"] == ["Shipping", "Returns"]
    assert report["accuracy"] == 1.0


def test_evaluate_with_taxonomy_refuses_test_labels_outside_it(
    shop_taxonomy: Path, test_file: Path
) -> None:
    result = runner.invoke(
        app, ["evaluate", "--taxonomy", str(shop_taxonomy), "--test", str(test_file), "--json"]
    )
    line = _error_line(result)
    assert "'Account', 'Billing', 'Technical' are not departments of the taxonomy" in line
