"""The ``triage`` admin commands end to end: real tfidf learner (in a child process), real
starter data, a SQLite file named by TRIAGE_DATABASE_URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from admin.cli import build_app

app = build_app()


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("TRIAGE_LEARNER", "tfidf")
    return CliRunner()


def test_retrain_report_and_models_from_the_terminal(runner: CliRunner, tmp_path: Path) -> None:
    first = runner.invoke(app, ["retrain", "--no-progress"])
    assert first.exit_code == 0, first.output
    assert "Training data: 392 examples" in first.output
    assert "promoted: Promoted: there is no active model yet." in first.output

    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert "active" in listed.output
    assert "tfidf" in listed.output

    png = tmp_path / "confusion.png"
    report = runner.invoke(app, ["report", "--no-progress", "--png", str(png)])
    assert report.exit_code == 0, report.output
    assert "*Model #1*" in report.output
    assert "on 126 held-out tickets" in report.output
    assert png.read_bytes().startswith(b"\x89PNG")

    # Same data, same seed: the same model again, which is "not worse", so it is promoted.
    second = runner.invoke(app, ["retrain", "--no-progress"])
    assert second.exit_code == 0, second.output
    assert "McNemar p = 1" in second.output

    back = runner.invoke(app, ["models", "rollback"])
    assert back.exit_code == 0, back.output
    assert "model #1" in back.output
    missing = runner.invoke(app, ["models", "activate", "42"])
    assert missing.exit_code == 2
    assert "no model #42" in missing.output

    assert runner.invoke(app, ["retrain", "--cancel"]).exit_code == 2
