"""How a governed call ended, as the outcome ACP records: one rule for every integration.

A call that returned (or a generator that ran to its end) ``succeeded``; one that raised an
``Exception`` ``failed``; one stopped from outside before it finished ``cancelled``: an
asyncio cancellation (``task.cancel()``, ``asyncio.wait_for`` or ``asyncio.timeout``
running out), ``KeyboardInterrupt``/``SystemExit``, or a generator closed before its end
(``GeneratorExit``: a ``break``, ``close()``/``aclose()``, garbage collection). Those are
the ``BaseException``s that are not ``Exception``s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

_SUMMARY_LIMIT = 500


def short(text: str) -> str:
    """``text`` cut to a length an audit event can carry."""
    return text if len(text) <= _SUMMARY_LIMIT else text[: _SUMMARY_LIMIT - 1] + "…"


def status_of(error: BaseException) -> str:
    """The outcome of a call that ended with ``error``: failed, or cancelled."""
    return "failed" if isinstance(error, Exception) else "cancelled"


def failure_summary(error: BaseException) -> dict[str, Any]:
    """What the outcome event records about the error a call ended with."""
    return {"error": type(error).__name__, "message": short(str(error))}


async def recorded(record: Coroutine[Any, Any, Any]) -> None:
    """Await an outcome record that must not be lost: a call being cancelled may be
    cancelled again while its outcome is written, and the write goes on regardless."""
    await asyncio.shield(record)
