"""Text the bot posts, rendered exactly once, neutralised, and kept within Slack's limits.

``render`` is the one function every piece of text from outside the bot goes through before it
is put in a message, a card, a thread reply, a report or the App Home. It takes Slack's own
message text (where ``&``, ``<`` and ``>`` already arrive as ``&amp;``, ``&lt;``, ``&gt;`` and
``<...>`` is markup) as well as plain text (a job's message, a model's name), and gives mrkdwn:

- entities Slack already encoded stay as they are (no ``&amp;amp;``); a bare ``&``, ``<`` or
  ``>`` is encoded; so text is encoded once whichever way it came in;
- no text can make the bot mention anyone: ``<!channel>``, ``<!here>``, ``<!everyone>``,
  ``<!subteam^…>`` and ``<@U…>`` become plain ``@channel`` / ``@name`` (with a word joiner
  after the ``@``, so not even ``link_names`` could turn them back into mentions);
- no link shows a label other than its target: ``<https://evil.example|reset your password>``
  becomes ``reset your password (<https://evil.example>)``; only http(s) and mailto links stay
  links; a channel reference keeps its id and loses its label (Slack shows the real name).

``fit`` cuts rendered text to a limit without breaking an entity or a link, and ``fit_blocks``
applies every Block Kit limit the bot's blocks can meet to the final strings (see LIMITS).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

#: Slack's published limits (docs.slack.dev/reference/block-kit): characters of a section's
#: text (3,000), of a section field (2,000), a header (150), a button's label (75); items in a
#: context block (10), an actions block (25), a section's fields (10); blocks in a message
#: (50) and in a Home tab or modal (100). The top-level ``text`` of a message: Slack asks for
#: at most 4,000 characters (longer ones are split or, past 40,000, refused).
SECTION_TEXT = 3_000
SECTION_FIELD = 2_000
SECTION_FIELDS = 10
HEADER_TEXT = 150
BUTTON_TEXT = 75
CONTEXT_TEXT = 3_000
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
MESSAGE_TEXT = 4_000

Blocks = list[dict[str, Any]]

#: U+2060 WORD JOINER: invisible, and keeps ``@channel`` from being read as a mention.
_JOINER = "\u2060"
_SEQUENCE = re.compile(r"<([^<>]*)>")
_BARE_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt);)")
_BROADCASTS = frozenset({"channel", "here", "everyone"})
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
_LINK_SCHEMES = ("http://", "https://", "mailto:")
_ELLIPSIS = "…"


def _encode(text: str) -> str:
    """A stretch outside any ``<...>``: bare ``&``, ``<``, ``>`` encoded, entities kept."""
    return _BARE_AMPERSAND.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def _mention(name: str) -> str:
    return "@" + _JOINER + _encode(name.lstrip("@"))


def _same_place(label: str, url: str) -> bool:
    """Whether a link's label shows its own target (as Slack writes auto-linked text)."""
    bare = url
    for scheme in _LINK_SCHEMES:
        bare = bare.removeprefix(scheme)
    label = label.replace("&amp;", "&")
    return label in (url, bare, bare.rstrip("/"), url.rstrip("/"))


def _neutralise(inner: str) -> str:
    """One ``<...>`` sequence of Slack markup (without its brackets) as safe mrkdwn."""
    target, _, label = inner.partition("|")
    if target.startswith("!"):
        name = target[1:]
        if name in _BROADCASTS:
            return _mention(name)
        if name.startswith("subteam^"):
            return _mention(label or "group")
        return _encode(label or name)  # <!date^…|fallback> and others: their fallback text
    if target.startswith("@"):
        return _mention(label or target[1:])
    if target.startswith("#"):
        channel = target[1:]
        if _CHANNEL_ID.fullmatch(channel):
            return f"<#{channel}>"
        return _encode("#" + (label or channel))
    if target.startswith(_LINK_SCHEMES) and not any(c.isspace() for c in target):
        if not label or _same_place(label, target):
            return f"<{target}>"
        return f"{_encode(label)} (<{target}>)"
    return _encode(f"<{inner}>")  # not markup Slack would make a link of: shown as written


