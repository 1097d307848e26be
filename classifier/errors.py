"""The classifier package's exceptions, in one tree.

    ClassifierError                 anything this package raises on purpose
    ├── TaxonomyError               the departments file is missing, malformed or inconsistent
    ├── DatasetError                a dataset file or line cannot be read (names file and line)
    ├── ModelFormatError            bytes that are not a model this project wrote
    ├── LearnerUnavailableError     the learner's optional dependencies are not installed
    ├── TrainingError               training cannot start or failed (too little data, one label)
    └── LLMError                    the LLM endpoint failed or refused (says why and what to do)

Every message is one sentence a person can act on; callers show ``str(error)`` and log the rest.
"""

from __future__ import annotations


class ClassifierError(Exception):
    """Base class of every error this package raises on purpose."""


class TaxonomyError(ClassifierError):
    """The department list is missing, malformed or inconsistent."""


class DatasetError(ClassifierError):
    """A dataset cannot be read or used; the message names the file and line."""


class ModelFormatError(ClassifierError):
    """Bytes or a file that are not a model artefact written by this project."""


class LearnerUnavailableError(ClassifierError):
    """The learner needs optional packages that are not installed."""


class TrainingError(ClassifierError):
    """Training cannot start or did not finish."""


class LLMError(ClassifierError):
    """The LLM endpoint failed, refused, or answered something unusable."""
