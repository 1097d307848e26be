"""Structured logs: one JSON object per line, with the fields an operator filters on.

Code logs an event name as the message and its facts as ``extra``::

    log.info("ticket.routed", extra={"ticket_id": 7, "channel": "C1", "label": "Billing"})

Anything that looks like a Slack or OpenAI secret is masked on the way out, as a last line of
defence: secrets should never reach a log call in the first place.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_SECRET = re.compile(r"\b(xox[abposr]-[0-9A-Za-z-]+|xapp-[0-9A-Za-z-]+|sk-[A-Za-z0-9_-]{8,})")

#: LogRecord attributes that are not user-supplied ``extra`` fields.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def mask_secrets(text: str) -> str:
    """Replace token-shaped substrings with a marker."""
    return _SECRET.sub("[secret]", text)


class JsonLineFormatter(logging.Formatter):
    """Formats each record as one JSON line: time, level, logger, event, then extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": mask_secrets(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = mask_secrets(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


#: Third-party loggers kept at WARNING unless a lower level is asked for.
NOISY_LOGGERS = ("httpx", "httpcore", "openai", "aiohttp.access", "urllib3", "alembic")


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Send every log record to stderr, as JSON lines (services) or plain text (terminal)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter stays at WARNING unless asked for.
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
