"""What the bot posts: text rendered once, no mentions or disguised links from ticket text, every
Slack limit met on the final strings, and a card Slack refuses degraded instead of failing."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from admin.home import HomeSummary
from bot.admin_views import home_view, retrain_finished
from bot.failure_notice import TicketFailure, failure_notice
from bot.mrkdwn import SECTION_TEXT, fit, render, slack_length
from bot.views import CardContent, ticket_card
from classifier.taxonomy import Taxonomy
from data.db import tickets as tickets_repo
from data.db.jobs import Job
from tests.bot.conftest import SUPPORT, TRIAGE, BotHarness
from tests.fakes.slack_api import block_errors

BILLING, TECHNICAL = "C0BILLING", "C0TECHNICAL"

#: Any mention Slack would notify someone of: a group, a channel or a person.
MENTION = re.compile(r"<(?:!channel|!here|!everyone|!subteam\^[^>]*|@[UW][A-Z0-9]+)(?:\|[^>]*)?>")
#: A link whose label is shown instead of its target.
LABELLED_LINK = re.compile(r"<(?:https?|mailto):[^|>]*\|[^>]*>")


def slack_encoded(raw: str) -> str:
    """Text as Slack delivers a person's message: ``&``, ``<``, ``>`` as entities."""
    return raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


HTML_PAGE = slack_encoded(
    """Our checkout page is blank since this morning, here is the page source:
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Checkout &amp; Payment</title>
  <link rel="stylesheet" href="/static/css/app.min.css?v=3.2.1">
  <script src="/static/js/vendor.js" defer></script>
</head>
<body class="checkout">
"""
    + "".join(
        f'  <div class="row" id="line-{i}"><span class="sku">SKU-{i:04d}</span>'
        f'<span class="qty">&times; {i % 5 + 1}</span><a href="/cart?remove={i}&amp;ref=co">'
        f"remove</a></div>\n"
        for i in range(40)
    )
    + """  <form method="post" action="/checkout/submit?step=2&amp;lang=en">
    <input type="hidden" name="csrf" value="a8f3&lt;b&gt;">
    <button type="submit" disabled>Pay &gt;&gt;</button>
  </form>
</body>
</html>"""
)

STACK_TRACE = slack_encoded(
    """The export job crashes every night, log below:
Exception in thread "main" java.lang.IllegalStateException: Map<String, List<Invoice>> was empty
    at com.acme.billing.ExportJob.run(ExportJob.java:142)
    at com.acme.billing.ExportJob.lambda$schedule$0(ExportJob.java:88)
"""
    + "".join(
        f"    at com.acme.billing.pipeline.Stage{i}.apply(Stage{i}.java:{i * 7 + 11})\n"
        "    at java.base/java.util.stream.ReferencePipeline$3$1.accept"
        "(ReferencePipeline.java:197)\n"
        for i in range(25)
    )
    + """Caused by: java.sql.SQLException: value <null> for column "amount" & "currency" rejected
    at org.postgresql.jdbc.PgStatement.executeWithFlags(PgStatement.java:497)
    ... 51 more"""
)

SAML_ASSERTION = slack_encoded(
    """SSO login fails with "invalid signature", the IdP sends this:
<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion"
    ID="_8e8dc5f69a98cc4c1ff3427e5ce34606fd672f91e6" IssueInstant="2024-01-15T10:30:00Z"
    Version="2.0">
  <saml2:Issuer>https://idp.example.org/saml2/idp/metadata.php</saml2:Issuer>
  <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
    <ds:SignedInfo>
      <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
      <ds:Reference URI="#_8e8dc5f69a98cc4c1ff3427e5ce34606fd672f91e6">
        <ds:DigestValue>"""
    + "Xk3Lw9ZQ" * 40
    + """</ds:DigestValue>
      </ds:Reference>
    </ds:SignedInfo>
    <ds:SignatureValue>"""
    + "kVb7Rt0P+a/9" * 60
    + """</ds:SignatureValue>
  </ds:Signature>
  <saml2:Subject><saml2:NameID
    Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">jane@example.org
  </saml2:NameID></saml2:Subject>
  <saml2:Conditions NotBefore="2024-01-15T10:29:30Z" NotOnOrAfter="2024-01-15T10:35:00Z"/>
</saml2:Assertion>"""
)

