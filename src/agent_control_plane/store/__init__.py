"""Statements, one module per domain; dialect differences live in store.dialect."""
