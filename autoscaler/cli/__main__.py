"""``python -m autoscaler.cli``: the same as the ``llm-autoscaler`` console script."""

from autoscaler.cli.commands import main

if __name__ == "__main__":  # API processes (``spawn``) import this module again: no second run
    raise SystemExit(main())
