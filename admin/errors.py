"""The admin package's exceptions.

AdminError              anything the admin jobs raise on purpose (message is user-facing)
├── NotAllowedError     the user may not run this command
├── JobConflictError    another job of the same kind is already running
└── JobCancelledError   the job was cancelled while it ran
"""

from __future__ import annotations


class AdminError(Exception):
    """Base class of the admin package's errors; ``str()`` is safe to show a person."""


class NotAllowedError(AdminError):
    """The user is not an admin."""


class JobConflictError(AdminError):
    """Another job of the same kind is running."""


class JobCancelledError(AdminError):
    """The job was cancelled."""
