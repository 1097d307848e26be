"""Selection by validation: chunks, splits, candidates and the choice (no encoder needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from scipy.sparse import csr_matrix

from classifier.errors import ModelFormatError
from classifier.learners.linear_head import fit_linear_weights, fit_temperature
from classifier.learners.selection import (
    CALIBRATION_CUTS,
    CALIBRATION_ROWS,
    CHUNK_WORDS,
    DEFAULT,
    FEW_SHOT_BELOW,
    FEW_SHOT_DEFAULT,
    FEW_SHOT_REPEATS,
    HEADS,
    LOGISTIC_BELOW,
    MAX_CHUNKS,
    MIXES,
    NEIGHBOURS,
    Candidate,
    CandidateScore,
    FeatureBlocks,
    LabelledRows,
    Validated,
    calibration_scores,
    chunked_twin,
    encode_chunked,
    expected_calibration_error,
    incumbent_for,
    last_stage_pick,
    mixes_for,
    nearest_by_label,
    one_standard_error_pick,
    paired_standard_error,
    preference,
    select,
    selection_optimism,
    stage_two,
    text_chunks,
    validate,
    validation_splits,
)


class CountingEncoder:
    """A fake encoder: a text's vector is one-hot on (word count mod 4), plus the calls."""

    dimension = 4

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, len(text.split()) % self.dimension] = 1.0
        return out


def test_text_chunks_cut_long_texts_into_word_runs_and_stop_at_the_cap() -> None:
    assert text_chunks("a short ticket") == ["a short ticket"]
    words = [f"w{i}" for i in range(CHUNK_WORDS * (MAX_CHUNKS + 2) + 7)]
    chunks = text_chunks(" ".join(words))
    assert len(chunks) == MAX_CHUNKS
    assert chunks[0].split() == words[:CHUNK_WORDS]
    assert chunks[1].split()[0] == words[CHUNK_WORDS]


def test_encode_chunked_is_the_normalised_mean_and_reuses_first_vectors() -> None:
    encoder = CountingEncoder()
    long_text = " ".join(["x"] * CHUNK_WORDS + ["y"] * 3)  # chunks of 80 and 3 words
    first = np.full((2, 4), 0.5, dtype=np.float32)
    out = encode_chunked(encoder.encode, ["two words", long_text], first=first)
    np.testing.assert_allclose(out[0], first[0])  # one chunk: its given vector, not re-encoded
    assert encoder.calls == [[" ".join(["x"] * CHUNK_WORDS), "y y y"]]
    mean = np.array([1.0, 0.0, 0.0, 1.0]) / np.sqrt(2)  # 80 % 4 = 0, 3 % 4 = 3
    np.testing.assert_allclose(out[1], mean, atol=1e-6)
    alone = encode_chunked(encoder.encode, ["two words", long_text])
    np.testing.assert_allclose(alone[0], [0, 0, 1, 0])
    np.testing.assert_allclose(alone[1], mean, atol=1e-6)


def test_validation_splits_follow_the_data_size() -> None:
    few = np.repeat(np.arange(3), 4)  # 4 a label: few-shot
    scheme, splits = validation_splits(few, seed=0)
    assert "one held-out example per label" in scheme
    assert len(splits) == FEW_SHOT_REPEATS
    for fit, held in splits:
        assert sorted(few[held].tolist()) == [0, 1, 2]
        assert not set(fit.tolist()) & set(held.tolist())
        assert len(fit) + len(held) == len(few)
    scheme, splits = validation_splits(np.repeat(np.arange(3), 10), seed=0)
    assert scheme == "stratified 5-fold"
    assert len(splits) == 5
    scheme, splits = validation_splits(np.repeat(np.arange(3), 500), seed=0)
    assert scheme == "stratified 3-fold"
    big = np.repeat(np.arange(4), 2500)
    scheme, splits = validation_splits(big, seed=0)
    assert scheme == "stratified 20% hold-out, candidates fitted on 4000"
    [(fit, held)] = splits
    assert len(held) == 2000
    assert np.bincount(big[held]).tolist() == [500] * 4
    assert np.bincount(big[fit]).tolist() == [1000] * 4
    assert not set(fit.tolist()) & set(held.tolist())


