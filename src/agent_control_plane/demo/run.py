"""The foundation demo: a host app and ACP on one SQLite file, and the host's
autogenerate never proposing anything for ACP's tables."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import func, inspect, select, table

from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.demo.agent import run_agent_demo
from agent_control_plane.demo.host_project import HostProject
from agent_control_plane.testing import acp_operations


@contextlib.contextmanager
def _captured_output() -> Iterator[io.StringIO]:
    """Capture what alembic prints (the host's logging is configured from its ini)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        yield buffer


@contextlib.contextmanager
def _guard(enabled: bool) -> Iterator[None]:
    previous = os.environ.get("ACP_ALEMBIC_GUARD")
    os.environ["ACP_ALEMBIC_GUARD"] = "1" if enabled else "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("ACP_ALEMBIC_GUARD", None)
        else:
            os.environ["ACP_ALEMBIC_GUARD"] = previous


def _describe(operation: object) -> str:
    name = type(operation).__name__.removesuffix("Op")
    target = getattr(operation, "table_name", None) or getattr(operation, "index_name", "")
    return f"{name} {target}"


def run_demo(console: Console | None = None, workdir: Path | None = None) -> None:
    """The whole demo: the governed agent, then ACP beside a host's alembic."""
    console = console or Console()
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="acp-demo-")))
        audit_ok = run_agent_demo(console, root)
        run_alembic_demo(console, root)
        if not audit_ok:
            raise SystemExit(1)


def run_alembic_demo(console: Console, root: Path) -> None:
    """A host app and ACP on one SQLite file; the host's autogenerate leaves ACP alone."""
    if True:
        database = root / "app.db"
        url = f"sqlite:///{database}"
        console.rule("[bold]agent-control-plane beside a host application's alembic")
        console.print(f"Host app and ACP share one SQLite file: [cyan]{database}[/]")

        with _captured_output():
            project = HostProject.create(root / "host", url, dialect="sqlite")
        with ControlPlane.open(url) as control_plane:
            revision = ", ".join(control_plane.schema_revision())
            layout = control_plane.layout
            names = sorted(t.name for t in control_plane.tables.all())
            with control_plane.engine.connect() as connection:
                counts = {
                    name: connection.execute(select(func.count()).select_from(table(name))).scalar()
                    for name in names
                }
        acp_tables = Table("ACP table", "rows", title=f"ACP tables ({layout.describe()})")
        for name in names:
            acp_tables.add_row(name, str(counts[name]))
        acp_tables.add_row(f"{layout.version_table} (ACP's own version table)", revision)
        console.print(acp_tables)

        host_ops = project_ops(project, guard=True)
        unguarded_ops = project_ops(project, guard=False)
        with _captured_output() as output, _guard(enabled=True):
            script_path = project.revision("create host tables")
            project.upgrade()
        guard_line = next(
            (line for line in output.getvalue().splitlines() if "guard kept" in line), ""
        )

        ops_table = Table("operation", title="The host's `alembic revision --autogenerate`")
        for operation in host_ops:
            ops_table.add_row(_describe(operation))
        console.print(ops_table)
        console.print(f"Host revision written: [cyan]{script_path.name}[/]")
        if guard_line:
            console.print(f"[dim]{guard_line.strip()}[/]")

        with (
            ControlPlane.open(url, migrate="verify") as control_plane,
            control_plane.engine.connect() as connection,
        ):
            host_version = connection.execute(
                select(func.count()).select_from(table("alembic_version"))
            ).scalar()
            present = set(inspect(connection).get_table_names())
        touched = acp_operations(host_ops)
        summary = Table(show_header=False, title="Result")
        summary.add_row("ACP revision", revision)
        summary.add_row("ACP operations in the host's autogenerate", str(len(touched)))
        summary.add_row(
            "...that the same autogenerate would propose without ACP's guard",
            str(len(acp_operations(unguarded_ops))),
        )
        summary.add_row(
            "Host tables after `alembic upgrade head`",
            ", ".join(sorted(present & {"customers", "agent_runs", "legacy_notes"})),
        )
        summary.add_row("Host version rows in alembic_version", str(host_version))
        summary.add_row("ACP tables still present", str(len(present & set(names))))
        console.print(summary)
        verdict = (
            "[bold green]The host's autogenerate touched none of ACP's tables.[/]"
            if not touched and set(names) <= present
            else "[bold red]ACP objects leaked into the host's autogenerate![/]"
        )
        console.print(Panel(verdict))
        if touched:
            raise SystemExit(1)


def project_ops(project: HostProject, *, guard: bool) -> list[object]:
    with _captured_output(), _guard(enabled=guard):
        return project.autogenerate_operations()
