"""Adapters for agent frameworks; each needs its framework installed (an optional extra)."""
