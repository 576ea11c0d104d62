"""Reference pages generated from the code when the docs site is built (see docs/hooks.py).

A page holds the marker ``<!-- generated: NAME -->`` where the generated Markdown goes.
"""

from __future__ import annotations

from collections.abc import Callable


def _generators() -> dict[str, Callable[[], str]]:
    # Imported here: each generator imports the part of ACP it documents.
    from docs.generators import cli, database, policy, python_api, rest, settings

    return {
        "cli": cli.render,
        "database": database.render,
        "policy": policy.render,
        "python-methods": python_api.render,
        "rest": rest.render,
        "settings": settings.render,
    }


def render(name: str) -> str:
    """The Markdown for one ``<!-- generated: NAME -->`` marker; KeyError names unknown ones."""
    generators = _generators()
    if name not in generators:
        raise KeyError(f"no generator {name!r}: one of {', '.join(sorted(generators))}")
    return generators[name]()
