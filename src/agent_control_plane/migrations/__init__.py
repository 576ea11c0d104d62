"""ACP's own alembic environment, revisions and the runner that applies them under a lock."""
