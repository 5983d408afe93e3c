"""python -m tests.faults [--full] [--only TEXT]: the fault suite with its report table."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.faults.suite import FULL, SHORT, faults, harness, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults",
        description="Inject every fault into a running stack (private RabbitMQ and PostgreSQL, "
        "loopback only) while captures are in flight; print lost, duplicated, stuck and "
        "left-over counts per fault. Exits 1 if any is not zero.",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help=f"{FULL.captures} captures per fault, {FULL.window} in flight "
        f"(default: the short form, {SHORT.captures} and {SHORT.window})",
    )
    parser.add_argument("--only", metavar="TEXT", help="run only the faults whose name has TEXT")
    args = parser.parse_args(argv)
    form = FULL if args.full else SHORT
    with (
        tempfile.TemporaryDirectory(prefix="prsnl-faults-") as tmp,
        harness(Path(tmp), form) as running,
    ):
        outcomes = []
        for name, inject in faults(running, form):
            if args.only and args.only not in name:
                continue
            print(f"fault: {name} ...", file=sys.stderr, flush=True)
            outcomes.append(running.run(name, inject))
    print(table(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
