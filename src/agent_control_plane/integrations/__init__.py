"""Adapters that put ACP in front of other libraries' calls (each needs its optional extra)."""
