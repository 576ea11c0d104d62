"""The installed distribution's name and version, read from its metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# The name on the package index: ``agent-control-plane`` there is another project's.
DISTRIBUTION = "agent-control-plane-sql"


def installed_version() -> str:
    """The version pip installed; ``0+unknown`` for a source tree that was never installed."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"


__version__ = installed_version()
