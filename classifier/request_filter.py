"""Is a message a request? The learned "not a request" filter in front of the router.

Support channels carry more than tickets: "thanks!", "ok", "+1", ``:pray:``, a bare link, an
out-of-office line. The filter scores a message's chance of being *no* request with TF-IDF word
and character n-grams and a logistic regression, over the message's plain form
(``slack_plain``: mentions, links and emoji become placeholder words, entities decoded, a
length word added), so ``<@U123> thanks :pray:`` and ``thanks`` look alike to it.

Skipping a real request is worse than routing a "thanks", so the threshold is not 0.5: it is
chosen by cross-validation on the training examples themselves, as the lowest score above
which at most ``MAX_SKIPPED_REQUESTS`` of the training requests fall (never below 0.5). The
evaluation set and public datasets never take part in fitting or choosing it.

One message takes well under a millisecond (the vectorizers' fast path from
``classifier.learners.tfidf``, then one dot product); fitting on a few thousand examples with
the cross-validation takes about a second, so the bot refits it as agents give feedback.
"""

from __future__ import annotations

import hashlib
import html
import io
import math
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import StratifiedKFold

from classifier.errors import TrainingError
from classifier.examples import normalise_text

#: The labels of the filter's example files (``{"text": ..., "label": "request"}``).
REQUEST = "request"
NOT_REQUEST = "not_request"
LABELS = (REQUEST, NOT_REQUEST)

#: Most share of the training requests the threshold may skip in cross-validation: the intake
#: goal (at most 1 % of real requests skipped). The cross-validated tail is mostly one-word
#: requests ("laggy", "VPN?") whose only example is held out, so it errs on the safe side.
MAX_SKIPPED_REQUESTS = 0.01
#: The threshold is never below this: an even chance is no reason to skip a message.
MIN_THRESHOLD = 0.5
#: Folds of the cross-validation that chooses the threshold.
FOLDS = 5

#: Words are runs of letters/digits, single characters included ("2 charges", "a PIN").
_WORD_PATTERN = r"(?u)\b\w+\b"
#: Messages are cut here before scoring: their start tells a "thanks" from a request, and it
#: bounds the time for a 40,000-character message.
MAX_CHARS = 600

# Slack's markup: <@U123>, <!here>, <!subteam^S1|@team>, <#C123|name>, <https://x|label>.
_MENTION = re.compile(r"<[@!#][^>\s]*>")
_LINK = re.compile(r"<(?:https?|mailto|ftp):[^>]*>|\bhttps?://\S+|\bwww\.\S+")
_EMOJI_CODE = re.compile(r":[a-z0-9_+'\-]+:(?::skin-tone-\d:)?")
_PLACEHOLDERS = {"link": " zlink ", "mention": " zmention ", "emoji": " zemoji "}


def slack_plain(text: str) -> str:
    """The form the filter reads: Slack's links, mentions and emoji codes (and emoji
    characters) as placeholder words, ``&lt;``-style entities decoded, case folded, whitespace
    collapsed, and a last word saying how many words there are (short is telling)."""
    plain = _LINK.sub(_PLACEHOLDERS["link"], text)
    plain = _MENTION.sub(_PLACEHOLDERS["mention"], plain)
    plain = _EMOJI_CODE.sub(_PLACEHOLDERS["emoji"], plain)
    plain = html.unescape(plain)
    plain = "".join(
        _PLACEHOLDERS["emoji"] if unicodedata.category(char) in ("So", "Sk", "Cs") else char
        for char in plain
    )
    words = unicodedata.normalize("NFKC", plain).casefold().split()
    return " ".join([*words, f"zlen{min(len(words), 12)}"])


@dataclass(frozen=True)
class FilterExample:
    """A message and whether it is a request."""

    text: str
    is_request: bool


@dataclass(frozen=True)
class RequestDecision:
    """The filter's answer for one message."""

    is_request: bool
    #: The model's chance that the message is no request (0..1).
    score: float
    #: Messages scoring at or above this are skipped.
    threshold: float