# Written as Slack delivers it: mentions and links are markup, the rest entity-encoded.
LINKS_AND_MENTIONS = (
    "<!channel> <!here> <!everyone> <!subteam^S0SUPPORT|@support-team> urgent &amp; "
    "<@U0BOSS> <@U0CTO|cto> please look: "
    + " ".join(
        f"<https://evil.example/reset?u={i}|reset your password> "
        f"<https://status.example.com/incidents/{i}> "
        f"<mailto:help{i}@example.com|help{i}@example.com>"
        for i in range(30)
    )
    + " see <#C0GENERAL|general> and <javascript:alert(1)|click>"
)


def _all_texts(params: dict[str, Any]) -> list[str]:
    """Every string Slack would show from a recorded call: ``text`` and all block texts."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "text" and isinstance(item, str):
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk({k: v for k, v in params.items() if k in ("text", "blocks", "view")})
    return found


def _posted_texts(bot: BotHarness) -> list[str]:
    out: list[str] = []
    for call in bot.fake.calls:
        if call.method in ("chat.postMessage", "chat.update", "views.publish") and call.ok:
            out.extend(_all_texts(call.params))
    return out


# -- the one render function ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slack_text", "shown"),
    [
        ("Q3 &amp; refunds &lt;&gt;", "Q3 &amp; refunds &lt;&gt;"),  # already encoded: once
        ("Q3 & refunds <>", "Q3 &amp; refunds &lt;&gt;"),  # plain text: encoded once
        ("<!channel> now", "@\u2060channel now"),
        ("<!here|here>", "@\u2060here"),
        ("<!everyone>", "@\u2060everyone"),
        ("<!subteam^S012AB|@oncall>", "@\u2060oncall"),
        ("<!subteam^S012AB>", "@\u2060group"),
        ("ask <@U0BOSS>", "ask @\u2060U0BOSS"),
        ("ask <@U0BOSS|boss>", "ask @\u2060boss"),
        (
            "<https://evil.example|reset your password>",
            "reset your password (<https://evil.example>)",
        ),
        ("<https://bank.example|https://bank.example>", "<https://bank.example>"),
        ("<https://docs.example/a?b=1&amp;c=2>", "<https://docs.example/a?b=1&amp;c=2>"),
        ("<mailto:jane@example.com|jane@example.com>", "<mailto:jane@example.com>"),
        ("<#C0GENERAL|payments-official>", "<#C0GENERAL>"),
        ("<javascript:alert(1)|click>", "&lt;javascript:alert(1)|click&gt;"),
        ("<!date^1392734382^{date}|Feb 18, 2014>", "Feb 18, 2014"),
        ("a < b > c & d", "a &lt; b &gt; c &amp; d"),
    ],
)
def test_render_neutralises_mentions_and_links_and_encodes_once(
    slack_text: str, shown: str
) -> None:
    assert render(slack_text) == shown
    assert render(render(slack_text)) == render(slack_text)  # rendering again changes nothing


def test_fit_never_cuts_an_entity_or_a_link_and_counts_the_final_string() -> None:
    text = render("x" * 2_995 + " &amp; <https://example.com/a/long/path>")
    cut = fit(text, 3_000)
    assert slack_length(cut) <= 3_000
    assert cut.endswith("…")
    assert "&am…" not in cut
    assert "<https" not in cut
    emoji = fit("😀" * 2_000, 3_000)  # two UTF-16 units each
    assert slack_length(emoji) <= 3_000


# -- the fake Slack enforces the published limits ----------------------------------------------


def test_the_fake_slack_refuses_what_slack_refuses() -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3_001}}
    assert block_errors([section], 50) == [
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    button = {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "b" * 76}}
    actions = {"type": "actions", "elements": [button]}
    many = [{"type": "divider"}] * 51
    assert len(block_errors([header, actions], 50)) == 2
    assert block_errors(many, 50) == ["no more than 50 items allowed [json-pointer:/blocks]"]
    assert block_errors(many, 100) == []


# -- real pasted content -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "pasted",
    [HTML_PAGE, STACK_TRACE, SAML_ASSERTION, LINKS_AND_MENTIONS],
    ids=["html-page", "java-stack-trace", "saml-assertion", "links-and-mentions"],
)
async def test_pasted_content_gets_a_card_within_every_limit(bot: BotHarness, pasted: str) -> None:
    ts = await bot.ticket(pasted, user="U0ALICE")

    async with bot.svc.db.transaction() as conn:
        assert await tickets_repo.count_by_status(conn) == {"routed": 1}
    cards = [p for p in bot.fake.posts() if not p.get("thread_ts")]
    assert len(cards) == 1
    (card,) = cards
    assert block_errors(card["blocks"], 50) == []
    assert len(card["text"]) <= 4_000
    shown = card["blocks"][1]["text"]["text"]
    assert slack_length(shown) <= SECTION_TEXT
    # The text as Slack delivered it (encoded once, mentions and links neutralised), cut.
    assert render(pasted).startswith(shown.removesuffix("…"))
    if pasted is not LINKS_AND_MENTIONS:
        assert render(pasted) == pasted  # nothing encoded a second time
    assert bot.fake.reactions_on(SUPPORT, ts)
    for text in _posted_texts(bot):
        assert set(MENTION.findall(text)) <= {"<@U0ALICE>"}, text  # only the card's author
        labelled = LABELLED_LINK.findall(text)
        assert all("fake-workspace.slack.com" in link for link in labelled), labelled


async def test_a_ticket_cannot_mention_anyone_in_the_notification_text(bot: BotHarness) -> None:
    await bot.ticket("<!channel> <@U0BOSS> refund <https://evil.example|your invoice> please")
    for post in bot.fake.posts():
        assert not MENTION.search(post["text"].replace("<@U0ALICE>", "")), post["text"]
        assert "<https://evil.example|" not in post["text"]


# -- a card Slack refuses ----------------------------------------------------------------------


def _is_card(params: dict[str, Any]) -> bool:
    return params.get("channel") in (BILLING, TRIAGE) and not params.get("thread_ts")


async def test_a_refused_card_is_posted_shorter_instead_of_failing_the_ticket(
    bot: BotHarness,
) -> None:
    bot.fake.fail("chat.postMessage", error="invalid_blocks", when=_is_card)
    await bot.ticket("Refund please: " + "my invoice is wrong & late. " * 200)

    async with bot.svc.db.transaction() as conn:
        assert await tickets_repo.count_by_status(conn) == {"routed": 1}
    (card,) = bot.fake.posts(BILLING)
    shown = card["blocks"][1]["text"]["text"]
    assert "shortened" in shown  # says so
    assert "archives/" in shown  # and links to the ticket
    assert slack_length(shown) < 1_200
    assert bot.fake.posts(SUPPORT, threads=True)  # the reply went out too


async def test_a_card_refused_twice_is_only_a_link_to_the_ticket(bot: BotHarness) -> None:
    bot.fake.fail("chat.postMessage", error="msg_too_long", when=_is_card, times=2)
    await bot.ticket("My invoice is wrong, please refund it")

    async with bot.svc.db.transaction() as conn:
        assert await tickets_repo.count_by_status(conn) == {"routed": 1}
    (card,) = bot.fake.posts(BILLING)
    shown = card["blocks"][1]["text"]["text"]
    assert "could not be shown" in shown
    assert "archives/" in shown
    assert "invoice" not in shown


async def test_a_card_refused_at_every_level_fails_the_ticket_visibly(bot: BotHarness) -> None:
    bot.fake.fail("chat.postMessage", error="invalid_blocks", when=_is_card, times=None)
    await bot.ticket("My invoice is wrong, please refund it")
    async with bot.svc.db.transaction() as conn:
        assert await tickets_repo.count_by_status(conn) == {"failed": 1}
    posts = [c for c in bot.fake.calls if c.method == "chat.postMessage" and _is_card(c.params)]
    notices = [c for c in posts if "was not routed" in str(c.params.get("text"))]
    assert len(notices) == 1  # the failure notice in the triage channel (#10 item 7)
    refused = [c for c in posts if c not in notices]
    assert len(refused) == 3  # the full card, a shorter one, only a link


# -- the views alone ---------------------------------------------------------------------------


def test_every_card_level_is_within_limits_for_a_huge_taxonomy(taxonomy: Taxonomy) -> None:
    dept = taxonomy.departments[0]
    card = CardContent(
        ticket_id=7,
        text=HTML_PAGE * 20,
        author="U0ALICE",
        permalink="https://fake-workspace.slack.com/archives/C0SUPPORT/p1",
        department=dept,
        confidence=0.2,
        runner_ups=[("Billing", 0.1)],
        ask_for_department=True,
    )
    for level in range(3):
        text, blocks = ticket_card(card, taxonomy, level)
        assert block_errors(blocks, 50) == []
        assert len(text) <= 4_000


def test_app_home_and_retrain_messages_neutralise_text_from_jobs() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    job = Job(
        id=3,
        kind="retrain",
        status="failed",
        stage=None,
        params={},
        state={},
        result={"status": "failed", "message": "<!channel> see <https://evil.example|the fix>"},
        error=None,
        created_by="U0ADMIN",
        slack_channel=None,
        slack_ts=None,
        cancel_requested=False,
        owner=None,
        heartbeat_at=None,
        created_at=now,
        updated_at=now,
    )
    summary = HomeSummary(active=None, jobs=(job,) * 200, days=7, tickets=1, corrections=0)
    view = home_view(summary, is_admin=True)
    assert block_errors(view["blocks"], 100) == []
    blob = json.dumps(view)
    assert "<!channel>" not in blob
    assert "<https://evil.example|" not in blob
    finished = retrain_finished("failed", "<!here> <@U0BOSS> broke it")
    assert not MENTION.search(finished)


async def test_an_edited_card_slack_refuses_is_updated_shorter(bot: BotHarness) -> None:
    ts = await bot.ticket("the invoice is wrong")
    (card,) = bot.fake.live_messages(BILLING)
    bot.fake.fail("chat.update", error="invalid_blocks")
    new = "the invoice total is wrong: " + "&lt;td&gt;49.00 &amp;euro;&lt;/td&gt; " * 150
    edit = {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": SUPPORT,
        "ts": f"{ts}9",
        "message": {"type": "message", "user": "U0ALICE", "text": new, "ts": ts},
        "previous_message": {"type": "message", "user": "U0ALICE", "text": "x", "ts": ts},
    }
    await bot.send.event(edit)
    await bot.drain()
    async with bot.svc.db.transaction() as conn:
        assert await tickets_repo.count_by_status(conn) == {"routed": 1}
    (updated,) = bot.fake.live_messages(BILLING)
    assert updated["ts"] == card["ts"]
    shown = updated["blocks"][1]["text"]["text"]
    assert "shortened" in shown
    assert "invoice total" in shown


def test_a_failure_notice_renders_its_reason_like_any_outside_text() -> None:
    failure = TicketFailure(7, SUPPORT, "<!channel> said <https://evil.example|fix> " + "x" * 5000)
    text, blocks = failure_notice(failure)
    assert block_errors(blocks, 50) == []
    assert len(text) <= 4_000
    for shown in [text, *(t for b in blocks for t in _all_texts({"blocks": [b]}))]:
        assert not MENTION.search(shown)
        assert not LABELLED_LINK.search(shown)
    assert f"<#{SUPPORT}>" in text  # the bot's own channel reference stays a link
