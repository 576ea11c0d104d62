"""Helpers for host applications' own test suites."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from alembic.operations import ops

from agent_control_plane.alembic.layouts import configured_layouts
from agent_control_plane.schema.layout import Layout
from agent_control_plane.schema.ownership import Ownership


def _table_of(op: Any) -> tuple[str | None, str | None]:
    if isinstance(op, ops.ModifyTableOps | ops.CreateTableOp | ops.DropTableOp):
        return op.schema, op.table_name
    for name_attr in ("table_name", "source_table"):
        if hasattr(op, name_attr):
            return getattr(op, "schema", None), getattr(op, name_attr)
    return None, None


def _flatten(operations: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for operation in operations:
        flat.append(operation)
        if isinstance(operation, ops.OpContainer):
            flat.extend(_flatten(list(operation.ops)))
    return flat


def autogenerate_operations(alembic_config: Config) -> list[Any]:
    """Run the host's autogenerate (its own env.py) and return the operations, writing no file."""
    captured: list[Any] = []

    def capture(context: Any, revision: Any, directives: list[Any]) -> None:
        for script in directives:
            for upgrade_ops in script.upgrade_ops_list:
                captured.extend(_flatten(list(upgrade_ops.ops)))
        directives[:] = []

    command.revision(
        alembic_config,
        message="acp autogenerate probe",
        autogenerate=True,
        process_revision_directives=capture,
    )
    return captured


def acp_operations(operations: list[Any], layouts: set[Layout] | None = None) -> list[Any]:
    """The operations among ``operations`` that touch an ACP table, index or constraint."""
    ownership = Ownership.of(layouts or configured_layouts())
    found = []
    for operation in operations:
        if isinstance(operation, ops.OpContainer) and not isinstance(operation, ops.ModifyTableOps):
            continue
        schema, table_name = _table_of(operation)
        if ownership.owns_table(table_name, schema) or (
            ownership.owns_schema(schema) and table_name is not None
        ):
            found.append(operation)
    return found


def assert_no_acp_autogenerate_ops(
    alembic_config: Config, *, layouts: set[Layout] | None = None
) -> None:
    """Fail if the host's ``alembic revision --autogenerate`` would touch any ACP object.

    Runs the host's own env.py against its configured database; writes no file.
    """
    found = acp_operations(autogenerate_operations(alembic_config), layouts)
    if found:
        listing = "\n".join(f"  - {operation!r}" for operation in found)
        raise AssertionError(
            f"the host's autogenerate proposes {len(found)} operation(s) on "
            f"agent-control-plane objects:\n{listing}\nKeep ACP out with the installed guard, "
            "or include_acp_tables()/acp_autogenerate_options() in env.py."
        )
