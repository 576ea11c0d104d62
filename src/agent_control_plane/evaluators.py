"""Evaluator plugins: named checks that policy conditions call, each under a timeout.

Plugins are entry points in group ``agent_control_plane.evaluators`` whose object
is a callable ``(params: dict, proposal: Proposal) -> bool``; code may also register
callables directly. A plugin that fails to load is an error when a policy names it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from importlib import metadata
from threading import Lock
from typing import Any

from agent_control_plane.errors import PolicyError
from agent_control_plane.rules.proposal import Proposal
from agent_control_plane.rules.routing import EvaluatorFailure

ENTRY_POINT_GROUP = "agent_control_plane.evaluators"
Evaluator = Callable[[dict[str, Any], Proposal], bool]

log = logging.getLogger(__name__)


class EvaluatorRegistry:
    """Evaluators by name, loaded lazily from entry points, run with a timeout."""

    def __init__(self) -> None:
        self._evaluators: dict[str, Evaluator] = {}
        self._lock = Lock()
        self._pool: ThreadPoolExecutor | None = None

    def register(self, name: str, evaluator: Evaluator) -> None:
        if not callable(evaluator):
            raise PolicyError(f"evaluator {name!r} is not callable")
        with self._lock:
            self._evaluators[name] = evaluator

    def require(self, names: set[str]) -> None:
        """Load every named evaluator now, or raise PolicyError naming what failed."""
        missing = [name for name in sorted(names) if name not in self._evaluators]
        if not missing:
            return
        available = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        for name in missing:
            entry_point = available.get(name)
            if entry_point is None:
                raise PolicyError(
                    f"unknown evaluator {name!r}: register it with register_evaluator() or an "
                    f"entry point in group {ENTRY_POINT_GROUP!r}"
                )
            try:
                loaded = entry_point.load()
            except Exception as exc:
                raise PolicyError(
                    f"evaluator plugin {name!r} ({entry_point.value}) failed to load: {exc}"
                ) from exc
            self.register(name, loaded)

    def call(self, name: str, params: dict[str, Any], proposal: Proposal, timeout: float) -> bool:
        """Run one evaluator; any error, timeout or non-bool result raises EvaluatorFailure."""
        evaluator = self._evaluators.get(name)
        if evaluator is None:
            raise EvaluatorFailure(f"evaluator.unknown:{name}")
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="acp-evaluator")
            pool = self._pool
        future = pool.submit(evaluator, params, proposal)
        try:
            result = future.result(timeout=timeout)
        except FutureTimeout:
            raise EvaluatorFailure(f"evaluator.timeout:{name}") from None
        except Exception as exc:
            log.warning("evaluator %s failed: %s", name, exc)
            raise EvaluatorFailure(f"evaluator.error:{name}") from exc
        if not isinstance(result, bool):
            raise EvaluatorFailure(f"evaluator.bad_result:{name}")
        return result

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
