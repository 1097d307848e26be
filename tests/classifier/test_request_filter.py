"""The "not a request" filter: Slack markup, decisions on the shipped start, the threshold,
and the shipped example files (#14 item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier.errors import DatasetError, TrainingError
from classifier.examples import normalise_text
from classifier.request_filter import (
    MIN_THRESHOLD,
    FilterExample,
    RequestFilter,
    choose_threshold,
    filter_from_bytes,
    filter_to_bytes,
    fit_key,
    fit_request_filter,
    merge_examples,
    slack_plain,
)
from data.request_examples import (
    REQUEST_FILTER_EVAL,
    REQUEST_FILTER_TRAIN,
    read_filter_examples,
    shipped_filter_examples,
)


@pytest.fixture(scope="module")
def shipped() -> RequestFilter:
    return fit_request_filter(shipped_filter_examples())


def test_slack_markup_becomes_placeholder_words() -> None:
    assert slack_plain("<@U123ABC> thanks :pray::skin-tone-2: 🙏") == (
        "zmention thanks zemoji zemoji zlen4"
    )
    assert slack_plain("see <https://acme.io/x|the docs> &amp; https://b.io") == (
        "see zlink & zlink zlen4"
    )
    assert slack_plain("<!subteam^S1|@support> error &lt;403&gt;") == ("zmention error <403> zlen3")


@pytest.mark.parametrize(
    "text",
    [
        "thanks!",
        "thank you so much :pray:",
        "ok",
        "+1",
        ":thumbsup:",
        "👍",
        "<https://docs.acme.io/sso>",
        "hi <@U02ABCD12>",
        "OOO until Monday, ping <@U01JANE99> for anything urgent",
    ],
)
def test_no_requests_are_skipped(shipped: RequestFilter, text: str) -> None:
    decision = shipped.decide(text)
    assert not decision.is_request, decision


@pytest.mark.parametrize(
    "text",
    [
        "refund?",
        "login broken",
        "can't pay",
        "cant pay my invoice",
        "hi, my invoice is wrong",
        "thanks, but it still doesn't work",
        "<@U05SUPPORT> the export fails with error 500",
        "+1, we also can't log in since this morning",
        "No puedo iniciar sesión desde ayer",
    ],
)
def test_short_real_requests_are_kept(shipped: RequestFilter, text: str) -> None:
    decision = shipped.decide(text)
    assert decision.is_request, decision


def test_an_empty_message_is_no_request(shipped: RequestFilter) -> None:
    assert shipped.decide("   ").is_request is False


def test_the_threshold_is_chosen_on_the_training_data_and_errs_towards_routing(
    shipped: RequestFilter,
) -> None:
    assert MIN_THRESHOLD <= shipped.threshold < 1.0
    # The score and the decision agree with the threshold.
    decision = shipped.decide("thanks!")
    assert decision.score >= decision.threshold == shipped.threshold


def test_choose_threshold_skips_at_most_the_allowed_share_of_requests() -> None:
    scores = [i / 100 for i in range(100)]  # 100 requests scoring 0.00 .. 0.99
    threshold = choose_threshold(scores, max_skipped=0.02)
    assert sum(s >= threshold for s in scores) == 2
    assert choose_threshold([0.1, 0.2], max_skipped=0.01) == MIN_THRESHOLD
    assert choose_threshold([0.99] * 10, max_skipped=0.0) > 0.99


def test_fitting_needs_both_kinds() -> None:
    only_requests = [FilterExample(f"refund order {n}", True) for n in range(20)]
    with pytest.raises(TrainingError, match="at least 5 requests and 5 non-requests"):
        fit_request_filter(only_requests)


def test_a_later_label_wins_when_merging() -> None:
    merged = merge_examples(
        [FilterExample("Thanks!", False), FilterExample("refund?", True)],
        [FilterExample("thanks!", True)],
    )
    assert merged == [FilterExample("refund?", True), FilterExample("thanks!", True)]


def test_a_file_with_an_unknown_label_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "filter.jsonl"
    path.write_text(json.dumps({"text": "thanks", "label": "Billing"}) + "\n")
    with pytest.raises(DatasetError, match=r"filter\.jsonl: example 1 is labelled 'Billing'"):
        read_filter_examples(path)
    path.write_text('{"text": "thanks", "label": "not_request"\n')
    with pytest.raises(DatasetError, match=r"filter\.jsonl:1: not valid JSON"):
        read_filter_examples(path)


def test_the_evaluation_set_is_large_enough_and_never_trained_on() -> None:
    evaluation = read_filter_examples(REQUEST_FILTER_EVAL)
    requests = sum(e.is_request for e in evaluation)
    assert requests >= 300
    assert len(evaluation) - requests >= 300
    trained = {normalise_text(e.text) for e in shipped_filter_examples()}
    trained |= {normalise_text(e.text) for e in read_filter_examples(REQUEST_FILTER_TRAIN)}
    assert [e.text for e in evaluation if normalise_text(e.text) in trained] == []


def test_a_saved_filter_scores_every_message_as_the_fitted_one(shipped: RequestFilter) -> None:
    loaded = filter_from_bytes(filter_to_bytes(shipped))
    texts = [e.text for e in read_filter_examples(REQUEST_FILTER_EVAL)][:200]
    texts += ["", "thanks! :pray:", "Ärger mit der Rechnung, bitte erstatten", "x" * 5000]
    assert [loaded.score(t) for t in texts] == [shipped.score(t) for t in texts]
    assert (loaded.threshold, loaded.examples) == (shipped.threshold, shipped.examples)


def test_bytes_that_are_no_saved_filter_are_refused() -> None:
    with pytest.raises(ValueError, match="not a saved request filter"):
        filter_from_bytes(b"PK\x03\x04 not really a zip")


def test_the_fit_key_changes_with_the_examples_and_the_seed() -> None:
    examples = shipped_filter_examples()
    with_word = [*examples, FilterExample("standup moved to 10:30", False)]
    keys = {fit_key(examples), fit_key(with_word), fit_key(examples, seed=1)}
    assert len(keys) == 3
    assert fit_key(list(examples)) == fit_key(examples)  # the same examples, the same name


def test_the_word_by_word_character_part_scores_as_the_vectorizer_cuts(
    shipped: RequestFilter,
) -> None:
    from classifier.request_filter import MAX_CHARS, _Part

    _word, char = shipped._parts
    texts = [e.text for e in read_filter_examples(REQUEST_FILTER_EVAL)][:300]
    texts += ["", "a", "thanks!  :pray:\n\tok", "ÄRGER mit der Rechnung", "x" * 5000, "İstanbul"]
    for text in texts:
        plain = slack_plain(text[:MAX_CHARS])
        assert char.margin(plain) == _Part.margin(char, plain)  # the same, to the last bit