def render(text: str) -> str:
    """``text`` as mrkdwn the bot can post; see the module docstring."""
    out: list[str] = []
    position = 0
    for match in _SEQUENCE.finditer(text):
        out.append(_encode(text[position : match.start()]))
        out.append(_neutralise(match.group(1)))
        position = match.end()
    out.append(_encode(text[position:]))
    return "".join(out)


_BROADCAST_SEQUENCE = re.compile(r"<(!(?:channel|here|everyone|subteam\^)[^<>]*)>")


def without_broadcasts(text: str) -> str:
    """``text`` with any group mention (``<!channel>``, ``<!here>``, ``<!everyone>``,
    ``<!subteam^…>``) made plain: the last guard before anything reaches Slack, as the bot
    never means to notify a whole channel or group."""
    if "<!" not in text:
        return text
    return _BROADCAST_SEQUENCE.sub(lambda match: _neutralise(match.group(1)), text)


def blocks_without_broadcasts(value: Any) -> Any:
    """Blocks (or a view) with ``without_broadcasts`` applied to every ``"text"`` string."""
    if isinstance(value, dict):
        return {
            key: without_broadcasts(item)
            if key == "text" and isinstance(item, str)
            else blocks_without_broadcasts(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [blocks_without_broadcasts(item) for item in value]
    return value


def slack_length(text: str) -> int:
    """Length as Slack may count it: UTF-16 code units (an emoji counts two), never less than
    the number of characters, so a text within this length is within Slack's limit."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _prefix(text: str, budget: int) -> str:
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > budget:
            return text[:index]
    return text


def fit(text: str, limit: int) -> str:
    """Rendered ``text`` cut to at most ``limit`` (``slack_length``), marked with an ellipsis;
    never inside an entity (``&amp;``) or a ``<...>`` link."""
    if slack_length(text) <= limit:
        return text
    cut = _prefix(text, limit - len(_ELLIPSIS))
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):
        cut = cut[:opened]
    ampersand = cut.rfind("&")
    if ampersand > cut.rfind(";") and len(cut) - ampersand < 5:
        cut = cut[:ampersand]
    return cut.rstrip() + _ELLIPSIS


def _fit_text(obj: Any, limit: int) -> None:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        obj["text"] = fit(obj["text"], limit)


def fit_blocks(blocks: Blocks, *, max_blocks: int = MESSAGE_BLOCKS) -> Blocks:
    """``blocks`` with every limit the bot's blocks can meet applied to their final strings.

    Too many blocks: the last ones are dropped, the last kept one says so. Changes the dicts
    in place and returns the list.
    """
    if len(blocks) > max_blocks:
        more = {"type": "mrkdwn", "text": "(more was left out: too long for Slack)"}
        blocks = [*blocks[: max_blocks - 1], {"type": "context", "elements": [more]}]
    for block in blocks:
        kind = block.get("type")
        if kind == "section":
            _fit_text(block.get("text"), SECTION_TEXT)
            if isinstance(block.get("fields"), list):
                block["fields"] = block["fields"][:SECTION_FIELDS]
                for field in block["fields"]:
                    _fit_text(field, SECTION_FIELD)
            accessory = block.get("accessory")
            if isinstance(accessory, dict) and accessory.get("type") == "button":
                _fit_text(accessory.get("text"), BUTTON_TEXT)
        elif kind == "header":
            _fit_text(block.get("text"), HEADER_TEXT)
        elif kind == "context":
            block["elements"] = block.get("elements", [])[:CONTEXT_ELEMENTS]
            for element in block["elements"]:
                _fit_text(element, CONTEXT_TEXT)
        elif kind == "actions":
            block["elements"] = block.get("elements", [])[:ACTIONS_ELEMENTS]
            for element in block["elements"]:
                if element.get("type") == "button":
                    _fit_text(element.get("text"), BUTTON_TEXT)
    return blocks


def message_text(text: str) -> str:
    """A message's top-level ``text`` (notifications, fallback) within ``MESSAGE_TEXT``."""
    return fit(text, MESSAGE_TEXT)


def texts(value: Any) -> Iterator[str]:
    """Every string under a ``"text"`` key of blocks or a view (what Slack shows)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)
