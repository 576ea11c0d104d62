"""Opening rules shared by ControlPlane and AsyncControlPlane (no I/O here)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, get_args

from pydantic import SecretStr
from sqlalchemy.engine import URL, Connection

from agent_control_plane.config import MigrateMode, load_settings, resolve_location
from agent_control_plane.engine import DEFAULT_POOL, PoolSettings, database_url
from agent_control_plane.errors import ConfigurationError
from agent_control_plane.migrations.runner import Migrator
from agent_control_plane.rules.audit_keys import NO_KEYS, KeyLike, Keyring
from agent_control_plane.runtime import fail_open_categories
from agent_control_plane.schema.layout import Layout, resolve_layout

log = logging.getLogger("agent_control_plane")


@dataclass(frozen=True)
class OpenPlan:
    url: URL | None
    migrate: MigrateMode
    schema: str | None
    table_prefix: str | None
    idempotency_retention: timedelta
    keys: Keyring = NO_KEYS


def plan(
    url: str | URL | None,
    *,
    schema: str | None,
    table_prefix: str | None,
    migrate: MigrateMode | None,
    asyncio: bool,
    engine_given: bool,
    idempotency_retention: timedelta | None = None,
    audit_key: KeyLike | None = None,
    audit_keys: Iterable[KeyLike] | str | None = None,
) -> OpenPlan:
    """Merge arguments with ACP_* settings and validate them before anything connects."""
    settings = load_settings()
    mode = migrate if migrate is not None else settings.migrate
    if mode not in get_args(MigrateMode):
        raise ConfigurationError(f"migrate must be 'auto', 'verify' or 'off', not {mode!r}")
    location = resolve_location(url, schema, table_prefix, settings, with_url=not engine_given)
    parsed = None if location.url is None else database_url(location.url, asyncio=asyncio)
    return OpenPlan(
        url=parsed,
        migrate=mode,
        schema=location.schema,
        table_prefix=location.table_prefix,
        idempotency_retention=_positive(
            idempotency_retention
            if idempotency_retention is not None
            else settings.idempotency_retention
        ),
        keys=Keyring.of(
            audit_key if audit_key is not None else _secret(settings.audit_key),
            audit_keys if audit_keys is not None else _secret(settings.audit_keys) or (),
        ),
    )


def _secret(value: SecretStr | None) -> str | None:
    """The variable's value; an empty one means none (``ACP_AUDIT_KEY=`` turns it off)."""
    return None if value is None else value.get_secret_value() or None


def pool_settings(size: Any, max_overflow: Any, timeout: Any, lock_timeout: Any) -> PoolSettings:
    """Check open()'s pool arguments (None keeps each default)."""

    def count(value: Any, name: str, least: int) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigurationError(
                f"{name} must be an integer of at least {least}, not {value!r}"
            )
        return value

    def seconds(value: Any, name: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")
        return float(value)

    return PoolSettings(
        size=count(size, "pool_size", 1),
        max_overflow=count(max_overflow, "max_overflow", 0),
        timeout=seconds(timeout, "pool_timeout"),
        lock_timeout=seconds(lock_timeout, "lock_timeout"),
    )


def _positive(retention: timedelta) -> timedelta:
    if not isinstance(retention, timedelta) or retention <= timedelta(0):
        raise ConfigurationError(
            f"idempotency_retention must be a positive timedelta, not {retention!r}"
        )
    return retention


def layout_for(dialect_name: str, opening: OpenPlan) -> Layout:
    return resolve_layout(dialect_name, schema=opening.schema, table_prefix=opening.table_prefix)


@dataclass(frozen=True)
class Opening:
    """Everything ``open()`` decided before connecting: validated, nothing created yet."""

    engine: Any  # the host's Engine/AsyncEngine, or None when ACP creates its own
    url: URL | None
    layout: Layout
    migrate: MigrateMode
    fail_open: frozenset[str]
    idempotency_retention: timedelta
    keys: Keyring = NO_KEYS
    pool: PoolSettings = DEFAULT_POOL

    @property
    def dialect_name(self) -> str:
        return str(
            self.engine.dialect.name
            if self.engine is not None
            else self.require_url().get_backend_name()
        )

    def require_url(self) -> URL:
        assert self.url is not None
        return self.url


def resolve(
    url: Any,
    engine_type: type,
    *,
    asyncio: bool,
    schema: str | None,
    table_prefix: str | None,
    migrate: MigrateMode | None,
    fail_open: Iterable[str],
    idempotency_retention: timedelta | None,
    audit_key: KeyLike | None = None,
    audit_keys: Iterable[KeyLike] | str | None = None,
    pool: tuple[Any, Any, Any, Any] = (None, None, None, None),
) -> Opening:
    """The shared first half of ControlPlane.open and AsyncControlPlane.open."""
    _refuse_the_other_kind(url, asyncio=asyncio)
    given: Any = url if isinstance(url, engine_type) else None
    pool_choice = pool_settings(*pool)
    if given is not None and pool_choice != DEFAULT_POOL:
        raise ConfigurationError(
            "pool_size, max_overflow, pool_timeout and lock_timeout apply to an engine ACP "
            "creates: set them on your own engine (create_engine(pool_size=…)) instead"
        )
    opening = plan(
        None if given is not None else url,
        schema=schema,
        table_prefix=table_prefix,
        migrate=migrate,
        asyncio=asyncio,
        engine_given=given is not None,
        idempotency_retention=idempotency_retention,
        audit_key=audit_key,
        audit_keys=audit_keys,
    )
    if given is not None:
        dialect = str(given.dialect.name)
    else:
        assert opening.url is not None
        dialect = opening.url.get_backend_name()
    return Opening(
        engine=given,
        url=opening.url,
        layout=layout_for(dialect, opening),
        migrate=opening.migrate,
        fail_open=fail_open_categories(fail_open),
        idempotency_retention=opening.idempotency_retention,
        keys=opening.keys,
        pool=pool_choice,
    )


def _refuse_the_other_kind(url: Any, *, asyncio: bool) -> None:
    """An Engine given to AsyncControlPlane, or an AsyncEngine to ControlPlane: say which
    class takes it (imported here: engines are only compared, never created)."""
    from sqlalchemy import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    if asyncio and isinstance(url, Engine):
        raise ConfigurationError(
            "AsyncControlPlane.open() got a sync Engine: pass an AsyncEngine "
            "(sqlalchemy.ext.asyncio.create_async_engine), a URL, or use ControlPlane.open()"
        )
    if not asyncio and isinstance(url, AsyncEngine):
        raise ConfigurationError(
            "ControlPlane.open() got an AsyncEngine: use AsyncControlPlane.open(engine), or "
            "pass a sync Engine or a URL"
        )


def prepare_schema(connection: Connection, migrator: Migrator, mode: MigrateMode) -> list[str]:
    """Apply the migrate mode on a fresh connection; return the migration steps it ran."""
    if mode == "off":
        return []
    if mode == "verify":
        migrator.verify(connection, url=connection.engine.url.render_as_string(hide_password=True))
        return []
    # The cheap read first: a current schema needs no lock.
    if set(migrator.current(connection)) == set(migrator.heads()):
        return []
    applied = migrator.upgrade(connection)
    if applied:
        log.info("ACP schema upgraded (%s): %s", migrator.layout.describe(), ", ".join(applied))
    return applied
