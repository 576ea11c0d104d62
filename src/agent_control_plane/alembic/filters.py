"""Filters that keep every ACP object out of a host's ``alembic revision --autogenerate``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from agent_control_plane.alembic.layouts import configured_layouts
from agent_control_plane.schema.layout import Layout
from agent_control_plane.schema.ownership import Ownership
from agent_control_plane.schema.tables import TABLE_COMMENT

IncludeObject = Callable[[Any, str | None, str, bool, Any], bool]
IncludeName = Callable[[str | None, str, dict[str, Any]], bool]


def _is_acp(ownership: Ownership, obj: Any, name: str | None, type_: str) -> bool:
    if ownership.owns_object(obj, name, type_):
        return True
    # Reflected tables carry the comment ACP gives them (PostgreSQL, MySQL), which
    # recognises a layout nobody told this filter about.
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return getattr(table, "comment", None) == TABLE_COMMENT


def object_filter(ownership: Ownership, host: IncludeObject | None = None) -> IncludeObject:
    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if _is_acp(ownership, obj, name, type_):
            return False
        return True if host is None else bool(host(obj, name, type_, reflected, compare_to))

    return include_object


def name_filter(ownership: Ownership, host: IncludeName | None = None) -> IncludeName:
    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        if ownership.owns_name(name, type_, parent_names):
            return False
        return True if host is None else bool(host(name, type_, parent_names))

    return include_name


def include_acp_tables(
    include_object: IncludeObject | None = None,
    *,
    schema: str | None = None,
    table_prefix: str | None = None,
    layouts: Iterable[Layout] = (),
) -> IncludeObject:
    """Return an ``include_object`` that rejects every ACP object and asks ``include_object``
    about everything else.

    Rejected: ACP's tables, their columns, indexes and constraints, ACP's version
    table, and host-side stub tables mirroring ACP tables for foreign keys. Layouts:
    the defaults, ``schema``/``table_prefix``, ``layouts``, and ACP_SCHEMA /
    ACP_TABLE_PREFIX from the environment.
    """
    ownership = Ownership.of(configured_layouts(schema, table_prefix, layouts))
    return object_filter(ownership, include_object)


def include_acp_names(
    include_name: IncludeName | None = None,
    *,
    schema: str | None = None,
    table_prefix: str | None = None,
    layouts: Iterable[Layout] = (),
) -> IncludeName:
    """Return an ``include_name`` that skips ACP's schema and tables before reflection.

    Needed with ``include_schemas=True``. It cannot stop a CREATE for a stub table
    in the host's metadata; pair it with :func:`include_acp_tables`.
    """
    ownership = Ownership.of(configured_layouts(schema, table_prefix, layouts))
    return name_filter(ownership, include_name)


def acp_autogenerate_options(
    include_object: IncludeObject | None = None,
    include_name: IncludeName | None = None,
    *,
    schema: str | None = None,
    table_prefix: str | None = None,
    layouts: Iterable[Layout] = (),
) -> dict[str, Any]:
    """Both filters as keyword arguments for ``context.configure(**...)``."""
    return {
        "include_object": include_acp_tables(
            include_object, schema=schema, table_prefix=table_prefix, layouts=layouts
        ),
        "include_name": include_acp_names(
            include_name, schema=schema, table_prefix=table_prefix, layouts=layouts
        ),
    }
