"""The ``llm-autoscaler`` parser and dispatch: each verb module adds its subcommand.

Every subcommand validates its input first; an :class:`~autoscaler.errors.InputError` becomes one
line on stderr and exit code 2 (argparse uses 2 for usage errors too), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from autoscaler.cli import (
    demo,
    emulate,
    forecast_eval,
    profiles,
    report,
    serve,
    simulate,
    validate_config,
)
from autoscaler.cli.flags import PROG
from autoscaler.errors import InputError, LlmAutoscalerError

VERBS = (simulate, demo, validate_config, profiles, forecast_eval, serve, emulate, report)
"""In the order ``--help`` lists them."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (what is wrong, and where to look), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def version_text() -> str:
    """``llm-autoscaler X.Y.Z``, plus the source revision an image build baked in.

    The version is the installed distribution's (pyproject.toml's ``version``); the container
    image sets ``LLM_AUTOSCALER_REVISION`` to the git commit it was built from.
    """
    import os
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = f"{PROG} {version('llm-autoscaler')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        text = f"{PROG} (not installed)"
    revision = os.environ.get("LLM_AUTOSCALER_REVISION", "").strip()
    return f"{text} (revision {revision})" if revision else text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="SLO-aware, forecasting autoscaler for LLM inference fleets.",
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (InputError, LlmAutoscalerError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
