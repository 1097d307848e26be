from __future__ import annotations

import pytest

from classifier.errors import ClassifierError
from classifier.learners import default_learner_name, get_learner
from classifier.learners.encoder import encoder_available
from classifier.learners.tfidf import TfidfLearner


def test_auto_picks_the_best_installed_local_learner() -> None:
    expected = "embedding" if encoder_available() else "tfidf"
    assert default_learner_name() == expected
    assert get_learner("auto").name == expected


def test_tfidf_is_always_available() -> None:
    learner = get_learner("tfidf")
    assert isinstance(learner, TfidfLearner)
    assert learner.available()


def test_unknown_learner_names_the_choices() -> None:
    with pytest.raises(ClassifierError, match="choose one of: auto, tfidf, embedding"):
        get_learner("bert")
