from __future__ import annotations

import pytest

from bot.admin_payloads import (
    EvalReportCommand,
    RetrainCommand,
    UsageError,
    parse_evalreport,
    parse_home_opened,
    parse_retrain,
)


def _body(text: str) -> dict[str, str]:
    return {"user_id": "U1", "channel_id": "C1", "text": text}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", RetrainCommand(user="U1", channel="C1")),
        ("  Cancel ", RetrainCommand(user="U1", channel="C1", action="cancel")),
        ("rollback", RetrainCommand(user="U1", channel="C1", action="rollback")),
        (
            "openai-finetune generate=50 dry-run",
            RetrainCommand(
                user="U1", channel="C1", learner="openai-finetune", generate=50, dry_run=True
            ),
        ),
    ],
)
def test_retrain_arguments(text: str, expected: RetrainCommand) -> None:
    assert parse_retrain(_body(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "generate=lots",
        "generate=-1",
        "generate=999999",
        "now please",
        "generate=²",  # str.isdigit() says yes, int() says no
        "generate=٣",  # Arabic-Indic three: int() would take it; not what people type here
        "generate=1²",
    ],
)
def test_bad_retrain_arguments_get_the_usage_line(text: str) -> None:
    with pytest.raises(UsageError, match="Usage: `/retrain"):
        parse_retrain(_body(text))


def test_evalreport_and_home_payloads() -> None:
    assert parse_evalreport(_body("#7")) == EvalReportCommand(user="U1", channel="C1", model=7)
    assert parse_evalreport(_body("")).model is None
    for text in ("latest", "²", "#²", "٣", "7²"):
        with pytest.raises(UsageError, match="/evalreport"):
            parse_evalreport(_body(text))
    assert parse_home_opened({"user": "U1", "tab": "messages"}) is None
    opened = parse_home_opened({"user": "U1", "tab": "home"})
    assert opened is not None
    assert opened.user == "U1"
