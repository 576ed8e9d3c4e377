"""What can go wrong in a blind session: one error type, one warning."""

from __future__ import annotations


class BlindError(ValueError):
    """A blind session is missing, corrupt, or used inconsistently; the message says the fix."""


class TornLineWarning(UserWarning):
    """The judgments file has an incomplete line: a write was interrupted (crash or kill)."""
