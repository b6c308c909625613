"""The inference gateway's endpoint picker (EPP) as a signal source: demand where it arrives.

Every engine counter counts work when it is *served*; under overload it saturates at what the
fleet can do, so demand reads low exactly when it matters. Clusters that route through the Gateway
API Inference Extension (llm-d, GKE Inference Gateway, Istio / Envoy Gateway / kgateway with an
endpoint picker) have an EPP that sees every request before any model server does, and with flow
control on it holds requests in its own queue, which no model-server queue shows.

Names and labels, checked against the extension's own code and docs (never copied):

- kubernetes-sigs/gateway-api-inference-extension ``pkg/epp/metrics/metrics.go`` at
  04a97e67f7807b7daa14f220c25884eabfd80ea6 and ``site-src/guides/metrics-and-observability.md`` at
  03f9741b43c0fbe9f15a45f4f31f2765348b3520; the flow-control guide
  (``site-src/guides/flow-control.md``) at 807e05e4ed5983efa0b136ee624f0ee1fbf6ee7c; the request
  path in ``pkg/epp/handlers/server.go`` (several stored versions) and llm-d's router fork of
  ``metrics.go``.
- ``inference_objective_request_total`` (counter; labels ``model_name``, ``target_model_name``,
  ``priority`` in llm-d's fork): incremented once ``director.HandleRequest`` returned, i.e. after
  flow-control admission and scheduling. It counts requests *let through*, not arrivals: with
  flow control on, arrivals = its rate + the growth of the flow-control queue.
- ``inference_objective_input_tokens`` / ``..._output_tokens`` (histograms, same labels): observed
  from the response's ``usage`` when the response ends, so they give request *sizes* (``_sum /
  _count``), not an arrival rate; the policy multiplies the sizes by the arrival rate.
- ``inference_extension_flow_control_queue_size`` (gauge; ``fairness_id``, ``priority``,
  ``inference_pool``, ``model_name``, ``target_model_name``): requests inside the flow-control
  layer, from enqueue to their outcome. llm-d's router deprecates it for an ``llm_d_*`` twin
  but still exports it; the pool label was added after the flow-control layer first shipped.
- Before the ``InferenceModel`` -> ``InferenceObjective`` rename the first three were named
  ``inference_model_*``; both generations are read (``or``), as the engine profiles do.
- Not used: ``inference_pool_average_queue_size`` and ``..._kv_cache_utilization`` (label
  ``name``) repeat what the engines export per pod; ``inference_objective_running_requests``
  counts requests in flight through the gateway, engine queues included;
  ``inference_extension_flow_control_pool_saturation`` exists only in llm-d's fork.

The join. EPP series carry no ``workload`` label (and the request counter and token histograms
no pool label either: one EPP serves one InferencePool). A workload's :class:`GatewayConfig`
names the matchers its series must carry, the pool's name on a label the scrape config adds
(``deploy/examples/epp-podmonitor.yaml``) and/or any other labels (``job``, ``model_name``);
``namespace`` must be the workload's. The queries are grouped ``by`` the namespace label plus
the union of every workload's matcher keys, so one query per signal serves every workload
(their number never grows the query count), and each workload sums the rows that match it.
Ratios (mean tokens) are divided here, after summing, so that a workload made of several
objectives is weighted by their requests. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from autoscaler.config import GatewayConfig
from autoscaler.core.sample_checks import SampleLike, sample_problem
from autoscaler.engines.base import Series
from autoscaler.engines.promql import selector

__all__ = [
    "FIELDS",
    "FLOW_CONTROL_QUEUE",
    "INPUT_TOKENS",
    "INPUT_TOKEN_BUCKETS",
    "OUTPUT_TOKEN_BUCKETS",
    "OUTPUT_TOKENS",
    "REQUESTS",
    "GatewayJoin",
    "GatewayQuery",
    "GatewayRows",
    "build_gateway_queries",
    "gateway_signals",
]

INPUT_TOKEN_BUCKETS: Final[tuple[float, ...]] = (
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536, 131072,
    262144, 524288, 1048576,
)  # fmt: skip
"""The EPP's default input-token buckets (32778, not 32768, is theirs)."""
OUTPUT_TOKEN_BUCKETS: Final[tuple[float, ...]] = (
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
)  # fmt: skip

REQUESTS: Final = (
    Series("inference_objective_request_total"),
    Series("inference_model_request_total"),
)
INPUT_TOKENS: Final = (
    Series("inference_objective_input_tokens", buckets=INPUT_TOKEN_BUCKETS),
    Series("inference_model_input_tokens", buckets=INPUT_TOKEN_BUCKETS),
)
OUTPUT_TOKENS: Final = (
    Series("inference_objective_output_tokens", buckets=OUTPUT_TOKEN_BUCKETS),
    Series("inference_model_output_tokens", buckets=OUTPUT_TOKEN_BUCKETS),
)
FLOW_CONTROL_QUEUE: Final = (Series("inference_extension_flow_control_queue_size"),)

FIELDS: Final[tuple[str, ...]] = (
    "gateway_request_rate",
    "gateway_backlog",
    "gateway_backlog_growth_rate",
    "gateway_mean_prompt_tokens",
    "gateway_mean_output_tokens",
)
"""The :class:`~autoscaler.core.signals.SignalSnapshot` fields this source fills."""

