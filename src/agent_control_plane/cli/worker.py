"""``acp worker``: run the maintenance steps once, or every ``--interval`` seconds."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from agent_control_plane.cli.common import (
    PrefixOption,
    SchemaOption,
    UrlOption,
    console,
    errors,
    fail,
    opened,
)
from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.errors import ControlPlaneError, InvalidInputError
from agent_control_plane.models import MaintenanceReport
from agent_control_plane.rules.maintenance import DEFAULT_BATCH_SIZE, MaintenanceSettings

_LABELS = {
    "tickets_expired": "tickets expired",
    "tickets_escalated": "tickets escalated",
    "webhook_failures": "webhook failures (retried next run)",
    "holds_released": "token holds released",
    "sessions_paused": "silent sessions paused",
    "sessions_aborted": "silent sessions aborted",
    "idempotency_keys_pruned": "idempotency records pruned",
    "events_pruned": "events pruned",
    "sessions_pruned": "sessions pruned",
    "sessions_not_pruned": "sessions not pruned (audit chain broken)",
}


def _show(report: MaintenanceReport, as_json: bool) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if as_json:
        typer.echo(json.dumps({"ran_at": now, **report.to_json_data()}))
        return
    data = report.to_json_data()
    done = [f"{data[name]} {label}" for name, label in _LABELS.items() if data[name]]
    style = "green" if report.ok else "bold red"
    console.print(f"{now} [{style}]maintenance[/]: {', '.join(done) or 'nothing to do'}")


@contextmanager
def _stop_on_sigterm() -> Iterator[threading.Event]:
    """An event set by SIGTERM (a deploy stopping the worker): it finishes the current
    run and exits 0. Ctrl-C does the same."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(cp: ControlPlane, options: dict[str, Any], as_json: bool) -> MaintenanceReport:
    report = cp.run_maintenance(**options)
    _show(report, as_json)
    return report


def worker(
    interval: Annotated[
        float, typer.Option(help="Seconds between runs.", envvar="ACP_WORKER_INTERVAL")
    ] = 60.0,
    once: Annotated[
        bool, typer.Option("--once", help="Run once; exit 1 if a webhook or pruning failed.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per run.")] = False,
    escalate_after: Annotated[
        str | None,
        typer.Option(
            help="Escalate approvals pending this long (e.g. 30m).",
            envvar="ACP_WORKER_ESCALATE_AFTER",
        ),
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(help="POST each escalation here as JSON.", envvar="ACP_WORKER_WEBHOOK_URL"),
    ] = None,
    heartbeat_timeout: Annotated[
        str | None,
        typer.Option(
            help="Recover active sessions silent this long (e.g. 10m).",
            envvar="ACP_WORKER_HEARTBEAT_TIMEOUT",
        ),
    ] = None,
    on_stale: Annotated[
        str,
        typer.Option(help="pause or abort a silent session.", envvar="ACP_WORKER_ON_STALE"),
    ] = "pause",
    event_retention: Annotated[
        str | None,
        typer.Option(
            help="Prune ended sessions' events older than this (e.g. 90d).",
            envvar="ACP_WORKER_EVENT_RETENTION",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per transaction.")] = DEFAULT_BATCH_SIZE,
    url: UrlOption = None,
    schema: SchemaOption = None,
    table_prefix: PrefixOption = None,
) -> None:
    """Run ACP's housekeeping: expire tickets, escalate overdue approvals, release expired
    token holds, recover silent sessions, prune old records. Safe with many workers."""
    options: dict[str, Any] = {
        "escalate_after": escalate_after,
        "webhook_url": webhook_url,
        "heartbeat_timeout": heartbeat_timeout,
        "on_stale": on_stale,
        "event_retention": event_retention,
        "batch_size": batch_size,
    }
    try:
        MaintenanceSettings.of(**options)
    except InvalidInputError as exc:
        raise fail(str(exc)) from exc
    if not interval > 0:
        raise fail("--interval must be a positive number of seconds")
    with opened(url, schema, table_prefix) as cp:
        if once:
            if not _run(cp, options, as_json).ok:
                raise typer.Exit(1)
            return
        with _stop_on_sigterm() as stop:
            try:
                while not stop.is_set():
                    try:
                        _run(cp, options, as_json)
                    except (ControlPlaneError, SQLAlchemyError) as exc:
                        # The database may be briefly away: log, and try again next time.
                        errors.print(f"[bold red]maintenance failed:[/] {exc}", highlight=False)
                    stop.wait(interval)
            except KeyboardInterrupt:
                pass
