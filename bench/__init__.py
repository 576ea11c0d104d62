"""Benchmarks: ops/s next to a raw-SQL floor measured in the same run (``make bench``)."""
