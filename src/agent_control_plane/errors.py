"""One exception hierarchy: every error says what happened and what to do."""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Base class for every error raised by agent-control-plane."""


class ConfigurationError(ControlPlaneError, ValueError):
    """A setting is invalid; nothing was created or written."""


class UnsupportedDatabaseError(ConfigurationError):
    """The URL names a database this library does not support."""


class SchemaNotCurrentError(ControlPlaneError):
    """The ACP tables are missing or older than this package expects.

    ``command`` holds the exact shell command that brings them up to date.
    """

    def __init__(
        self, message: str, *, current: tuple[str, ...], expected: tuple[str, ...], command: str
    ) -> None:
        super().__init__(message)
        self.current = current
        self.expected = expected
        self.command = command


class MigrationError(ControlPlaneError):
    """The ACP schema could not be brought to the requested revision."""
