"""The one module that talks to Prometheus: instant and range queries over its HTTP API.

Everything above this module sees only the narrow :class:`PrometheusAPI` Protocol, plain
:class:`Sample` / :class:`RangeSeries` values, and this module's own error tree::

    PrometheusError (LlmAutoscalerError)    anything that kept a query from answering
    ├── PrometheusUnavailable               connection refused, timeout, 429, 5xx (503 ...),
    │                                       a body that is not a Prometheus API response;
    │   │                                   raised after the retries are used up
    │   ├── PrometheusUnreachable           no connection at all (refused, reset, DNS)
    │   └── PrometheusSlow                  the caller's ``deadline`` passed (no retry past it)
    └── PrometheusQueryError                400/422 or ``"status": "error"``: the query itself is
                                            bad; ``.error`` is Prometheus' ``error`` text

Other HTTP statuses (401, 403, 404: a wrong URL or credentials) raise the base
:class:`PrometheusError` without retrying. The cause (``requests`` exception, JSON error) is
chained with ``raise ... from e``.

Retries with back-off happen here and nowhere else: ``retries`` extra attempts (default 2) on
:class:`PrometheusUnavailable` conditions only, sleeping ``backoff_s`` doubled per attempt and
capped at ``max_backoff_s`` (0.2 s, 0.4 s, ..., at most 1 s), or the server's ``Retry-After``
(seconds or an HTTP date) when it sends one, capped at ``max_retry_after_s``. A bad query is never
retried. Every request has a ``timeout_s`` (connect and read).

Why ``requests`` and not ``prometheus_api_client.PrometheusConnect``: ``custom_query`` raises one
``PrometheusApiClientException`` whose only content is the string
``"HTTP Status Code 400 (b'...')"``, so telling a bad query (do not retry, show Prometheus' own
``error`` text) from an unavailable server would mean parsing that string back; and its session
mounts its own urllib3 ``Retry`` adapter, which would retry 5xx a second time underneath ours and
turn exhausted retries into ``RetryError`` without the status. ``custom_query_range`` also wants
``datetime`` bounds and returns untyped dicts. The HTTP surface we need is two POST endpoints, so
talking to it with ``requests`` directly keeps status codes, ``Retry-After`` and the error text
in our hands. Queries are sent as a form body (POST), which Prometheus accepts for both endpoints
and which keeps long batched PromQL out of URL length limits.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, Protocol, TypedDict, overload

import msgspec
import numpy as np
import numpy.typing as npt
import requests

from autoscaler.clients.prometheus_rows import RowLabels, VectorRow, decode_vector, rows_of
from autoscaler.errors import LlmAutoscalerError

__all__ = [
    "PrometheusAPI",
    "PrometheusClient",
    "PrometheusError",
    "PrometheusQueryError",
    "PrometheusSlow",
    "PrometheusUnavailable",
    "PrometheusUnreachable",
    "RangeSeries",
    "RawData",
    "RawMatrixSeries",
    "RawResponse",
    "RawVectorSample",
    "Sample",
]

log = logging.getLogger(__name__)

_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_QUERY_STATUSES: Final = frozenset({400, 422})


# -- wire payloads (https://prometheus.io/docs/prometheus/latest/querying/api/) -----------------


class RawVectorSample(TypedDict):
    """One element of an instant ``vector`` result: ``{"metric": {...}, "value": [ts, "v"]}``."""

    metric: dict[str, str]
    value: tuple[float, str]


class RawMatrixSeries(TypedDict):
    """One element of a ``matrix`` result: ``{"metric": {...}, "values": [[ts, "v"], ...]}``."""

    metric: dict[str, str]
    values: list[tuple[float, str]]


class RawData(TypedDict):
    """``data`` of a successful response. ``result`` depends on ``resultType``: a list of
    :class:`RawVectorSample` (vector), of :class:`RawMatrixSeries` (matrix), or one
    ``[ts, "v"]`` pair (scalar, string)."""

    resultType: Literal["vector", "matrix", "scalar", "string"]
    result: Any


class _RawResponseBase(TypedDict):
    status: Literal["success", "error"]


class RawResponse(_RawResponseBase, total=False):
    """The envelope of every API response."""

    data: RawData
    errorType: str
    error: str
    warnings: list[str]


# -- values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant query's result. ``value`` keeps NaN and ±Inf as floats."""

    labels: Mapping[str, str]
    timestamp: float
    value: float


