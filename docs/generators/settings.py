"""Every ACP_* environment variable: the settings model's, the CLI's and the few others."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

from agent_control_plane.alembic.guard import DISABLE_VARIABLE
from agent_control_plane.cli import app
from agent_control_plane.config import Settings
from agent_control_plane.dashboard.app import SECRET_VARIABLE

# What each field of the settings model means, with the argument of ControlPlane.open that
# overrides it. A field without a line here fails the docs build.
SETTINGS = {
    "database_url": ("`url`", "The database: a SQLAlchemy URL (or, as an argument, an `Engine`)."),
    "db_schema": ("`schema`", "PostgreSQL schema for ACP's tables (default there: `acp`)."),
    "table_prefix": (
        "`table_prefix`",
        "Prefix of ACP's table names (default `acp_` on SQLite and MySQL/MariaDB, none on "
        "PostgreSQL); at most 12 characters.",
    ),
    "migrate": ("`migrate`", "`auto` (upgrade under a lock at open), `verify` or `off`."),
    "idempotency_retention": (
        "`idempotency_retention`",
        "How long idempotency keys are kept: seconds or an ISO 8601 duration (`P7D`).",
    ),
    "audit_key": ("`audit_key`", "The audit key: each chain link becomes an HMAC (32+ bytes)."),
    "audit_keys": ("`audit_keys`", "Older audit keys, separated by commas, still verified."),
}

# Variables read outside the settings model and the CLI's options.
OTHERS = {
    DISABLE_VARIABLE: (
        "alembic plugin",
        "`0` switches off the installed alembic guard that keeps ACP's tables out of the "
        "host's autogenerate.",
    ),
    SECRET_VARIABLE: (
        "dashboard",
        "Signs the dashboard's cookies; unset, each app makes a random one (set it to the "
        "same value on every worker).",
    ),
}


def variables() -> dict[str, str]:
    """Every variable name and where it is read (for the page and its test)."""
    found = {name: "ControlPlane.open, every `acp` command" for name in _model_variables()}
    for path, option in _cli_options():
        found.setdefault(str(option.envvar), f"`{path}`")
    for name, (where, _meaning) in OTHERS.items():
        found[name] = where
    return found


def render() -> str:
    prefix = Settings.model_config.get("env_prefix", "")
    missing = [name for name in Settings.model_fields if name not in SETTINGS]
    if missing:
        raise KeyError(f"docs/generators/settings.py: say what these settings do: {missing}")
    lines = [
        "## ControlPlane.open and every command",
        "",
        "An argument of `ControlPlane.open` / `AsyncControlPlane.open` (or a command's option) "
        "wins over the variable, which wins over the default.",
        "",
        "| variable | argument | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        variable = field.validation_alias or f"{prefix}{name}".upper()
        argument, meaning = SETTINGS[name]
        default = "—" if field.default is None else f"`{_shown(field.default)}`"
        lines.append(f"| `{variable}` | {argument} | {default} | {meaning} |")
    lines += ["", "## Command options", "", "| variable | command | option | meaning |"]
    lines.append("|---|---|---|---|")
    for path, option in _cli_options():
        flag = max(option.opts, key=len)
        help_text = (option.help or "").replace("|", "\\|")
        lines.append(f"| `{option.envvar}` | `{path}` | `{flag}` | {help_text} |")
    lines += ["", "## Others", "", "| variable | read by | meaning |", "|---|---|---|"]
    for name, (where, meaning) in OTHERS.items():
        lines.append(f"| `{name}` | {where} | {meaning} |")
    return "\n".join(lines) + "\n"


def _shown(value: object) -> str:
    if isinstance(value, timedelta):
        return f"{value.days} days" if value.days and not value.seconds else str(value)
    return str(value)


def _model_variables() -> list[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return [
        str(field.validation_alias or f"{prefix}{name}".upper())
        for name, field in Settings.model_fields.items()
    ]


def _cli_options() -> list[tuple[str, Any]]:
    """(command path, option) for every option that reads an environment variable."""
    found: list[tuple[str, Any]] = []

    # Typer carries its own copy of Click: its classes are looked at, not imported.
    def walk(command: Any, path: str) -> None:
        for parameter in command.params:
            if parameter.param_type_name == "option" and isinstance(parameter.envvar, str):
                found.append((path, parameter))
        for name, child in getattr(command, "commands", {}).items():
            walk(child, f"{path} {name}")

    walk(typer.main.get_command(app), "acp")
    return found
