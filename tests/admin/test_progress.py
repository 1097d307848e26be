from __future__ import annotations

from admin.progress import ProgressBoard
from classifier.protocols import ProgressEvent


def test_board_shows_each_stage_once_with_its_latest_message() -> None:
    board = ProgressBoard("Retrain #4 (tfidf)")
    board.update(ProgressEvent("assemble", "reading", 0.0))
    board.update(ProgressEvent("assemble", "120 examples (Billing 60, Technical 60)", 1.0))
    board.update(ProgressEvent("generate", "skipped (generate=0)"))
    board.update(ProgressEvent("train", "fine-tuning job ftjob-1: running", 0.5))
    assert board.render() == (
        "*Retrain #4 (tfidf)*\n"
        "● Assemble data — 120 examples (Billing 60, Technical 60)\n"
        "– Generate examples — skipped (generate=0)\n"
        "◐ Train candidate 50% — fine-tuning job ftjob-1: running\n"
        "○ Evaluate on holdout\n"
        "○ Decide"
    )
    board.update(ProgressEvent("decide", "Promoted.", 1.0))
    board.finish("*Promoted* model #7.")
    lines = board.render().splitlines()
    assert lines[3] == "● Train candidate — fine-tuning job ftjob-1: running"
    assert lines[4] == "● Evaluate on holdout"
    assert lines[-1] == "*Promoted* model #7."
