"""Run every benchmark on every reachable database and print one table."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from bench.floor import floor_ops_per_second
from bench.opening import cold_open_seconds, warm_opens_per_second
from bench.targets import bench_database

DIALECTS = ("sqlite", "postgresql", "mysql")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each timed loop")
    parser.add_argument("--dialect", action="append", choices=DIALECTS)
    args = parser.parse_args()
    console = Console()
    table = Table(title="agent-control-plane benchmarks (single thread)")
    for column in ("database", "measure", "result", "ratio to floor"):
        table.add_column(column)
    for dialect in args.dialect or DIALECTS:
        with bench_database(dialect) as url:
            floor = floor_ops_per_second(url, args.seconds)
            table.add_row(
                dialect, "floor: UPDATE + INSERT per transaction", f"{floor:,.0f} ops/s", "1.00"
            )
            table.add_row(
                dialect,
                "ControlPlane.open, fresh database",
                f"{cold_open_seconds(url) * 1000:,.0f} ms",
                "",
            )
            warm = warm_opens_per_second(url, args.seconds)
            table.add_row(
                dialect, "ControlPlane.open(migrate='verify'), current", f"{warm:,.1f} opens/s", ""
            )
        console.print(f"[dim]{dialect} done[/]")
    console.print(table)


if __name__ == "__main__":
    main()
