"""Policies the database tests share."""

from __future__ import annotations

from typing import Any

SUPPORT_BOT: dict[str, Any] = {
    "name": "support-bot",
    "default": "deny",
    "tiers": {
        "auto_approve": ["read_ticket", "search_kb"],
        "always_approve": ["issue_refund"],
        "steer": {"close_account": "Ask the customer to confirm in writing first."},
        "blocked": ["drop_database"],
        "unrestricted": ["work"],
    },
}

DRY_RUN: dict[str, Any] = {**SUPPORT_BOT, "name": "support-bot-dry", "mode": "dry_run"}