def _blocks(
    n_per_label: int, *, words_tell: bool, seed: int = 0
) -> tuple[FeatureBlocks, npt.NDArray[np.int64]]:
    """Three labels; either the TF-IDF block or the embedding block carries the label."""
    rng = np.random.default_rng(seed)
    targets = np.repeat(np.arange(3), n_per_label).astype(np.int64)
    n = len(targets)
    signal = np.eye(3)[targets] + rng.normal(0, 0.35, (n, 3))
    noise = rng.normal(0, 1, (n, 3))
    words = signal if words_tell else noise
    meaning = noise if words_tell else signal
    tfidf = np.hstack([np.abs(words), rng.random((n, 5))])
    tfidf /= np.linalg.norm(tfidf, axis=1, keepdims=True)
    embeddings = np.hstack([meaning, rng.normal(0, 1, (n, 5))]).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return FeatureBlocks(csr_matrix(tfidf), {"first": embeddings}), targets


def test_selection_finds_the_features_that_carry_the_label() -> None:
    blocks, targets = _blocks(30, words_tell=False)
    selection, best = select(blocks, targets, 3, seed=0)
    by_name = {s.candidate.name: s.accuracy for s in selection.scores}
    assert selection.chosen.uses_embeddings
    assert by_name["emb[first] svm C=0.5"] > by_name["tfidf svm C=0.5"] + 0.3
    tried = [s.candidate for s in selection.scores]
    assert tried[: len(MIXES)] == list(MIXES)
    assert len(tried) == len(MIXES) + len(HEADS) + len(NEIGHBOURS)
    assert [c.neighbours for c in tried[-len(NEIGHBOURS) :]] == list(NEIGHBOURS)
    assert all(0 <= s.accuracy <= 1 for s in selection.scores)
    assert best.score.candidate == selection.chosen
    assert selection.best is not None
    assert by_name[selection.best.name] == max(s.accuracy for s in selection.scores)
    assert selection.chosen == selection.within_se[0]
    assert len(best.held_targets) == len(targets) == selection.n_validated  # 5-fold: every row

    blocks, targets = _blocks(30, words_tell=True)
    selection, _ = select(blocks, targets, 3, seed=0)
    by_name = {s.candidate.name: s.accuracy for s in selection.scores}
    assert selection.chosen.tfidf
    assert by_name["tfidf svm C=0.5"] > by_name["emb[first] svm C=0.5"] + 0.3
    meta = selection.to_meta()
    assert meta["chosen"]["name"] == selection.chosen.name
    assert meta["scheme"] == "stratified 5-fold"
    assert [c["name"] for c in meta["candidates"]] == [s.candidate.name for s in selection.scores]


def test_long_texts_try_the_best_embedding_mix_on_chunk_means() -> None:
    blocks, targets = _blocks(30, words_tell=False)
    shuffled = np.random.default_rng(1).permutation(len(targets))
    chunks = blocks.views["first"][shuffled]  # a view that carries nothing
    long_blocks = FeatureBlocks(blocks.tfidf, {**blocks.views, "chunks": chunks})
    selection, _ = select(long_blocks, targets, 3, seed=0)
    tried = [s.candidate for s in selection.scores]
    assert len(tried) == len(MIXES) + 1 + len(HEADS) + len(NEIGHBOURS)
    twin = tried[len(MIXES)]
    assert twin.view == "chunks"
    assert twin == chunked_twin(max(selection.scores[: len(MIXES)], key=_accuracy).candidate)
    assert selection.chosen.view == "first"


def _accuracy(score: object) -> float:
    return float(score.accuracy)  # type: ignore[attr-defined]


def test_blocks_lay_out_coefficients_over_both_parts() -> None:
    blocks, _ = _blocks(4, words_tell=True)
    alone = Candidate(embedding_weight=1.0, tfidf=False)
    assert blocks.matrix(alone).shape == (12, 8)
    assert blocks.matrix(DEFAULT).shape == (12, 16)
    assert blocks.matrix(Candidate(embedding_weight=0.0)).shape == (12, 8)
    coef = np.arange(16, dtype=np.float32).reshape(2, 8)
    full = blocks.full_coef(alone, coef)
    assert full.shape == (2, 16)
    np.testing.assert_array_equal(full[:, :8], 0)
    np.testing.assert_array_equal(full[:, 8:], coef)
    full = blocks.full_coef(Candidate(embedding_weight=0.0), coef)
    np.testing.assert_array_equal(full[:, :8], coef)
    np.testing.assert_array_equal(full[:, 8:], 0)


