"""python -m tests.faults [--full] [--only TEXT]: the fault suite with its report table."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from tests.faults.suite import FULL, SHORT, Outcome, faults, harness, table


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
    # Stopped with SIGTERM, it still stops the stack, the broker and the database it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
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
            try:
                outcomes.append(running.run(name, inject))
            except Exception as exc:  # the report still shows the faults that ran
                outcomes.append(Outcome(name, 0, 0, stuck=-1, notes=[f"the run broke: {exc!r}"]))
    print(table(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