def merge_examples(*groups: Iterable[FilterExample]) -> list[FilterExample]:
    """One list, one example per text (normalised): a later group's label wins, so feedback
    given after the shipped examples overrides them."""
    merged: dict[str, FilterExample] = {}
    for group in groups:
        for example in group:
            key = normalise_text(example.text)
            if key:
                merged.pop(key, None)  # re-inserted last: the order follows the latest label
                merged[key] = example
    return list(merged.values())


class _Part:
    """One fitted vectorizer folded into the model's weights, to score one message in pure
    Python: ``TfidfVectorizer.transform`` costs about 0.5 ms a call in checks and sparse
    matrices; this costs a few microseconds past the analyser.

    Gives what ``transform`` gives (``sublinear_tf``, L2 norm per part) dotted with the weights:
    sum((1 + ln n) * idf * w) / sqrt(sum(((1 + ln n) * idf)^2)) over the message's known terms.
    """

    def __init__(
        self, analyze: Callable[[str], list[str]], terms: dict[str, tuple[float, float]]
    ) -> None:
        self.analyze = analyze
        #: term -> (idf, idf * weight)
        self.terms = terms

    @classmethod
    def fitted(cls, vectorizer: TfidfVectorizer, weights: npt.NDArray[np.float64]) -> _Part:
        idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        terms = {
            term: (float(idf[column]), float(idf[column] * weights[column]))
            for term, column in vectorizer.vocabulary_.items()
        }
        return cls(vectorizer.build_analyzer(), terms)

    def margin(self, text: str) -> float:
        terms = self.terms
        dot = square = 0.0
        for term, count in Counter(self.analyze(text)).items():
            known = terms.get(term)
            if known is None:
                continue
            tf = 1.0 + math.log(count)
            dot += tf * known[1]
            square += (tf * known[0]) ** 2
        return dot / math.sqrt(square) if square else 0.0

    def arrays(self, name: str) -> dict[str, npt.NDArray[np.generic]]:
        """The part as plain arrays (see ``filter_to_bytes``)."""
        terms = list(self.terms)
        values = np.array([self.terms[t] for t in terms], dtype=np.float64).reshape(-1, 2)
        return {f"{name}_terms": np.array(terms, dtype=np.str_), f"{name}_values": values}

    @classmethod
    def from_arrays(
        cls, analyze: Callable[[str], list[str]], terms: npt.NDArray[Any], values: Any
    ) -> _Part:
        pairs = [(float(idf), float(weighted)) for idf, weighted in values.tolist()]
        return cls(analyze, dict(zip(terms.tolist(), pairs, strict=True)))


class _CharPart(_Part):
    """The character n-gram part, scored word by word: a word's known n-grams (inside its
    boundaries, as ``char_wb`` cuts them) are worked out once and kept, so a message costs a
    few dictionary look-ups per word instead of cutting and looking up every n-gram again.
    The same margin as ``_Part.margin``, to the last bit (a test checks it)."""

    #: Words whose n-grams are kept (the cache is emptied when it fills).
    MAX_WORDS = 50_000

    def __init__(
        self,
        analyze: Callable[[str], list[str]],
        terms: dict[str, tuple[float, float]],
        ngram_range: tuple[int, int],
    ) -> None:
        super().__init__(analyze, terms)
        self._low, self._high = ngram_range
        self._words: dict[str, tuple[str, ...]] = {}

    def _grams(self, word: str) -> tuple[str, ...]:
        known = self._words.get(word)
        if known is None:
            # scikit-learn's _char_wb_ngrams for one word, keeping the known n-grams only.
            padded = f" {word} "
            grams = []
            for n in range(self._low, self._high + 1):
                offset = 0
                grams.append(padded[offset : offset + n])
                while offset + n < len(padded):
                    offset += 1
                    grams.append(padded[offset : offset + n])
                if offset == 0:  # a word shorter than n counts once
                    break
            known = tuple(gram for gram in grams if gram in self.terms)
            if len(self._words) >= self.MAX_WORDS:
                self._words.clear()
            self._words[word] = known
        return known

    def margin(self, text: str) -> float:
        counts: dict[str, int] = {}
        for word in text.lower().split():  # the vectorizer's preprocessing: lower case
            for gram in self._grams(word):
                counts[gram] = counts.get(gram, 0) + 1
        terms = self.terms
        dot = square = 0.0
        for term, count in counts.items():
            idf, weighted = terms[term]
            tf = 1.0 + math.log(count)
            dot += tf * weighted
            square += (tf * idf) ** 2
        return dot / math.sqrt(square) if square else 0.0