def test_candidate_round_trips_and_refuses_nonsense() -> None:
    candidate = Candidate(embedding_weight=1.0, tfidf=False, view="chunks", head="logreg", c=10)
    assert Candidate.from_meta(candidate.to_meta()) == candidate
    assert candidate.name == "emb[chunks] logreg C=10"
    assert DEFAULT.name == "tfidf+3*emb[first] svm C=0.5"
    with pytest.raises(ModelFormatError):
        Candidate.from_meta({"embedding_weight": 1.0})
    with pytest.raises(ModelFormatError):
        Candidate(embedding_weight=0.0, tfidf=False)
    with pytest.raises(ModelFormatError):
        Candidate(embedding_weight=1.0, head="forest")
    with pytest.raises(ModelFormatError):
        Candidate(embedding_weight=1.0, neighbours=-1.0)


def test_candidate_with_nearest_examples_round_trips_and_old_ones_have_none() -> None:
    nearest = Candidate(embedding_weight=0.0, neighbours=2.0)
    assert nearest.name == "tfidf svm C=0.5 +2*nearest[first]"
    assert nearest.uses_embeddings
    assert not nearest.embedding_feature
    assert Candidate.from_meta(nearest.to_meta()) == nearest
    old = {k: v for k, v in DEFAULT.to_meta().items() if k != "neighbours"}
    assert Candidate.from_meta(old) == DEFAULT
    assert preference(DEFAULT) < preference(Candidate(3.0, neighbours=1.0))
    assert preference(Candidate(3.0, neighbours=1.0)) < preference(Candidate(3.0, neighbours=2.0))


def test_nearest_by_label_is_each_labels_best_cosine() -> None:
    memory = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], dtype=np.float32)
    targets = np.array([0, 1, 0, 1], dtype=np.int64)
    queries = np.array([[0.8, 0.6], [-1, 0]], dtype=np.float32)
    got = nearest_by_label(queries, memory, targets, 3)
    np.testing.assert_allclose(got, [[0.96, 0.6, 0.0], [-0.6, 1.0, 0.0]], atol=1e-6)
    assert nearest_by_label(queries, memory[:0], targets[:0], 3).shape == (2, 3)
    # One live ticket goes through the other product: the same figures.
    for row in range(2):
        one = nearest_by_label(queries[row : row + 1], memory, targets, 3)
        np.testing.assert_allclose(one, got[row : row + 1], atol=1e-6)


def test_rows_grouped_once_give_each_labels_best_cosine() -> None:
    rng = np.random.default_rng(0)
    memory = rng.standard_normal((60, 8)).astype(np.float32)
    memory /= np.linalg.norm(memory, axis=1, keepdims=True)
    targets = rng.integers(0, 4, size=60).astype(np.int64)  # label 4 has no rows
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    grouped = LabelledRows.group(memory, targets)
    order = np.argsort(targets, kind="stable")
    np.testing.assert_array_equal(grouped.rows, memory[order])
    assert grouped.present.tolist() == [0, 1, 2, 3]
    assert grouped.starts.tolist() == [int(np.argmax(targets[order] == t)) for t in range(4)]
    for rows in (queries, queries[:1]):  # a batch (BLAS) and one live ticket (einsum)
        got = grouped.nearest(rows, 5)
        np.testing.assert_array_equal(got, nearest_by_label(rows, memory, targets, 5))
        expected = [
            [
                max(float(q @ m) for m, t in zip(memory, targets, strict=True) if t == label)
                for label in range(4)
            ]
            + [0.0]
            for q in rows
        ]
        np.testing.assert_allclose(got, expected, atol=1e-6)
    empty = LabelledRows.group(memory[:0], targets[:0])
    np.testing.assert_array_equal(empty.nearest(queries, 5), np.zeros((5, 5)))