@dataclass(slots=True)
class TimeSpent:
    """Seconds a client spent so far: waiting for HTTP answers and decoding them."""

    fetch_s: float = 0.0
    decode_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One series of a range query: equally long ``timestamps`` (s) and ``values`` arrays."""

    labels: Mapping[str, str]
    timestamps: npt.NDArray[np.float64] = field(repr=False)
    values: npt.NDArray[np.float64] = field(repr=False)


# -- errors ----------------------------------------------------------------------------------


class PrometheusError(LlmAutoscalerError):
    """A query did not produce a result. ``status`` is the HTTP status, if one was received."""

    def __init__(self, message: str, *, promql: str = "", status: int | None = None) -> None:
        self.promql = promql
        self.status = status
        super().__init__(message)


class PrometheusUnavailable(PrometheusError):
    """Prometheus could not be reached or answered with a server error (after retries).

    ``retry_after_s`` is the server's ``Retry-After``, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        promql: str = "",
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, promql=promql, status=status)


class PrometheusUnreachable(PrometheusUnavailable):
    """No connection at all (refused, DNS, reset): every other query would fail the same way,
    unlike a timeout or a 503, which can be one heavy query's trouble."""


class PrometheusSlow(PrometheusUnavailable):
    """The caller's deadline (a tick's budget) passed before Prometheus answered: no retry."""


class PrometheusQueryError(PrometheusError):
    """Prometheus rejected the query; ``error`` and ``error_type`` are its own words."""

    def __init__(
        self,
        error: str,
        *,
        promql: str = "",
        status: int | None = None,
        error_type: str = "",
    ) -> None:
        self.error = error
        self.error_type = error_type
        kind = f" ({error_type})" if error_type else ""
        super().__init__(
            f"Prometheus rejected the query{kind}: {error}", promql=promql, status=status
        )


# -- the seam --------------------------------------------------------------------------------


class PrometheusAPI(Protocol):
    """What the service needs from Prometheus. Implementations raise :class:`PrometheusError`."""

    def query(
        self, promql: str, *, at: float | None = None, deadline: float | None = None
    ) -> list[Sample]:
        """Evaluate ``promql`` at ``at`` (Unix seconds; ``None``: the server's now).

        ``deadline`` (``time.monotonic()`` seconds) bounds the call, retries included: past it
        the call raises :class:`PrometheusSlow` instead of waiting or retrying.
        """
        ...

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[RangeSeries]:
        """Evaluate ``promql`` every ``step`` seconds from ``start`` to ``end`` (Unix seconds)."""
        ...


# -- the HTTP client -------------------------------------------------------------------------


