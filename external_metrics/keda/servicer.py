"""The KEDA external scaler: ``externalscaler.ExternalScaler`` answered from the store.

KEDA calls ``GetMetricSpec`` when it builds the HPA, then ``GetMetrics`` *and* ``IsActive`` on
every HPA query (two RPCs per 15 s per ScaledObject), plus ``IsActive`` from its own polling loop;
an ``external-push`` trigger also holds ``StreamIsActive`` open (reference/PROTOCOLS.md §3.2).
Each answer is a lookup in the control loop's last recommendation; nothing is computed on a
request. The decisions live in :mod:`.metadata` and :mod:`.reading`; this module only maps them
to gRPC: :class:`~.errors.BadMetadata` -> ``INVALID_ARGUMENT``, an unknown workload or metric ->
``NOT_FOUND``, stale or no data -> ``UNAVAILABLE`` (KEDA then counts a failure and applies the
ScaledObject's ``fallback``), each with a message that says what and where. Anything unexpected
is logged here and answered ``INTERNAL`` without its details.

``StreamIsActive`` subscribes to the store. The store calls listeners from the writer's thread,
so the listener only judges the new state (a lookup, no I/O, no waiting) and drops it into the
stream's thread-safe queue; the stream's own worker thread pushes it when activity changed.
Judging each write as it happens means a brief change is not lost to coalescing. A keep-alive
re-sends the current state every ``keepalive_s`` so idle streams are not reaped by proxies and
KEDA sees the scaler is alive. A stream ends cleanly when the client cancels or when
:meth:`ExternalScalerServicer.close` is called (server shutdown), and with ``UNAVAILABLE`` once
the workload's data turns stale (never by pushing a guess); in every case the store listener is
removed.

Each open stream holds one worker thread of the (synchronous) gRPC server for its lifetime: size
``max_workers`` for the number of ``external-push`` ScaledObjects plus the unary traffic.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from enum import Enum
from typing import Final, NoReturn, TypeVar

import grpc

from autoscaler.core.recommendation import Recommendation
from autoscaler.errors import quoted
from autoscaler.live.store import Entry, RecommendationStore
from external_metrics.keda import externalscaler_pb2 as pb
from external_metrics.keda import externalscaler_pb2_grpc as pb_grpc
from external_metrics.keda.errors import (
    BadMetadata,
    NotFresh,
    ScalerError,
    UnknownMetric,
    UnknownWorkload,
)
from external_metrics.keda.metadata import ROLE_KEY, ScalerTarget, parse_scaler_metadata
from external_metrics.keda.reading import (
    DEFAULT_ACTIVATION_EPSILON,
    DEFAULT_METRIC,
    REPLICA_UNIT_METRICS,
    REPLICA_UNIT_TARGET,
    fresh_recommendation,
    is_active,
    metric_value,
)

DEFAULT_KEEPALIVE_S: Final = 30.0
"""Re-send the current activity this often on an idle push stream."""

_T = TypeVar("_T")


class _Stop(Enum):
    """Queued to a push stream when the client went away or the server is shutting down."""

    STOP = "stop"


_STOP: Final = _Stop.STOP


def status_code(error: ScalerError) -> grpc.StatusCode:
    """The gRPC status for one of our errors (the table in :mod:`.errors`)."""
    if isinstance(error, BadMetadata):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, UnknownWorkload | UnknownMetric):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, NotFresh):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


class ExternalScalerServicer(pb_grpc.ExternalScalerServicer):
    """Serves KEDA from ``store``; ``keepalive_s`` and ``activation_epsilon`` are injectable."""

    def __init__(
        self,
        store: RecommendationStore,
        *,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        activation_epsilon: float = DEFAULT_ACTIVATION_EPSILON,
        logger: logging.Logger | None = None,
    ) -> None:
        if not (math.isfinite(keepalive_s) and keepalive_s > 0):
            raise ValueError(f"keepalive_s must be a positive number of seconds, not {keepalive_s}")
        if not (math.isfinite(activation_epsilon) and activation_epsilon >= 0):
            raise ValueError(f"activation_epsilon must be >= 0, not {activation_epsilon}")
        self._store = store
        self._keepalive_s = keepalive_s
        self._epsilon = activation_epsilon
        self._log = logger or logging.getLogger(__name__)
        published = set(store.metric_names)
        self._metrics = tuple(m for m in REPLICA_UNIT_METRICS if not published or m in published)
        """What a trigger may ask for: replica-unit metrics the store's workloads publish."""
        self._roles: dict[tuple[str, str], dict[str, str]] = {}
        """Per workload with roles (namespace, name), each role's target (store key); the
        configured workloads are fixed, so this is built once."""
        for entry in store.entries():
            info = entry.info
            role, group = info.labels.get("role"), info.labels.get("workload")
            if role is not None and group is not None:
                self._roles.setdefault((info.namespace, group), {})[role] = info.name
        self._lock = threading.Lock()
        self._streams: set[queue.SimpleQueue[bool | Exception | _Stop]] = set()
        self._closed = False

    # -- the four RPCs -------------------------------------------------------------------------

    # CamelCase names: the generated base class (and the .proto) name the RPCs.

    def IsActive(
        self, request: pb.ScaledObjectRef, context: grpc.ServicerContext
    ) -> pb.IsActiveResponse:
        return self._answer(
            context,
            "IsActive",
            lambda: pb.IsActiveResponse(result=self._activity(self._target(request))),
        )

    def GetMetricSpec(
        self, request: pb.ScaledObjectRef, context: grpc.ServicerContext
    ) -> pb.GetMetricSpecResponse:
        def spec() -> pb.GetMetricSpecResponse:
            target = self._target(request)
            self._entry(target)  # an unknown workload fails here, when KEDA builds the HPA
            return pb.GetMetricSpecResponse(
                metricSpecs=[
                    pb.MetricSpec(
                        metricName=target.metric,
                        targetSize=int(REPLICA_UNIT_TARGET),
                        targetSizeFloat=REPLICA_UNIT_TARGET,
                    )
                ]
            )

        return self._answer(context, "GetMetricSpec", spec)

    def GetMetrics(
        self, request: pb.GetMetricsRequest, context: grpc.ServicerContext
    ) -> pb.GetMetricsResponse:
        def metrics() -> pb.GetMetricsResponse:
            target = self._target(request.scaledObjectRef)
            entry = self._entry(target)
            metric = request.metricName or target.metric
            if metric not in self._metrics:
                raise UnknownMetric(
                    f"GetMetrics: metric {quoted(metric)} is not published by llm-autoscaler "
                    f"(published: {', '.join(self._metrics)})",
                    metric=metric,
                )
            value = metric_value(self._fresh(entry), metric)
            return pb.GetMetricsResponse(
                metricValues=[
                    pb.MetricValue(
                        metricName=metric,
                        metricValue=math.floor(value + 0.5),
                        metricValueFloat=value,
                    )
                ]
            )

        return self._answer(context, "GetMetrics", metrics)

    def StreamIsActive(
        self, request: pb.ScaledObjectRef, context: grpc.ServicerContext
    ) -> Iterator[pb.IsActiveResponse]:
        target = self._answer(context, "StreamIsActive", lambda: self._target(request))
        states: queue.SimpleQueue[bool | Exception | _Stop] = queue.SimpleQueue()

        def on_put(key: str) -> None:
            # The writer's thread: judge the state as of this write (so no transition is lost
            # to coalescing), hand it over, never block and never raise into the control loop.
            if key == target.workload:
                try:
                    states.put(self._activity(target))
                except Exception as exc:  # judged on the stream's own thread
                    states.put(exc)

        with self._lock:
            if self._closed:
                _abort(context, grpc.StatusCode.UNAVAILABLE, "the KEDA scaler is shutting down")
            self._streams.add(states)
        unsubscribe = self._store.subscribe(on_put)
        try:
            if not context.add_callback(lambda: states.put(_STOP)):
                return  # the RPC already ended
            last = self._answer(context, "StreamIsActive", lambda: self._activity(target))
            yield pb.IsActiveResponse(result=last)
            keepalive_at = time.monotonic() + self._keepalive_s
            while True:
                try:
                    item = states.get(timeout=max(0.0, keepalive_at - time.monotonic()))
                    keepalive = False
                except queue.Empty:  # keep-alive due: re-send the current state
                    item = self._answer(context, "StreamIsActive", lambda: self._activity(target))
                    keepalive = True
                if item is _STOP or not context.is_active():
                    return
                if isinstance(item, Exception):
                    self._fail(context, "StreamIsActive", item)
                if keepalive or item != last:
                    yield pb.IsActiveResponse(result=item)
                    last = item
                    keepalive_at = time.monotonic() + self._keepalive_s
        finally:
            unsubscribe()
            with self._lock:
                self._streams.discard(states)

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def open_streams(self) -> int:
        """``StreamIsActive`` calls in progress."""
        with self._lock:
            return len(self._streams)

    def close(self) -> None:
        """End every push stream cleanly and refuse new ones (server shutdown).

        A clean end (status OK) makes KEDA reconnect after its shortest back-off (2 s), to another
        replica behind the Service; an abrupt cancel would grow its back-off instead.
        """
        with self._lock:
            self._closed = True
            streams = list(self._streams)
        for states in streams:
            states.put(_STOP)

    # -- helpers -------------------------------------------------------------------------------

    def _target(self, ref: pb.ScaledObjectRef) -> ScalerTarget:
        target = parse_scaler_metadata(
            ref.namespace,
            ref.scalerMetadata,
            metrics=self._metrics,
            default_metric=DEFAULT_METRIC,
        )
        roles = self._roles.get((target.namespace, target.name))
        if target.role is None:
            if roles is not None:
                raise BadMetadata(
                    f"workload {target.workload} has roles ({', '.join(sorted(roles))}): add "
                    f"'{ROLE_KEY}: <role>' to the trigger's metadata, one ScaledObject per role",
                    key=ROLE_KEY,
                )
            return target
        if roles is None or target.role not in roles:
            raise UnknownWorkload(f"{target.workload} (role {target.role})")
        return replace(target, name=roles[target.role])

    def _entry(self, target: ScalerTarget) -> Entry:
        try:
            return self._store.get(target.workload)
        except KeyError:
            raise UnknownWorkload(target.workload) from None

    def _fresh(self, entry: Entry) -> Recommendation:
        return fresh_recommendation(
            entry, now=self._store.clock(), staleness_s=self._store.staleness_s
        )

    def _activity(self, target: ScalerTarget) -> bool:
        return is_active(self._fresh(self._entry(target)), epsilon=self._epsilon)

    def _answer(self, context: grpc.ServicerContext, rpc: str, compute: Callable[[], _T]) -> _T:
        """``compute()``, or the RPC ends with the status its error maps to."""
        try:
            return compute()
        except Exception as exc:
            self._fail(context, rpc, exc)

    def _fail(self, context: grpc.ServicerContext, rpc: str, exc: Exception) -> NoReturn:
        """Our errors become their status; anything else is logged and answered INTERNAL."""
        if isinstance(exc, ScalerError):
            self._log.debug("KEDA %s: %s", rpc, exc)
            _abort(context, status_code(exc), str(exc))
        self._log.error("KEDA %s failed", rpc, exc_info=exc)
        _abort(
            context,
            grpc.StatusCode.INTERNAL,
            f"{rpc}: internal error in the llm-autoscaler KEDA scaler (details in its log)",
        )


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
