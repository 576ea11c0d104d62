"""Settings read from arguments first, then ACP_* environment variables, then defaults."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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
