"""``acp worker``: run the maintenance steps once, or every ``--interval`` seconds."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from agent_control_plane.checkpoint_io import sink_for
from agent_control_plane.cli.common import (
    THE_DEFAULT_TARGET,
    Target,
    console,
    errors,
    fail,
    opened,
    targeted,
)
from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.errors import (
    CheckpointSinkError,
    ConfigurationError,
    ControlPlaneError,
    InvalidInputError,
)
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


def _show(report: MaintenanceReport, checkpoint: dict[str, Any] | None, as_json: bool) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    data = report.to_json_data()
    if as_json:
        extra = {} if checkpoint is None else {"checkpoint": checkpoint}
        typer.echo(json.dumps({"ran_at": now, **data, **extra}))
        return
    done = [f"{data[name]} {label}" for name, label in _LABELS.items() if data[name]]
    if checkpoint is not None and "error" not in checkpoint:
        done.append(f"audit checkpoint of {checkpoint['sessions']} sessions sent")
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


@dataclass(frozen=True)
class _Checkpoints:
    """Where each run's signed audit checkpoint goes (none without a sink)."""

    sink: str | None = None
    signing_key: Path | None = None

    def take(self, cp: ControlPlane) -> dict[str, Any] | None:
        """Take one and say how it went (with "error" when it could not be stored)."""
        if self.sink is None:
            return None
        try:
            taken = cp.audit_checkpoint(self.sink, signing_key=self.signing_key)
        except CheckpointSinkError as exc:
            # Logged, and taken again next run: the trail it covers is still there.
            errors.print(f"[bold red]audit checkpoint not stored:[/] {exc}", highlight=False)
            return {"sink": self.sink, "error": str(exc)}
        return {
            "sink": self.sink,
            "taken_at": taken.taken_at.isoformat(),
            "sessions": taken.sessions,
            "events": taken.events,
        }


def _run(
    cp: ControlPlane, options: dict[str, Any], checkpoints: _Checkpoints, as_json: bool
) -> bool:
    """One run; whether everything went well (webhooks, pruning, the checkpoint)."""
    report = cp.run_maintenance(**options)
    checkpoint = checkpoints.take(cp)
    _show(report, checkpoint, as_json)
    return report.ok and (checkpoint is None or "error" not in checkpoint)


@targeted
def worker(
    interval: Annotated[
        float, typer.Option(help="Seconds between runs.", envvar="ACP_WORKER_INTERVAL")
    ] = 60.0,
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="Run once; exit 1 if a webhook, pruning or the checkpoint failed."
        ),
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
    checkpoint_sink: Annotated[
        str | None,
        typer.Option(
            help="After each run, sign an audit checkpoint and append it to this JSON-lines "
            "file, write it into this directory, or POST it to this http(s) URL.",
            envvar="ACP_WORKER_CHECKPOINT_SINK",
        ),
    ] = None,
    checkpoint_signing_key: Annotated[
        Path | None,
        typer.Option(
            help="Sign checkpoints with this Ed25519 private key (PEM file) instead of the "
            "audit key (ACP_AUDIT_KEY).",
            envvar="ACP_CHECKPOINT_SIGNING_KEY",
        ),
    ] = None,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Run ACP's housekeeping: expire tickets, escalate overdue approvals, release expired
    token holds, recover silent sessions, prune old records, take signed audit checkpoints.
    Safe with many workers."""
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
        if checkpoint_sink is not None:
            sink_for(checkpoint_sink)
    except (InvalidInputError, ConfigurationError) as exc:
        raise fail(str(exc)) from exc
    if not interval > 0:
        raise fail("--interval must be a positive number of seconds")
    checkpoints = _Checkpoints(checkpoint_sink, checkpoint_signing_key)
    with opened(database) as cp:
        if once:
            if not _run(cp, options, checkpoints, as_json):
                raise typer.Exit(1)
            return
        with _stop_on_sigterm() as stop:
            try:
                while not stop.is_set():
                    try:
                        _run(cp, options, checkpoints, as_json)
                    except (ControlPlaneError, SQLAlchemyError) as exc:
                        # The database may be briefly away: log, and try again next time.
                        errors.print(f"[bold red]maintenance failed:[/] {exc}", highlight=False)
                    stop.wait(interval)
            except KeyboardInterrupt:
                pass
