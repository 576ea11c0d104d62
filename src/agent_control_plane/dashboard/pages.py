"""The pages an operator reads: approvals, sessions, one session, live events, tokens, audit."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from agent_control_plane.dashboard import auth, views
from agent_control_plane.dashboard.auth import Plane, Viewer
from agent_control_plane.gateway.auth import visible_session
from agent_control_plane.gateway.routes import kill as gateway_kill
from agent_control_plane.models import AuditReport, Event, Principal, Session, TokenBudgetStatus
from agent_control_plane.rules.keys import Permission

router = APIRouter()

PAGE_SIZE = 100
RECENT_EVENTS = 50
# How far back the live page looks for its first rows (event ids are global across tenants).
RECENT_WINDOW = 1000
MAX_DAYS = 366
# A tenant key verifies its own sessions one by one; this many at most per page view.
MAX_TENANT_AUDIT = 1000


def render(
    request: Request,
    template: str,
    principal: Principal | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page with the layout's context: who is signed in, what they may do, the CSRF token
    and the messages left for this page."""
    messages = request.session.pop(auth.FLASH, [])
    values = {
        "principal": principal,
        "can_approve": principal is not None and principal.can(Permission.APPROVE),
        "can_operate": principal is not None and principal.can(Permission.OPERATE),
        "csrf_field": auth.CSRF_FIELD,
        "csrf_token": auth.csrf_token(request),
        "messages": messages,
        **context,
    }
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, template, values, status_code=status_code
    )
    return response


def error_page(request: Request, status_code: int, title: str, detail: str) -> HTMLResponse:
    try:
        principal: Principal | None = auth.signed_in(request)
    except auth.LoginRequired:
        principal = None
    return render(
        request, "error.html", principal, status_code=status_code, title=title, detail=detail
    )


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    return RedirectResponse(auth.link(request, "approvals_page"), status_code=303)


@router.get("/login", response_class=HTMLResponse, name="login_page")
def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", None, error=None)


@router.get("/approvals", response_class=HTMLResponse, name="approvals_page")
def approvals_page(request: Request, plane: Plane, principal: Viewer) -> HTMLResponse:
    """Pending tickets, oldest first, with the session each one would let go on."""
    page = plane.list_tickets(status="pending", tenant=principal.tenant, limit=PAGE_SIZE)
    sessions = {
        session_id: plane.get_session(session_id)
        for session_id in {ticket.session_id for ticket in page.items}
    }
    return render(
        request,
        "approvals.html",
        principal,
        tickets=page.items,
        sessions=sessions,
        more=page.next_cursor is not None,
    )


