from __future__ import annotations

import json
import logging

from admin.log_format import JsonLineFormatter, mask_secrets


def test_one_json_line_with_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "bot", "levelname": "INFO", "msg": "ticket.routed", "ticket_id": 7, "label": "X"}
    )
    line = JsonLineFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["event"], entry["ticket_id"], entry["label"]) == ("ticket.routed", 7, "X")


def test_tokens_are_masked() -> None:
    text = "auth failed for xoxb-1234-abcd and sk-proj-abcdefghijkl"
    assert mask_secrets(text) == "auth failed for [secret] and [secret]"
    record = logging.makeLogRecord({"msg": "token %s", "args": ("xapp-1-A1-2-ff",)})
    assert "xapp" not in JsonLineFormatter().format(record)
