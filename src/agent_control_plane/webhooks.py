"""POST a JSON notification; never blocks an event loop that ACP runs under.

The standard library's urllib is enough for one small POST and adds no dependency.
Under AsyncControlPlane an operation runs inside SQLAlchemy's greenlet bridge, where
a blocking call would stall the event loop: the POST then runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from sqlalchemy.util.concurrency import in_greenlet

try:
    from sqlalchemy.util.concurrency import await_
except ImportError:  # SQLAlchemy 2.0 names it await_only
    from sqlalchemy.util.concurrency import await_only as await_

USER_AGENT = "agent-control-plane webhook"


class WebhookError(Exception):
    """The endpoint could not be reached or did not answer 2xx."""


def _send(request: urllib.request.Request, timeout: float) -> None:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        # The error holds the response and its socket: close it now, not when the
        # exception (kept alive by tracebacks and causes) is finally collected.
        exc.close()
        raise WebhookError(f"POST {request.full_url} failed: {exc}") from None
    except (OSError, ValueError) as exc:  # URLError, HTTPError and timeouts are OSErrors
        raise WebhookError(f"POST {request.full_url} failed: {exc}") from exc


def post_json(url: str, body: dict[str, Any], timeout: float) -> None:
    """POST ``body`` as JSON to ``url``; raise WebhookError unless it answers 2xx."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body, separators=(",", ":")).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    if in_greenlet():
        await_(asyncio.to_thread(_send, request, timeout))
    else:
        _send(request, timeout)
