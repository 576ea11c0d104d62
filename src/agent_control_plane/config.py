"""Settings read from arguments first, then ACP_* environment variables, then defaults."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_control_plane.errors import ConfigurationError

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
