"""The ``triage`` command line: ``build_app`` (in ``app``) registers every admin command."""

from __future__ import annotations

from admin.cli.app import build_app, main

__all__ = ["build_app", "main"]
