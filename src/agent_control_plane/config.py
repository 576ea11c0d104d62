"""Settings read from arguments first, then ACP_* environment variables, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_control_plane.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

MigrateMode = Literal["auto", "verify", "off"]
DEFAULT_DATABASE_URL = "sqlite:///acp.db"
DEFAULT_RETENTION = timedelta(days=7)


class Settings(BaseSettings):
    """ACP_DATABASE_URL, ACP_SCHEMA, ACP_TABLE_PREFIX, ACP_MIGRATE,
    ACP_IDEMPOTENCY_RETENTION (seconds or an ISO 8601 duration such as P7D), ACP_AUDIT_KEY
    (the audit key) and ACP_AUDIT_KEYS (older audit keys, separated by commas)."""

    model_config = SettingsConfigDict(env_prefix="ACP_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    db_schema: str | None = Field(default=None, validation_alias="ACP_SCHEMA")
    table_prefix: str | None = None
    migrate: MigrateMode = "auto"
    idempotency_retention: timedelta = Field(default=DEFAULT_RETENTION, gt=timedelta(0))
    audit_key: SecretStr | None = None
    audit_keys: SecretStr | None = None


def load_settings() -> Settings:
    """The ACP_* settings, or ConfigurationError naming each variable that is invalid."""
    try:
        return Settings()
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            name = str(problem["loc"][0]) if problem["loc"] else "?"
            variable = name if name.startswith("ACP_") else f"ACP_{name.upper()}"
            value = os.environ.get(variable, problem.get("input"))
            problems.append(f"{variable}={value!r}: {problem['msg']}")
        raise ConfigurationError(
            "invalid setting in the environment: " + "; ".join(problems)
        ) from None


@dataclass(frozen=True, slots=True)
class Location:
    """Where ACP's tables are: the database URL, and the PostgreSQL schema or the table
    prefix (None: the layout's default for the dialect)."""

    url: str | URL | None
    schema: str | None
    table_prefix: str | None


def resolve_location(
    url: str | URL | None,
    schema: str | None,
    table_prefix: str | None,
    settings: Settings | None = None,
    *,
    with_url: bool = True,
) -> Location:
    """Each argument, else its ACP_* setting, else the default: the one rule that
    ControlPlane.open and every ``acp`` command follow. An empty URL, given or set, is a
    ConfigurationError (it would silently mean the default SQLite file). Without
    ``with_url`` (the host passed an engine) no URL is resolved: None."""
    settings = load_settings() if settings is None else settings
    return Location(
        url=_url(url, settings.database_url) if with_url else None,
        schema=schema if schema is not None else settings.db_schema,
        table_prefix=table_prefix if table_prefix is not None else settings.table_prefix,
    )


def _url(given: str | URL | None, configured: str) -> str | URL:
    if given is None:
        if not configured.strip():
            raise ConfigurationError(
                "ACP_DATABASE_URL is set but empty: set it to a database URL, e.g. "
                "sqlite:///acp.db, or unset it"
            )
        return configured
    if isinstance(given, str) and not given.strip():
        raise ConfigurationError(
            "url is empty: pass a database URL, e.g. sqlite:///acp.db, or None to use "
            "ACP_DATABASE_URL"
        )
    return given
