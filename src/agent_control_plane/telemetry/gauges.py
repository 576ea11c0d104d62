"""Observable gauges: the approval queue and token budgets, read when a metric reader collects.

A gauge (not an up-down counter) because the values are database-wide: two processes
on one database report the same queue, and summing them would double it.

The reader collects on its own thread. A sync control plane is read there directly (its
engine is thread-safe); an async control plane's connections belong to its event loop,
so the read is handed to that loop and awaited from the reader's thread. A collection
made on the loop's own thread cannot wait for the loop and observes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from sqlalchemy.exc import SQLAlchemyError

from agent_control_plane.errors import ConfigurationError, ControlPlaneError
from agent_control_plane.telemetry import attributes as names

if TYPE_CHECKING:
    from agent_control_plane.control_plane import AsyncControlPlane, ControlPlane

log = logging.getLogger("agent_control_plane.telemetry")

READ_TIMEOUT_SECONDS = 5.0
# The four token budget gauges are collected one after another; one status read serves all.
SNAPSHOT_SECONDS = 1.0


class _Unreadable(Exception):
    """The database cannot be read from this thread now."""


Reader = Callable[[str], Any]


def _sync_reader(control_plane: ControlPlane) -> Reader:
    return lambda method: getattr(control_plane, method)()


def _async_reader(control_plane: AsyncControlPlane) -> Reader:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigurationError(
            "instrument() an AsyncControlPlane from inside the event loop that uses it"
        ) from None

    def read(method: str) -> Any:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or loop.is_closed():
            raise _Unreadable("the control plane's event loop cannot be waited for here")
        future = asyncio.run_coroutine_threadsafe(getattr(control_plane, method)(), loop)
        try:
            return future.result(timeout=READ_TIMEOUT_SECONDS)
        except TimeoutError:
            future.cancel()
            raise

    return read


class Gauges:
    """The observable gauges of one control plane; ``stop()`` silences them."""

    def __init__(self, control_plane: ControlPlane | AsyncControlPlane, meter: Meter) -> None:
        from agent_control_plane.control_plane import AsyncControlPlane

        self._control_plane = control_plane
        self._read = (
            _async_reader(control_plane)
            if isinstance(control_plane, AsyncControlPlane)
            else _sync_reader(control_plane)
        )
        self._active = True
        self._lock = threading.Lock()
        self._budgets: tuple[float, list[dict[str, Any]]] | None = None
        meter.create_observable_gauge(
            "acp.approvals.pending",
            callbacks=[self._pending],
            unit="{ticket}",
            description="Approval tickets waiting for a person.",
        )
        for measure, unit in (("tokens", "{token}"), ("cost", "USD")):
            for state in ("used", "remaining"):
                meter.create_observable_gauge(
                    f"acp.token_budget.{measure}.{state}",
                    callbacks=[self._budget_callback(measure, state)],
                    unit=unit,
                    description=f"{measure.capitalize()} {state} in each token budget's "
                    "current window.",
                )

    def stop(self) -> None:
        self._active = False

    def _value(self, method: str) -> Any:
        if not self._active or self._control_plane._closed:
            raise _Unreadable("not instrumented")
        return self._read(method)

    def _pending(self, _options: CallbackOptions) -> Iterable[Observation]:
        try:
            return [Observation(int(self._value("count_tickets")))]
        except (_Unreadable, TimeoutError, ControlPlaneError, SQLAlchemyError) as error:
            _skipped("acp.approvals.pending", error)
            return []

    def _budget_status(self) -> list[dict[str, Any]]:
        with self._lock:
            now = time.monotonic()
            if self._budgets is None or now - self._budgets[0] > SNAPSHOT_SECONDS:
                self._budgets = (now, self._value("token_budget_status"))
            return self._budgets[1]

    def _budget_callback(
        self, measure: str, state: str
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        key = "tokens" if measure == "tokens" else "cost_usd"
        source = "used" if state == "used" else "remaining"

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            try:
                status = self._budget_status()
            except (_Unreadable, TimeoutError, ControlPlaneError, SQLAlchemyError) as error:
                _skipped(f"acp.token_budget.{measure}.{state}", error)
                return []
            observations = []
            for item in status:
                value = item[source][key]
                if value is None:  # no limit: nothing remains to count down
                    continue
                budget = item["budget"]
                observations.append(
                    Observation(
                        float(value) if isinstance(value, Decimal) else int(value),
                        {
                            names.TOKEN_BUDGET_ID: str(budget.id),
                            names.TOKEN_BUDGET_SCOPE: budget.scope_key,
                            names.TOKEN_BUDGET_PERIOD: budget.period,
                        },
                    )
                )
            return observations

        return observe


def _skipped(gauge: str, error: BaseException) -> None:
    if isinstance(error, _Unreadable):
        log.debug("%s not observed: %s", gauge, error)
    else:
        log.warning("%s not observed: %s: %s", gauge, type(error).__name__, error)