def test_logistic_head_gives_one_row_per_label_even_for_two() -> None:
    features = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.1]])
    targets = np.array([0, 0, 1, 1])
    coef, intercept = fit_linear_weights(features, targets, 2, kind="logreg", c=10.0)
    assert coef.shape == (2, 2)
    assert intercept.shape == (2,)
    scores = features @ coef.T + intercept
    assert scores.argmax(axis=1).tolist() == [0, 0, 1, 1]
    weights = np.array([1.0, 1.0, 1.0, 5.0])
    weighted, _ = fit_linear_weights(features, targets, 2, kind="svm", sample_weight=weights)
    assert weighted.shape == (2, 2)
    with pytest.raises(ValueError, match="unknown head kind"):
        fit_linear_weights(features, targets, 2, kind="forest")


def test_expected_calibration_error() -> None:
    # 0.8 confident, right 8 times in 10: calibrated. Always 0.9 confident, right half the time.
    assert expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == pytest.approx(0.0)
    assert expected_calibration_error([0.9] * 4, [True, False] * 2) == pytest.approx(0.4)
    assert expected_calibration_error([], []) == 0.0


def test_large_data_selects_on_a_sample_and_validates_the_winner_full_size() -> None:
    blocks, targets = _blocks(1500, words_tell=True)  # 4,500 examples: one hold-out
    selection, best = select(blocks, targets, 3, seed=0)
    assert selection.scheme == "stratified 20% hold-out, candidates fitted on 3600"
    assert selection.n_validated == 900
    assert best.held_scores.shape == (900, 3)
    assert best.score.candidate == selection.chosen
    assert selection.chosen.tfidf