def _char_part(vectorizer: TfidfVectorizer, part: _Part) -> _CharPart:
    """``part`` (of the ``char_wb`` vectorizer) scored word by word."""
    return _CharPart(part.analyze, part.terms, vectorizer.ngram_range)


class _Features:
    """Word 1-2-grams and character 1-4-grams (inside word boundaries, for typos), each TF-IDF
    weighted and scaled to unit length, side by side."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.word, self.char = self.vectorizers()
        self.word.fit(texts)
        self.char.fit(texts)

    @staticmethod
    def vectorizers() -> tuple[TfidfVectorizer, TfidfVectorizer]:
        """The two vectorizers, not fitted (their analysers need no fitting)."""
        word = TfidfVectorizer(
            analyzer="word", token_pattern=_WORD_PATTERN, ngram_range=(1, 2), sublinear_tf=True
        )
        char = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, min_df=2)
        return word, char

    def transform(self, texts: Sequence[str]) -> csr_matrix:
        return hstack([self.word.transform(texts), self.char.transform(texts)]).tocsr()


class RequestFilter:
    """A fitted filter: ``decide(text)`` says whether to route the message."""

    def __init__(
        self, parts: tuple[_Part, _CharPart], bias: float, threshold: float, *, examples: int
    ) -> None:
        self._parts = parts
        self._bias = bias
        #: Messages scoring at or above this are not requests.
        self.threshold = threshold
        #: How many examples it was fitted on.
        self.examples = examples

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """What ``filter_to_bytes`` saves: each part's terms and weights, and the numbers."""
        word, char = self._parts
        meta = [FORMAT_VERSION, self._bias, self.threshold, self.examples]
        return {
            **word.arrays("word"),
            **char.arrays("char"),
            "meta": np.array(meta, dtype=np.float64),
        }

    def score(self, text: str) -> float:
        """The chance that ``text`` is no request."""
        plain = slack_plain(text[:MAX_CHARS])
        margin = self._bias + sum(part.margin(plain) for part in self._parts)
        return 1.0 / (1.0 + math.exp(-max(-500.0, min(500.0, margin))))

    def decide(self, text: str) -> RequestDecision:
        """Route it or not; a message with no visible text at all is no request."""
        if not text.strip():
            return RequestDecision(False, 1.0, self.threshold)
        score = self.score(text)
        return RequestDecision(score < self.threshold, score, self.threshold)


def _fit_model(
    texts: Sequence[str], not_request: npt.NDArray[np.bool_], seed: int
) -> tuple[_Features, npt.NDArray[np.float64], float]:
    features = _Features(texts)
    # Averaged SGD on the logistic loss: the model of a logistic regression, fitted in a
    # tenth of liblinear's time on these many sparse character features.
    model = SGDClassifier(
        loss="log_loss",
        alpha=1e-5,
        class_weight="balanced",
        average=True,
        max_iter=30,
        tol=None,
        random_state=seed,
    )
    model.fit(features.transform(texts), not_request)
    weights = np.asarray(model.coef_[0], dtype=np.float64)
    return features, weights, float(model.intercept_[0])


def _scores(
    features: _Features, weights: npt.NDArray[np.float64], bias: float, texts: Sequence[str]
) -> npt.NDArray[np.float64]:
    margins = np.asarray(features.transform(texts) @ weights, dtype=np.float64) + bias
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(margins, -500.0, 500.0))), dtype=np.float64)