_PROMPT_SUM, _PROMPT_COUNT = "gateway_prompt_tokens_sum", "gateway_prompt_tokens_count"
_OUTPUT_SUM, _OUTPUT_COUNT = "gateway_output_tokens_sum", "gateway_output_tokens_count"


@dataclass(frozen=True, slots=True)
class GatewayQuery:
    """One batched gateway query; ``field`` is a snapshot field or a part of a ratio."""

    field: str
    promql: str


@dataclass(frozen=True, slots=True)
class GatewayJoin:
    """What ties EPP series to one workload: its namespace and the config's matchers."""

    namespace: str
    matchers: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, namespace: str, config: GatewayConfig) -> GatewayJoin:
        return cls(namespace, tuple(sorted(config.matchers().items())))

    def matches(self, labels: Mapping[str, str], namespace_label: str) -> bool:
        if labels.get(namespace_label) != self.namespace:
            return False
        return all(labels.get(k) == v for k, v in self.matchers)


Row = SampleLike
"""One result row (the core's shape of a sample: this layer must not import the client)."""

GatewayRows = Mapping[str, Sequence[Row]]
"""Result rows of the gateway queries that answered, by :attr:`GatewayQuery.field`."""


def grouping(joins: Iterable[GatewayJoin], namespace_label: str = "namespace") -> tuple[str, ...]:
    """The ``by`` labels: the namespace, then every matcher key of any workload (sorted)."""
    keys = {k for j in joins for k, _ in j.matchers} - {namespace_label}
    return (namespace_label, *sorted(keys))


def build_gateway_queries(
    joins: Iterable[GatewayJoin],
    *,
    namespace_label: str = "namespace",
    window: str = "1m",
) -> tuple[GatewayQuery, ...]:
    """Seven queries for every gateway-fronted workload at once (none when there are none).

    The count is fixed; only the ``by`` list depends on the workloads (on their distinct matcher
    keys, not their number).
    """
    joins = list(joins)
    if not joins:
        return ()
    by = ", ".join(grouping(joins, namespace_label))

    def summed(series: Sequence[Series], suffix: str = "", fn: str = "rate") -> str:
        parts = [f"{fn}({selector(s, suffix)}[{window}])" if fn else selector(s, suffix)
                 for s in series]  # fmt: skip
        return f"sum by ({by}) ({' or '.join(parts)})"

    return (
        GatewayQuery("gateway_request_rate", summed(REQUESTS)),
        GatewayQuery(_PROMPT_SUM, summed(INPUT_TOKENS, "_sum")),
        GatewayQuery(_PROMPT_COUNT, summed(INPUT_TOKENS, "_count")),
        GatewayQuery(_OUTPUT_SUM, summed(OUTPUT_TOKENS, "_sum")),
        GatewayQuery(_OUTPUT_COUNT, summed(OUTPUT_TOKENS, "_count")),
        GatewayQuery("gateway_backlog", summed(FLOW_CONTROL_QUEUE, fn="")),
        GatewayQuery("gateway_backlog_growth_rate", summed(FLOW_CONTROL_QUEUE, fn="deriv")),
    )


@dataclass(frozen=True, slots=True)
class GatewaySignals:
    """One workload's gateway fields, the newest sample time, and rejected samples."""

    values: Mapping[str, float | None]
    newest: float
    rejected: tuple[str, ...]


def gateway_signals(
    joins: Mapping[str, GatewayJoin],
    rows: GatewayRows,
    *,
    namespace_label: str = "namespace",
) -> dict[str, GatewaySignals]:
    """Each workload's gateway fields from the rows of the queries that answered.

    A field is None when its query failed or no row matched the workload (no flow control
    configured: no backlog series), or when a matching sample was impossible (negative,
    infinite: listed in ``rejected``, and the sum it belonged to is not made up from the rest).
    """
    sums: dict[str, dict[str, float]] = defaultdict(dict)
    bad: dict[str, set[str]] = defaultdict(set)
    newest: dict[str, float] = {}
    rejected: dict[str, list[str]] = defaultdict(list)
    for field, samples in rows.items():
        for sample in samples:
            for key, join in joins.items():
                if not join.matches(sample.labels, namespace_label):
                    continue
                if math.isfinite(sample.timestamp):
                    newest[key] = max(newest.get(key, -math.inf), sample.timestamp)
                problem = sample_problem(field, sample.value)
                if problem is not None:
                    rejected[key].append(f"{field}={sample.value:g}: {problem}")
                    bad[key].add(field)
                elif not math.isnan(sample.value):
                    sums[key][field] = sums[key].get(field, 0.0) + sample.value
    out: dict[str, GatewaySignals] = {}
    for key in joins:
        got = {f: v for f, v in sums[key].items() if f not in bad[key]}
        values: dict[str, float | None] = {
            "gateway_request_rate": got.get("gateway_request_rate"),
            "gateway_backlog": got.get("gateway_backlog"),
            "gateway_backlog_growth_rate": got.get("gateway_backlog_growth_rate"),
            "gateway_mean_prompt_tokens": _ratio(got, _PROMPT_SUM, _PROMPT_COUNT),
            "gateway_mean_output_tokens": _ratio(got, _OUTPUT_SUM, _OUTPUT_COUNT),
        }
        out[key] = GatewaySignals(values, newest.get(key, -math.inf), tuple(rejected.get(key, ())))
    return out


def _ratio(got: Mapping[str, float], num: str, den: str) -> float | None:
    count = got.get(den)
    total = got.get(num)
    if count is None or total is None or count <= 0:
        return None
    return total / count
