"""The ``triage`` command line. Importing this package registers every admin command."""

from __future__ import annotations

from admin.cli import config as _config  # noqa: F401  (registers commands)
from admin.cli import corrections as _corrections  # noqa: F401
from admin.cli import history as _history  # noqa: F401  (registers commands)
from admin.cli import llm as _llm  # noqa: F401  (registers commands)
from admin.cli import local as _local  # noqa: F401  (registers commands)
from admin.cli import registry as _registry  # noqa: F401
from admin.cli import report as _report  # noqa: F401
from admin.cli import retrain as _retrain  # noqa: F401
from admin.cli import tickets as _tickets  # noqa: F401
from admin.cli.app import app, main

__all__ = ["app", "main"]
