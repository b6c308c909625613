"""The ``llm-autoscaler`` command line: one module per verb.

Every verb validates its input first and then calls the rooms that do the work; an
:class:`~autoscaler.errors.InputError` becomes one line on stderr and exit code 2, never a
traceback. ``commands`` builds the parser and dispatches.

May import: every room of ours (this is the top of the graph: nothing imports ``autoscaler.cli``).
Its imports are lazy, inside each verb, so that ``--help`` and the light verbs start fast and the
serving image runs without the ``report`` extra.
"""

from autoscaler.cli.commands import main

__all__ = ["main"]
