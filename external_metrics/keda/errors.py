"""What can go wrong answering KEDA, as our own exceptions; the servicer maps each to a gRPC code.

The pure modules (:mod:`.metadata`, :mod:`.reading`) raise these and know nothing of gRPC, so
they can be tested as plain functions and reused by another front end. Every message says what
was wrong and where (which metadata key, which workload), because KEDA shows it verbatim in the
ScaledObject's events and the operator's log, and that is all a user gets to debug with::

    ScalerError
    ├── BadMetadata      -> INVALID_ARGUMENT  the trigger metadata does not name a workload/metric
    ├── UnknownWorkload  -> NOT_FOUND         well-formed, but not a workload in our config
    ├── UnknownMetric    -> NOT_FOUND         a metric name we do not publish for that workload
    └── NotFresh         -> UNAVAILABLE       stale or no data: KEDA applies its fallback

:class:`BindError` is separate: it is a start-up failure of the server, not an answer.
"""

from __future__ import annotations


class ScalerError(Exception):
    """Base of the errors that become a gRPC status (never a made-up value)."""


class BadMetadata(ScalerError, ValueError):
    """The ScaledObject trigger's ``metadata`` is malformed; ``key`` names the offending entry."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class UnknownWorkload(ScalerError, LookupError):
    """The metadata names a workload (``namespace/name``) that is not in the config."""

    def __init__(self, workload: str) -> None:
        super().__init__(
            f"workload {workload} is not configured in llm-autoscaler; check the trigger's "
            "'workload' (or 'namespace'/'name') metadata against the service's config"
        )
        self.workload = workload


class UnknownMetric(ScalerError, LookupError):
    """A metric we do not publish (for this workload, or at all)."""

    def __init__(self, message: str, *, metric: str) -> None:
        super().__init__(message)
        self.metric = metric


class NotFresh(ScalerError):
    """No fresh recommendation: the last tick held, the value is too old, or there is none yet."""

    def __init__(self, message: str, *, workload: str) -> None:
        super().__init__(message)
        self.workload = workload


class BindError(OSError):
    """The gRPC server could not listen on the address it was given."""
