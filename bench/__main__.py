"""Entry point of ``python -m bench`` (what ``make bench`` runs)."""

from bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
