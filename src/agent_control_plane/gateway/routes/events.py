"""The global event feed: keyset pages and a Server-Sent-Events live stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from agent_control_plane.gateway.auth import Plane, Reader, tenant_filter
from agent_control_plane.gateway.bodies import EventView, PageOf
from agent_control_plane.gateway.limits import WaitSlots

router = APIRouter(prefix="/v1/events", tags=["events"])

Cursor = Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]*$")]
Kind = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z][a-z0-9_.:-]*$")]


@router.get("", response_model=PageOf[EventView])
def event_feed(
    plane: Plane,
    principal: Reader,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    kind: Kind = None,
) -> Any:
    """Every session's events in commit order (a tenant key: its tenant's); pass
    ``next_cursor`` back as ``cursor`` to continue."""
    return plane.event_feed(
        cursor=cursor or None, limit=limit, kind=kind, tenant=tenant_filter(principal, None)
    )


@dataclass(frozen=True, slots=True)
class StreamStart:
    position: str | None
    tenant: str | None


def stream_start(
    plane: Plane,
    principal: Reader,
    cursor: Cursor = None,
    last_event_id: Annotated[str | None, Header(max_length=20, pattern=r"^[0-9]*$")] = None,
) -> StreamStart:
    """Where the stream starts, checked before the response begins (an error after that
    could only cut the stream)."""
    tenant = tenant_filter(principal, None)
    position = last_event_id or cursor or None
    if position is None:
        return StreamStart(plane.event_feed_head(tenant=tenant), tenant)
    plane.event_feed(cursor=position, limit=1, tenant=tenant)  # refuses a bad cursor
    return StreamStart(position, tenant)


async def stream_slot(request: Request, principal: Reader) -> AsyncIterator[None]:
    """One of the key's long-wait slots, held until the stream ends (a 429 before the
    stream begins if the key holds them all): streams and approval waits share the cap."""
    slots: WaitSlots = request.app.state.wait_slots
    with slots.hold(principal.key_id):
        yield


@router.get("/stream", response_class=EventSourceResponse)
async def event_stream(
    request: Request,
    plane: Plane,
    start: Annotated[StreamStart, Depends(stream_start)],
    _slot: Annotated[None, Depends(stream_slot, scope="request")],
    kind: Kind = None,
    poll_interval: Annotated[float, Query(ge=0.05, le=60)] = 1.0,
    max_events: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """New events as they commit (``event: <kind>``, ``id:`` the feed cursor, ``data:``
    the event as JSON). Resumes after ``Last-Event-ID`` (or ``cursor``); without either it
    starts with the next event to commit. ``max_events`` ends the stream after that many."""
    position, sent = start.position, 0
    while max_events is None or sent < max_events:
        batch = 100 if max_events is None else min(100, max_events - sent)
        page = await run_in_threadpool(plane.event_feed, position, batch, kind, start.tenant)
        for event in page.items:
            view = EventView.model_validate(event)
            yield ServerSentEvent(data=view, event=event.kind, id=str(event.id))
            sent += 1
        position = page.next_cursor
        if not page.items:
            if await request.is_disconnected():
                return
            await anyio.sleep(poll_interval)
