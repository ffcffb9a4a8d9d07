"""Errors policyfit raises at its boundaries.

Every error a user can cause (a bad file, a bad flag) is a :class:`PolicyfitError`: it names the
thing at fault (``path``), the part of it (``field``) and what is wrong and what to do. The CLI
prints it as one line, ``error: <path>: <field>: <message>``, and exits with code 2.
"""

from __future__ import annotations


class PolicyfitError(Exception):
    """A user-facing error: ``path`` and ``field`` locate the problem, ``message`` explains it."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.field = field
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [p for p in (self.path, self.field) if p]
        return ": ".join([*parts, self.message])


class DatasetError(PolicyfitError):
    """A dataset file or array that cannot be used as it is."""


class ConfigError(PolicyfitError):
    """An unknown algorithm, an unknown config key or a value of the wrong type."""


class PolicyfitWarning(UserWarning):
    """Something the user should know about their data or run; the CLI always prints it."""


class LibraryWarning(UserWarning):
    """A message from a library underneath (e.g. MuJoCo's C warnings, routed here).

    The CLI shows library warnings only under ``--debug``: a user sees policyfit's output.
    """
