"""``acp events tail``: the audit trail in commit order, once or following new events."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer

from agent_control_plane.cli.common import (
    THE_DEFAULT_TARGET,
    Target,
    console,
    emit_json,
    fail,
    opened,
    targeted,
)
from agent_control_plane.control_plane import ControlPlane
from agent_control_plane.models import Event

events_app = typer.Typer(help="Read the audit trail.", no_args_is_help=True)


def _reader(
    cp: ControlPlane, session: str | None, kind: str | None, after: str | None, limit: int
) -> Callable[[], list[Event]]:
    """A function returning the next events each call: a keyset cursor over the global feed
    (event ids), or over one session's seqs."""
    if session is None:
        cursor = after

        def next_feed_page() -> list[Event]:
            nonlocal cursor
            page = cp.event_feed(cursor=cursor, limit=limit, kind=kind)
            cursor = page.next_cursor
            return page.items

        return next_feed_page
    try:
        after_seq = int(after or 0)
    except ValueError:
        raise fail(f"--after: with --session give a seq number, not {after!r}") from None

    def next_session_page() -> list[Event]:
        nonlocal after_seq
        items = cp.events(session, after_seq=after_seq, limit=limit)
        after_seq = items[-1].seq if items else after_seq
        return [event for event in items if kind is None or event.kind == kind]

    return next_session_page


def _show(event: Event, as_json: bool) -> None:
    if as_json:
        emit_json(event)
        return
    console.print(
        f"{event.created_at.isoformat(timespec='seconds')} {event.session_id} "
        f"#{event.seq} {event.kind} {event.action or ''} "
        f"{event.outcome or ''} {event.reason or ''}".rstrip(),
        highlight=False,
    )


@events_app.command("tail")
@targeted
def events_tail(
    session: Annotated[str | None, typer.Option(help="Only this session.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only events of this kind.")] = None,
    after: Annotated[
        str | None,
        typer.Option(help="Start after this event id (a feed cursor), or seq with --session."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until interrupted.")
    ] = False,
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, help="Stop after this many events.")
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle", min=0.0, help="With --follow: stop after this many quiet seconds."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Events per read.")] = 100,
    interval: Annotated[
        float, typer.Option(min=0.01, help="Seconds between reads with --follow.")
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Print events in commit order (every session's feed, or one session's trail). Without
    --follow, print what is there and stop; with it, poll for new events (Ctrl-C ends it,
    exit 0). JSON output is one object per line, each with the id to pass to --after."""
    if until_idle is not None and not follow:
        raise fail("--until-idle only makes sense with --follow")
    with opened(database) as cp:
        read = _reader(cp, session, kind, after, limit)
        printed, quiet_since = 0, time.monotonic()
        try:
            while True:
                items = read()
                for event in items:
                    _show(event, as_json)
                    printed += 1
                    if max_events is not None and printed >= max_events:
                        return
                if items:
                    quiet_since = time.monotonic()
                    continue
                if not follow:
                    return
                if until_idle is not None and time.monotonic() - quiet_since >= until_idle:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            return
