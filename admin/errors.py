"""The admin package's exceptions.

AdminError              anything the admin jobs raise on purpose (message is user-facing)
└── JobConflictError    another job of the same kind is already running
"""

from __future__ import annotations


class AdminError(Exception):
    """Base class of the admin package's errors; ``str()`` is safe to show a person."""


class JobConflictError(AdminError):
    """Another job of the same kind is running."""
