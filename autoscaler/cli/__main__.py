"""``python -m autoscaler.cli``: the same as the ``llm-autoscaler`` console script."""

from autoscaler.cli.commands import main

raise SystemExit(main())
