"""Settings read from arguments first, then ACP_* environment variables, then defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MigrateMode = Literal["auto", "verify", "off"]
DEFAULT_DATABASE_URL = "sqlite:///acp.db"


class Settings(BaseSettings):
    """ACP_DATABASE_URL, ACP_SCHEMA, ACP_TABLE_PREFIX, ACP_MIGRATE."""

    model_config = SettingsConfigDict(env_prefix="ACP_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    db_schema: str | None = Field(default=None, validation_alias="ACP_SCHEMA")
    table_prefix: str | None = None
    migrate: MigrateMode = "auto"