def test_few_held_out_scores_are_pooled_with_more_cuts_for_the_temperature() -> None:
    blocks, targets = _blocks(10, words_tell=True)  # 30 examples: 30 held out a cut
    always = np.zeros(len(targets), dtype=np.bool_)
    _, splits = validation_splits(targets, 0, always)
    first = validate(blocks, DEFAULT, targets, 3, splits)
    scores, wanted, cuts = calibration_scores(blocks, first, targets, 3, always_fit=always)
    assert cuts == min(CALIBRATION_CUTS, -(-CALIBRATION_ROWS // 30)) > 1
    assert scores.shape == (30 * cuts, 3)
    assert np.array_equal(scores[:30], first.held_scores)  # selection's cut comes first
    # Every cut holds out each example once; the next cut is the next seed's splits.
    assert np.bincount(wanted).tolist() == [10 * cuts] * 3
    _, next_splits = validation_splits(targets, 1, always)
    assert next_splits[0][1].tolist() != splits[0][1].tolist()
    again = validate(blocks, DEFAULT, targets, 3, next_splits)
    assert np.allclose(scores[30:60], again.held_scores)
    # Repeated cuts of the same examples are no new evidence: smoothed as the examples once,
    # k copies of one cut's scores give that cut's temperature; smoothed as rows, k copies
    # would weaken the smoothing and make the model more confident.
    copies = np.vstack([first.held_scores] * cuts), np.concatenate([first.held_targets] * cuts)
    alone = fit_temperature(first.held_scores, first.held_targets)
    assert fit_temperature(*copies, pseudo=cuts) == pytest.approx(alone, rel=1e-3)
    assert fit_temperature(*copies) < alone
    # Enough held-out rows already: selection's scores alone.
    big, big_targets = _blocks(110, words_tell=True)
    _, big_splits = validation_splits(big_targets, 0)
    many = validate(big, DEFAULT, big_targets, 3, big_splits)
    scores, wanted, cuts = calibration_scores(big, many, big_targets, 3)
    assert cuts == 1
    assert np.array_equal(scores, many.held_scores)


def _validated(per_split: Sequence[float], name: float = 1.0) -> Validated:
    score = CandidateScore(Candidate(embedding_weight=name), float(np.mean(per_split)))
    empty = np.zeros((0, 2))
    return Validated(score, empty, np.zeros(0, dtype=np.int64), tuple(per_split))


def test_optimism_is_how_far_the_winner_falls_short_of_each_splits_best() -> None:
    winner = _validated([0.8, 0.6, 0.7], 1.0)
    other = _validated([0.6, 0.8, 0.7], 2.0)
    # Split 2's best is 0.8 where the winner had 0.6: the mean shortfall is (0 + 0.2 + 0) / 3.
    assert selection_optimism([winner, other], winner) == pytest.approx(0.2 / 3)
    # One candidate, or one split, has nothing to be optimistic about.
    assert selection_optimism([winner], winner) == 0.0
    single = _validated([0.9])
    assert selection_optimism([single, _validated([0.95], 2.0)], single) == 0.0


def test_taxonomy_rows_are_fitted_in_every_split_and_never_held_out() -> None:
    real = np.repeat(np.arange(3), 10)
    targets = np.concatenate([real, np.arange(3), np.arange(3)])  # six taxonomy rows at the end
    always = np.zeros(len(targets), dtype=np.bool_)
    always[30:] = True
    scheme, splits = validation_splits(targets, seed=0, always_fit=always)
    assert scheme.startswith("stratified 5-fold")
    assert "6 examples always fitted" in scheme
    assert len(splits) == 5
    held = np.concatenate([h for _, h in splits])
    assert sorted(held.tolist()) == list(range(30))  # each real row held out once, no other
    for fit, rows in splits:
        assert set(range(30, 36)) <= set(fit.tolist())
        assert not set(fit.tolist()) & set(rows.tolist())
    # Real rows of one label only: nothing to validate against, so every row is split.
    one_label = np.zeros(len(targets), dtype=np.bool_)
    one_label[10:] = True
    scheme, _ = validation_splits(targets, seed=0, always_fit=one_label)
    assert "always fitted" not in scheme


def test_held_out_rows_lose_the_ngrams_no_fit_row_has_and_stay_unit_length() -> None:
    # Two parts (columns 0-2 and 3-5), as the word and character n-grams are.
    rows = np.array(
        [
            [0.6, 0.8, 0.0, 1.0, 0.0, 0.0],  # fit row
            [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],  # fit row
            [0.6, 0.0, 0.8, 0.6, 0.0, 0.8],  # held out: columns 2 and 5 only it has
        ],
        dtype=np.float32,
    )
    blocks = FeatureBlocks(csr_matrix(rows), {}, part_starts=(0, 3))
    held = blocks.unseen_dropped((np.array([0, 1]), np.array([2]))).toarray()
    np.testing.assert_allclose(held, [[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]], atol=1e-6)
    # A held-out row with nothing seen stays empty rather than dividing by zero.
    alone = blocks.unseen_dropped((np.array([1]), np.array([2]))).toarray()
    np.testing.assert_allclose(alone, np.zeros((1, 6)))


def _rows_right(candidate: Candidate, right: Sequence[bool]) -> Validated:
    """A candidate's validation result that got exactly the rows marked True right."""
    wrong = np.logical_not(right)
    scores = np.column_stack([1.0 - wrong, wrong.astype(np.float64)])
    targets = np.zeros(len(right), dtype=np.int64)
    accuracy = float(np.mean(right))
    return Validated(CandidateScore(candidate, accuracy), scores, targets, (accuracy,))


def _pair(n: int, both: int, only_first: int, only_second: int) -> tuple[list[bool], list[bool]]:
    """Two right/wrong columns over ``n`` rows: both right on ``both``, one alone on the
    next rows, both wrong on the rest."""
    first = [True] * both + [True] * only_first + [False] * only_second
    second = [True] * both + [False] * only_first + [True] * only_second
    rest = n - len(first)
    return first + [False] * rest, second + [False] * rest


LOGREG_30 = Candidate(embedding_weight=3.0, head="logreg", c=30.0)


def test_a_lead_within_one_paired_standard_error_keeps_the_preferred_candidate() -> None:
    # BANKING77's case: on 2,000 held-out rows the best leads the default by 0.15 points (3
    # rows: 40 right only by it, 37 only by the default); one paired SE is about 0.44 points.
    best_right, default_right = _pair(2000, 1790, 40, 37)
    best = _rows_right(LOGREG_30, best_right)
    default = _rows_right(DEFAULT, default_right)
    assert best.score.accuracy - default.score.accuracy == pytest.approx(0.0015)
    error = paired_standard_error(best, default)
    assert error == pytest.approx(np.sqrt(77 / 2000 - 0.0015**2) / np.sqrt(2000), rel=1e-3)
    pick = one_standard_error_pick([best, default])
    assert pick.best is best  # the argmax...
    assert pick.chosen is default  # ...is not what the rule keeps
    assert [r.score.candidate for r in pick.within] == [DEFAULT, LOGREG_30]
    assert pick.gap_se == (0.0, pytest.approx(error))


def test_the_last_stage_cannot_reopen_the_head_choice() -> None:
    # Stage 2 kept the default over logistic regression (within one error); the default with
    # its nearest examples then beats the default clearly (7 more rows, none fewer) and leads
    # logistic regression by less than one error: the nearest examples win, not the logreg.
    n, both = 2000, 1790
    logreg = [i < both or both <= i < both + 40 for i in range(n)]
    default = [i < both or both + 40 <= i < both + 77 for i in range(n)]
    nearest = [d or both + 77 <= i < both + 84 for i, d in enumerate(default)]
    with_nearest = Candidate(embedding_weight=3.0, neighbours=1.0)
    earlier = [_rows_right(DEFAULT, default), _rows_right(LOGREG_30, logreg)]
    last = [_rows_right(with_nearest, nearest)]
    assert one_standard_error_pick([*earlier, *last]).chosen.score.candidate == LOGREG_30
    pick = last_stage_pick(earlier, DEFAULT, last)
    assert pick.chosen.score.candidate == with_nearest
    assert [r.score.candidate for r in pick.within] == [with_nearest]
    # Without a clear gain the head picked stays.
    level = [_rows_right(with_nearest, default)]
    assert last_stage_pick(earlier, DEFAULT, level).chosen.score.candidate == DEFAULT


def test_a_lead_beyond_one_paired_standard_error_wins() -> None:
    best_right, default_right = _pair(2000, 1790, 80, 7)  # 3.65 points, SE about 0.47
    best = _rows_right(LOGREG_30, best_right)
    default = _rows_right(DEFAULT, default_right)
    pick = one_standard_error_pick([default, best])
    assert pick.chosen is best
    assert [r.score.candidate for r in pick.within] == [LOGREG_30]


def test_the_paired_error_is_tighter_than_one_accuracys_error() -> None:
    # Right and wrong on the same rows but one: the gap is one row, and so is the noise.
    first, second = _pair(400, 300, 1, 0)
    a, b = _rows_right(LOGREG_30, first), _rows_right(DEFAULT, second)
    unpaired = np.sqrt(0.75 * 0.25 / 400)
    assert paired_standard_error(a, b) < unpaired / 4
    assert one_standard_error_pick([a, b]).chosen is b  # 1 row in 400 is within the noise
    same = _rows_right(DEFAULT, first)
    assert paired_standard_error(a, same) == 0.0


def test_the_order_of_preference_is_default_then_mix_then_view_then_regularisation() -> None:
    tfidf_alone = Candidate(embedding_weight=0.0)
    candidates = [
        Candidate(embedding_weight=1.0, tfidf=False, head="logreg", c=3.0),
        Candidate(embedding_weight=1.0, head="logreg", c=30.0),
        Candidate(embedding_weight=1.0, view="chunks", c=0.1),
        tfidf_alone,
        Candidate(embedding_weight=1.0, c=0.1),
        LOGREG_30,
        Candidate(embedding_weight=3.0, c=0.1),
        DEFAULT,
    ]
    ordered = sorted(candidates, key=preference)
    assert [c.name for c in ordered] == [
        "tfidf+3*emb[first] svm C=0.5",
        "tfidf+3*emb[first] svm C=0.1",
        "tfidf+3*emb[first] logreg C=30",
        "tfidf+1*emb[first] svm C=0.1",
        "tfidf+1*emb[first] logreg C=30",
        "tfidf+1*emb[chunks] svm C=0.1",
        "tfidf svm C=0.5",
        "emb[first] logreg C=3",
    ]


def test_selection_records_the_best_the_candidates_within_one_se_and_why() -> None:
    blocks, targets = _blocks(30, words_tell=False)
    selection, _ = select(blocks, targets, 3, seed=0)
    meta = selection.to_meta()
    assert meta["rule"] == "one paired standard error"
    assert selection.best is not None
    assert meta["best"] == selection.best.name
    assert meta["within_one_se"] == [c.name for c in selection.within_se]
    assert meta["within_one_se"][0] == meta["chosen"]["name"]
    assert isinstance(meta["why"], str)
    assert meta["why"]
    rows = meta["candidates"]
    assert isinstance(rows, list)
    best_row = next(r for r in rows if isinstance(r, dict) and r["name"] == meta["best"])
    assert best_row["gap_se"] == 0.0
    for row in rows:
        assert isinstance(row, dict)
        within = row["name"] in meta["within_one_se"]
        gap = float(best_row["accuracy"]) - float(row["accuracy"])
        if within or "nearest" in str(row["name"]):  # the last stage's comparison
            assert within == (gap <= float(row["gap_se"]) + 1e-4)


def test_the_incumbent_is_logistic_regression_from_five_to_nine_real_examples_a_label() -> None:
    def rows(per_label: int, taxonomy_rows: int = 0) -> tuple[npt.NDArray[np.int64], ...]:
        targets = np.repeat(np.arange(3), per_label + taxonomy_rows).astype(np.int64)
        always = np.tile([False] * per_label + [True] * taxonomy_rows, 3)
        return targets, always

    assert incumbent_for(*rows(FEW_SHOT_BELOW)) == FEW_SHOT_DEFAULT
    assert incumbent_for(*rows(LOGISTIC_BELOW - 1, taxonomy_rows=20)) == FEW_SHOT_DEFAULT
    assert incumbent_for(*rows(LOGISTIC_BELOW)) == DEFAULT
    assert incumbent_for(*rows(FEW_SHOT_BELOW - 1, taxonomy_rows=20)) == DEFAULT
    only_taxonomy, always = rows(0, taxonomy_rows=FEW_SHOT_BELOW)
    assert incumbent_for(only_taxonomy, always) == DEFAULT  # no real example: as before
    assert incumbent_for(np.repeat(np.arange(3), FEW_SHOT_BELOW)) == FEW_SHOT_DEFAULT
    # Taxonomy rows do not count: 5 real and 20 taxonomy rows a label is still few-shot.
    assert incumbent_for(*rows(FEW_SHOT_BELOW, taxonomy_rows=20)) == FEW_SHOT_DEFAULT


def test_the_few_shot_incumbent_leads_the_order_and_every_stage_keeps_its_head() -> None:
    assert preference(FEW_SHOT_DEFAULT, FEW_SHOT_DEFAULT) < preference(DEFAULT, FEW_SHOT_DEFAULT)
    assert preference(DEFAULT) < preference(FEW_SHOT_DEFAULT)
    assert [(m.embedding_weight, m.tfidf) for m in mixes_for(FEW_SHOT_DEFAULT)] == [
        (m.embedding_weight, m.tfidf) for m in MIXES
    ]
    assert {(m.head, m.c) for m in mixes_for(FEW_SHOT_DEFAULT)} == {("logreg", 3.0)}
    assert mixes_for(DEFAULT) == MIXES
    heads = {(c.head, c.c) for c in stage_two(FEW_SHOT_DEFAULT)}
    assert heads == {("svm", 0.5), ("svm", 0.1), ("logreg", 30.0)}
    assert [(c.head, c.c) for c in stage_two(DEFAULT)] == list(HEADS)


def test_selection_with_five_examples_a_label_tries_the_mixes_with_logistic_regression() -> None:
    blocks, targets = _blocks(FEW_SHOT_BELOW, words_tell=False)
    selection, _ = select(blocks, targets, 3, seed=0)
    tried = [s.candidate for s in selection.scores]
    assert tried[: len(MIXES)] == list(mixes_for(FEW_SHOT_DEFAULT))
    assert len(tried) == len(MIXES) + len(HEADS) + len(NEIGHBOURS)
    stage_2 = tried[len(MIXES) : len(MIXES) + len(HEADS)]
    assert ("svm", 0.5) in {(c.head, c.c) for c in stage_2}  # the SVM is still tried
    big_blocks, big_targets = _blocks(LOGISTIC_BELOW, words_tell=False)
    big, _ = select(big_blocks, big_targets, 3, seed=0)
    assert [s.candidate for s in big.scores][: len(MIXES)] == list(MIXES)