class PrometheusClient:
    """:class:`PrometheusAPI` over HTTP with ``requests``. Close it (or use ``with``).

    ``sleep`` is the one seam for the back-off's waiting, so tests never really wait.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        max_backoff_s: float = 1.0,
        max_retry_after_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        decode: Callable[[bytes], Any] | None = None,
        partial_response: bool | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self._sleep = sleep
        self._clock = clock
        self._decode = decode or json_loads
        self.partial_response = partial_response
        """Thanos Querier's ``partial_response`` form parameter (None: not sent, the querier's
        default; Prometheus and Mimir ignore it). False: a store that does not answer fails the
        query (the tick holds); True: the answer leaves that store's series out."""
        self.spent = TimeSpent()
        """Cumulative seconds in HTTP and in decoding (the loop's per-stage timings)."""
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        if headers:
            self._session.headers.update(headers)

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def query(
        self, promql: str, *, at: float | None = None, deadline: float | None = None
    ) -> list[Sample]:
        form = {"query": promql}
        if at is not None:
            form["time"] = _fmt_time(at)
        if self.partial_response is not None:
            form["partial_response"] = "true" if self.partial_response else "false"
        data = self._request("/api/v1/query", form, promql, deadline)
        started = time.perf_counter()
        try:
            return _parse_instant(data, promql)
        finally:
            self.spent.decode_s += time.perf_counter() - started

    def query_rows(
        self,
        promql: str,
        names: RowLabels,
        *,
        at: float | None = None,
        deadline: float | None = None,
    ) -> list[VectorRow]:
        """As :meth:`query`, decoded straight into rows (:mod:`~.prometheus_rows`): the tick's
        batched queries, some 800,000 rows at 10,000 workloads, four to five times faster."""
        form = {"query": promql}
        if at is not None:
            form["time"] = _fmt_time(at)
        if self.partial_response is not None:
            form["partial_response"] = "true" if self.partial_response else "false"
        data = self._request(
            "/api/v1/query", form, promql, deadline, fast=lambda b: decode_vector(b, names)
        )
        if isinstance(data, list):
            return data
        started = time.perf_counter()
        try:
            return rows_of(_parse_instant(data, promql), names)
        finally:
            self.spent.decode_s += time.perf_counter() - started

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[RangeSeries]:
        form = {
            "query": promql,
            "start": _fmt_time(start),
            "end": _fmt_time(end),
            "step": _fmt_time(step),
        }
        if self.partial_response is not None:
            form["partial_response"] = "true" if self.partial_response else "false"
        data = self._request("/api/v1/query_range", form, promql)
        started = time.perf_counter()
        try:
            return _parse_range(data, promql)
        finally:
            self.spent.decode_s += time.perf_counter() - started

    # -- internals ---------------------------------------------------------------------------

    @overload
    def _request(
        self, path: str, form: Mapping[str, str], promql: str, deadline: float | None = None
    ) -> RawData: ...

    @overload
    def _request(
        self,
        path: str,
        form: Mapping[str, str],
        promql: str,
        deadline: float | None = None,
        *,
        fast: _Fast,
    ) -> RawData | list[VectorRow]: ...

    def _request(
        self,
        path: str,
        form: Mapping[str, str],
        promql: str,
        deadline: float | None = None,
        *,
        fast: _Fast | None = None,
    ) -> RawData | list[VectorRow]:
        attempt = 0
        while True:
            timeout = self.timeout_s
            if deadline is not None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise PrometheusSlow(
                        "the deadline passed before the query was sent", promql=promql
                    )
                timeout = min(timeout, remaining)
            try:
                return self._attempt(path, form, promql, timeout, fast)
            except PrometheusUnavailable as exc:
                late = deadline is not None and self._clock() >= deadline
                if late and not isinstance(exc, PrometheusUnreachable):
                    raise PrometheusSlow(
                        f"no answer within the deadline ({exc})", promql=promql, status=exc.status
                    ) from exc
                if attempt >= self.retries:
                    raise
                delay = self._delay(attempt, exc)
                if deadline is not None and self._clock() + delay >= deadline:
                    raise  # a retry would end past the deadline: give the caller its time back
                attempt += 1
                log.warning(
                    "Prometheus unavailable (%s); retry %d/%d in %.2fs",
                    exc,
                    attempt,
                    self.retries,
                    delay,
                )
                self._sleep(delay)

    def _delay(self, attempt: int, exc: PrometheusUnavailable) -> float:
        if exc.retry_after_s is not None:
            return float(min(max(exc.retry_after_s, 0.0), self.max_retry_after_s))
        return float(min(self.backoff_s * 2.0**attempt, self.max_backoff_s))

    def _attempt(
        self,
        path: str,
        form: Mapping[str, str],
        promql: str,
        timeout_s: float | None = None,
        fast: _Fast | None = None,
    ) -> RawData | list[VectorRow]:
        """One HTTP request. ``fast`` decodes a 200 answer's rows straight away when it can;
        anything it does not take goes the general way (errors, warnings, other results)."""
        url = self.url + path
        timeout = self.timeout_s if timeout_s is None else timeout_s
        started = time.perf_counter()
        try:
            response = self._session.post(url, data=dict(form), timeout=timeout)
        except requests.Timeout as e:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} did not answer within {timeout:.3g}s",
                promql=promql,
            ) from e
        except requests.RequestException as e:
            raise PrometheusUnreachable(
                f"cannot reach Prometheus at {self.url}: {type(e).__name__}", promql=promql
            ) from e
        with response:
            content = response.content
            decoding = time.perf_counter()
            self.spent.fetch_s += decoding - started
            status = response.status_code
            if fast is not None and status == 200:
                found = fast(content)
                if found is not None:
                    self.spent.decode_s += time.perf_counter() - decoding
                    rows, warnings = found
                    for warning in warnings:
                        log.warning("Prometheus warning for %r: %s", promql, warning)
                    return rows
            body = _json_body(content, self._decode)
            self.spent.decode_s += time.perf_counter() - decoding
            if status in _RETRY_STATUSES:
                raise PrometheusUnavailable(
                    f"Prometheus at {self.url} answered HTTP {status}"
                    + (f": {body['error']}" if body and "error" in body else ""),
                    promql=promql,
                    status=status,
                    retry_after_s=_retry_after(response.headers.get("Retry-After")),
                )
            if status in _QUERY_STATUSES or (status == 200 and body and body["status"] == "error"):
                error = body.get("error", "") if body else response.text[:500]
                raise PrometheusQueryError(
                    error or f"HTTP {status}",
                    promql=promql,
                    status=status,
                    error_type=body.get("errorType", "") if body else "",
                )
            if status != 200:
                raise PrometheusError(
                    f"Prometheus at {self.url} answered HTTP {status} for {path}",
                    promql=promql,
                    status=status,
                )
            if body is None or "data" not in body:
                raise PrometheusUnavailable(
                    f"{url} did not return a Prometheus API response", promql=promql, status=status
                )
            for warning in body.get("warnings", ()):
                log.warning("Prometheus warning for %r: %s", promql, warning)
            return body["data"]