def choose_threshold(
    request_scores: Sequence[float], max_skipped: float = MAX_SKIPPED_REQUESTS
) -> float:
    """The lowest threshold that skips at most ``max_skipped`` of these requests' scores (and
    at least ``MIN_THRESHOLD``); a message must score at or above it to be skipped."""
    ranked = sorted(request_scores, reverse=True)
    allowed = math.floor(max_skipped * len(ranked))
    if allowed >= len(ranked):
        return MIN_THRESHOLD
    # Just above the highest score that must stay routed.
    return max(MIN_THRESHOLD, float(np.nextafter(ranked[allowed], 2.0)))


def fit_request_filter(
    examples: Sequence[FilterExample],
    *,
    seed: int = 0,
    max_skipped: float = MAX_SKIPPED_REQUESTS,
    folds: int = FOLDS,
) -> RequestFilter:
    """Fit the filter and choose its threshold by cross-validation on ``examples``.

    Raises TrainingError without examples of both kinds (at least ``folds`` of each).
    """
    texts = [slack_plain(e.text[:MAX_CHARS]) for e in examples]
    not_request = np.array([not e.is_request for e in examples], dtype=bool)
    kinds = int(not_request.sum()), int((~not_request).sum())
    if min(kinds) < folds:
        raise TrainingError(
            f"The request filter needs at least {folds} requests and {folds} non-requests "
            f"to learn from; it has {kinds[1]} and {kinds[0]}."
        )
    held_out = np.zeros(len(texts), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(texts, not_request):
        part = _fit_model([texts[i] for i in train], not_request[train], seed)
        held_out[test] = _scores(*part, [texts[i] for i in test])
    threshold = choose_threshold(held_out[~not_request].tolist(), max_skipped)
    features, weights, bias = _fit_model(texts, not_request, seed)
    split = len(features.word.vocabulary_)
    parts = (
        _Part.fitted(features.word, weights[:split]),
        _char_part(features.char, _Part.fitted(features.char, weights[split:])),
    )
    return RequestFilter(parts, bias, threshold, examples=len(texts))


#: Changes when the saved form or the fitting changes: a saved filter of another version is
#: not used (``fit_key``).
FORMAT_VERSION = 1


def fit_key(examples: Sequence[FilterExample], *, seed: int = 0) -> str:
    """A name for the filter these examples fit: the same examples (in order), seed, fitting
    settings and scikit-learn version give the same filter, so a saved one can stand in."""
    import sklearn

    digest = hashlib.sha256(
        f"{FORMAT_VERSION}|{seed}|{FOLDS}|{MAX_SKIPPED_REQUESTS}|{MAX_CHARS}|"
        f"{sklearn.__version__}\n".encode()
    )
    for example in examples:
        digest.update(f"{int(example.is_request)}{example.text}\x00".encode())
    return digest.hexdigest()


def filter_to_bytes(request_filter: RequestFilter) -> bytes:
    """The fitted filter as an ``.npz`` of plain arrays (no pickle: loading runs no code)."""
    buffer = io.BytesIO()
    np.savez(buffer, **request_filter.arrays())  # type: ignore[arg-type]
    return buffer.getvalue()


def filter_from_bytes(data: bytes) -> RequestFilter:
    """A filter saved by ``filter_to_bytes``; ValueError when it is not one (of this version)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            meta = saved["meta"]
            if int(meta[0]) != FORMAT_VERSION:
                raise ValueError(f"a saved request filter of version {int(meta[0])}")
            word, char = _Features.vectorizers()
            parts = (
                _Part.from_arrays(word.build_analyzer(), saved["word_terms"], saved["word_values"]),
                _char_part(
                    char,
                    _Part.from_arrays(
                        char.build_analyzer(), saved["char_terms"], saved["char_values"]
                    ),
                ),
            )
            return RequestFilter(parts, float(meta[1]), float(meta[2]), examples=int(meta[3]))
    except (OSError, KeyError, IndexError, zipfile.BadZipFile) as exc:
        raise ValueError(f"not a saved request filter: {exc}") from exc
