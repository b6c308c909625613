"""The project's own exception tree.

    LlmAutoscalerError
    ├── InputError (ValueError)        bad user input: config, flags, trace lines; CLI exit code 2
    │   ├── TraceFormatError           a malformed trace row; names the file and line
    │   └── UnknownNameError           an unknown policy, format, model or GPU name
    ├── SharedDataMissing (FileNotFoundError)
    │                                  a file under ../shared (or $LLM_AUTOSCALER_DATA) is absent
    ├── MissingExtraError              an optional part (``pip install 'llm-autoscaler[EXTRA]'``)
    │                                  is not installed; says which extra brings it
    └── ExternalSystemError            a system we call (the Kubernetes API) did not answer as
                                       needed; subclasses live with their client

Library errors are chained as causes (``raise ... from e``) so the CLI can print one line while
a debugger still sees the origin.
"""

from __future__ import annotations


class LlmAutoscalerError(Exception):
    """Base of every error this project raises on purpose."""


class MissingExtraError(LlmAutoscalerError):
    """A command needs an optional dependency group that this installation left out.

    The serving image installs the app without the ``report`` extra (matplotlib and its fonts and
    image libraries), so ``demo`` and ``report`` there fail with this one line, not an ImportError.
    """

    def __init__(self, module: str, extra: str, what: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{what} needs {module}, which is not installed: pip install 'llm-autoscaler[{extra}]'"
        )


class InputError(LlmAutoscalerError, ValueError):
    """Input from a user (flags, config, files) is invalid; the message says what and where."""


class TraceFormatError(InputError):
    """A trace file has a row that cannot be read.

    Carries the path and the 1-based line number so the message can point at the exact row.
    """

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path}:{line}: {problem}")


class UnknownNameError(InputError):
    """A name (policy, format, model, GPU) is not one this project knows; lists the known ones."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")


class SharedDataMissing(LlmAutoscalerError, FileNotFoundError):
    """A shared data file (trace, capture, perf CSV) was not found in any data directory."""


class ExternalSystemError(LlmAutoscalerError):
    """A system the service calls did not answer as needed (unreachable, refused, bad reply).

    Not an :class:`InputError`: the user's input may be fine and the same call may work a minute
    later, so callers log it and keep their last good state instead of exiting. Each client
    package subclasses it (``autoscaler.clients.kube.KubernetesError``) with a message that names
    the system, the operation and the problem.
    """


MAX_ECHO = 64
"""Characters of a caller's input an error message repeats (see :func:`quoted`)."""


def quoted(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` as ``repr`` shows it, cut to ``limit`` characters with its full length noted.

    Error messages echo what the caller sent so they can find it; a 100 KB metric name echoed
    whole overflowed gRPC's trailer limit and filled logs. Every message that repeats input
    goes through here.
    """
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"
