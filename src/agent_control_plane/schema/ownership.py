"""Which database objects belong to ACP: one rule, used by ACP's own migrations
(to see only its objects) and by the host kit (to hide exactly those objects)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent_control_plane.schema.layout import VERSION_TABLE_SUFFIX, Layout
from agent_control_plane.schema.tables import LOGICAL_TABLES

OWNED_NAMES = (*LOGICAL_TABLES, VERSION_TABLE_SUFFIX)

# Reflection reports the connection's default schema as None; a layout in the
# shared "public" schema therefore matches both spellings.
_DEFAULT_SCHEMA_SPELLINGS = frozenset({None, "public"})


def _same_schema(layout_schema: str | None, schema: str | None) -> bool:
    if layout_schema in _DEFAULT_SCHEMA_SPELLINGS:
        return schema in _DEFAULT_SCHEMA_SPELLINGS
    return layout_schema == schema


@dataclass(frozen=True)
class Ownership:
    """Answers "is this ours?" for a set of layouts."""

    layouts: frozenset[Layout]

    @classmethod
    def of(cls, layouts: Iterable[Layout]) -> Ownership:
        return cls(frozenset(layouts))

    def owns_schema(self, schema: str | None) -> bool:
        return any(lay.owns_schema and lay.schema == schema for lay in self.layouts)

    def owns_table(self, name: str | None, schema: str | None) -> bool:
        if name is None:
            return False
        for lay in self.layouts:
            if not _same_schema(lay.schema, schema):
                continue
            if lay.owns_schema:
                return True
            if name.startswith(lay.table_prefix) and name[len(lay.table_prefix) :] in OWNED_NAMES:
                return True
        return False

    def owns_object(self, obj: Any, name: str | None, type_: str) -> bool:
        """True for an ACP table, or any column, index or constraint of one.

        A host table's foreign key *to* an ACP table belongs to the host table.
        """
        table = obj if type_ == "table" else getattr(obj, "table", None)
        if table is None:
            return False
        if isinstance(getattr(table, "info", None), dict) and "acp" in table.info:
            return True
        return self.owns_table(getattr(table, "name", None), getattr(table, "schema", None))

    def owns_name(self, name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        if type_ == "schema":
            return self.owns_schema(name)
        schema = parent_names.get("schema_name")
        if type_ == "table":
            return self.owns_table(name, schema)
        return self.owns_table(parent_names.get("table_name"), schema)
