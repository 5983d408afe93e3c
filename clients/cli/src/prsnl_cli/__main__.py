"""``python -m prsnl_cli``, the same as the ``prsnl`` console script."""

from prsnl_cli.main import main

main()