@router.get("/sessions", response_class=HTMLResponse, name="sessions_page")
def sessions_page(
    request: Request,
    plane: Plane,
    principal: Viewer,
    status: Annotated[
        str | None, Query(pattern=r"^(|created|active|paused|completed|aborted)$")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    """Sessions newest first with their budget bars, and the standing kills; a tenant key
    sees its tenant's."""
    page = plane.list_sessions(
        status=status or None, tenant=principal.tenant, limit=PAGE_SIZE, cursor=cursor or None
    )
    return render(
        request,
        "sessions.html",
        principal,
        kills=gateway_kill.standing_kills(plane, principal),
        sessions=page.items,
        bars={session.id: _bars(session) for session in page.items},
        status=status or "",
        next_cursor=page.next_cursor,
    )


def _bars(session: Session) -> dict[str, views.Bar | None]:
    return {
        "cost": views.bar(session.cost_used, session.max_cost),
        "actions": views.bar(session.actions_used, session.max_actions),
    }


@router.get("/sessions/{session_id}", response_class=HTMLResponse, name="session_page")
def session_page(
    request: Request, session_id: uuid.UUID, plane: Plane, principal: Viewer
) -> HTMLResponse:
    """One session: its budget, its approval tickets and its events in order."""
    session = visible_session(plane, principal, session_id)
    events = plane.events(session_id, limit=1000)
    tickets = plane.list_tickets(session_id=session_id, limit=PAGE_SIZE).items
    return render(
        request,
        "session.html",
        principal,
        session=session,
        bars=_bars(session),
        events=events,
        tickets=tickets,
    )


@router.get("/events", response_class=HTMLResponse, name="events_page")
def events_page(request: Request, plane: Plane, principal: Viewer) -> HTMLResponse:
    """The newest events, and a small script that polls ``events.json`` for the next ones."""
    head = plane.event_feed_head(tenant=principal.tenant)
    start = None if head is None else str(max(int(head) - RECENT_WINDOW, 0))
    page = plane.event_feed(start, RECENT_WINDOW, None, principal.tenant)
    recent = list(reversed(page.items[-RECENT_EVENTS:]))
    return render(
        request,
        "events.html",
        principal,
        events=recent,
        cursor=page.next_cursor or "",
    )


@router.get("/events.json", name="events_json")
def events_json(
    request: Request,
    plane: Plane,
    principal: Viewer,
    cursor: Annotated[str, Query(max_length=20, pattern=r"^[0-9]*$")] = "",
) -> JSONResponse:
    """Events committed after ``cursor`` (oldest first) and the cursor to ask with next."""
    page = plane.event_feed(cursor or None, PAGE_SIZE, None, principal.tenant)
    return JSONResponse(
        {
            "cursor": page.next_cursor or "",
            "events": [_event_json(request, event) for event in page.items],
        }
    )


def _event_json(request: Request, event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        "session_id": str(event.session_id),
        "session_url": auth.link(request, "session_page", session_id=event.session_id),
        "seq": event.seq,
        "kind": event.kind,
        "action": event.action or "",
        "outcome": event.outcome or "",
        "reason": event.reason or "",
    }


@router.get("/tokens", response_class=HTMLResponse, name="tokens_page")
def tokens_page(
    request: Request,
    plane: Plane,
    principal: Viewer,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 30,
) -> HTMLResponse:
    """Token usage per day and model over the last ``days`` days, and the budgets' windows."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=days - 1)
    groups = ["day", "model"] if principal.tenant is None else ["org", "day", "model"]
    rows = plane.token_usage(group_by=groups, since=since)
    if principal.tenant is not None:
        rows = [row for row in rows if row["org"] == principal.tenant]
    models, table = views.usage_table(rows)
    budgets = [
        {**_fields(row), "bars": _budget_bars(row)}
        for row in plane.token_budget_status()
        if principal.tenant is None or row["budget"].org_id == principal.tenant
    ]
    return render(
        request,
        "tokens.html",
        principal,
        days=days,
        models=models,
        table=table,
        chart=views.daily_chart(rows),
        budgets=budgets,
    )


def _fields(row: TokenBudgetStatus) -> dict[str, Any]:
    return {field.name: getattr(row, field.name) for field in dataclasses.fields(row)}


def _budget_bars(row: TokenBudgetStatus) -> dict[str, views.Bar | None]:
    """Used plus held, against each limit of the budget's current window."""
    return {
        name: views.bar(row.used[name] + row.reserved[name], limit)
        for name, limit in row.limits.items()
    }


@router.get("/audit", response_class=HTMLResponse, name="audit_page")
def audit_page(request: Request, plane: Plane, principal: Viewer) -> HTMLResponse:
    """Recompute the hash chains: every session's, or a tenant key's own sessions'."""
    report = plane.verify_audit() if principal.tenant is None else _tenant_audit(plane, principal)
    return render(
        request,
        "audit.html",
        principal,
        report=report,
        checked_at=datetime.now(UTC),
    )


def _tenant_audit(plane: Plane, principal: Principal) -> AuditReport:
    sessions = events = 0
    problems = []
    cursor = None
    while sessions < MAX_TENANT_AUDIT:
        page = plane.list_sessions(tenant=principal.tenant, limit=PAGE_SIZE, cursor=cursor)
        for session in page.items:
            report = plane.verify_audit(session.id)
            sessions += report.sessions_checked
            events += report.events_checked
            problems.extend(report.problems)
        cursor = page.next_cursor
        if cursor is None:
            break
    return AuditReport(
        ok=not problems, sessions_checked=sessions, events_checked=events, problems=problems
    )
