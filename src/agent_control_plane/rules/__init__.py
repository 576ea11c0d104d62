"""Pure governance rules: no I/O, tested without a database."""