_Fast = Callable[[bytes], "tuple[list[VectorRow], list[str]] | None"]
"""A typed decoder of a 200 answer (rows and warnings), None for what it does not take."""


def json_loads(content: bytes) -> Any:
    """The JSON decoder of Prometheus answers: msgspec's, the fastest of the standard library,
    orjson and msgspec on a 10,000-workload tick's 89 MB of bodies (2.2 s, 2.0 s and 1.7 s on a
    loaded 2-core machine; ``benchmarks/loop_tick.py --decoders``)."""
    return msgspec.json.decode(content)  # its DecodeError is a ValueError, as json's is


def _json_body(content: bytes, decode: Callable[[bytes], Any]) -> RawResponse | None:
    try:
        body = decode(content)
    except ValueError:  # json.JSONDecodeError and orjson.JSONDecodeError are ValueErrors
        return None
    if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
        return None
    result: RawResponse = body  # type: ignore[assignment]
    return result


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _fmt_time(t: float) -> str:
    if not math.isfinite(t):
        raise ValueError(f"not a finite time: {t}")
    return repr(float(t))


def _value(raw: str | float, promql: str) -> float:
    try:
        return float(raw)  # "NaN", "+Inf", "-Inf" parse as the IEEE values
    except (TypeError, ValueError) as e:
        raise PrometheusUnavailable(
            f"Prometheus returned a non-numeric sample value {raw!r}", promql=promql
        ) from e


def _parse_instant(data: RawData, promql: str) -> list[Sample]:
    kind = data.get("resultType")
    result = data.get("result")
    try:
        if kind == "vector":
            try:
                # a 10,000-workload tick decodes ~800,000 rows: no per-row call past float();
                # the decoded label dict is this sample's own (nothing else holds it)
                return [
                    Sample(r["metric"], float(r["value"][0]), float(r["value"][1])) for r in result
                ]
            except (ValueError, KeyError):  # a garbage value, or no "metric": the slow path
                pass  # says which
            return [
                Sample(
                    labels=dict(r.get("metric", {})),
                    timestamp=float(r["value"][0]),
                    value=_value(r["value"][1], promql),
                )
                for r in result
            ]
        if kind == "scalar":
            return [Sample(labels={}, timestamp=float(result[0]), value=_value(result[1], promql))]
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise PrometheusUnavailable(
            f"malformed {kind} result from Prometheus", promql=promql
        ) from e
    raise PrometheusQueryError(
        f"expected an instant vector or scalar, got resultType {kind!r}", promql=promql
    )


def _parse_range(data: RawData, promql: str) -> list[RangeSeries]:
    kind = data.get("resultType")
    if kind != "matrix":
        raise PrometheusQueryError(
            f"expected a range vector (matrix), got resultType {kind!r}", promql=promql
        )
    out = []
    try:
        for r in data["result"]:
            pairs = r["values"]
            out.append(
                RangeSeries(
                    labels=dict(r.get("metric", {})),
                    timestamps=np.array([float(p[0]) for p in pairs], dtype=np.float64),
                    values=np.array([_value(p[1], promql) for p in pairs], dtype=np.float64),
                )
            )
    except (KeyError, IndexError, TypeError) as e:
        raise PrometheusUnavailable("malformed matrix result from Prometheus", promql=promql) from e
    return out
