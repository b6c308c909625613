"""Batched PromQL for an engine profile: one query per signal for ALL workloads at once.

Every query is grouped ``by (namespace, workload)``, so a tick issues the same number of queries
for 10 or 10,000 workloads; the collector splits the result vectors by those two labels. Label
names are configurable (:class:`GroupingLabels`). Engines do not export a ``workload`` label:
a relabel rule on the scrape config (e.g. a ``PodMonitor`` ``relabelings`` entry copying
``__meta_kubernetes_pod_label_app_kubernetes_io_name`` or the pod's owner label to
``workload``) must supply it. Pure functions, no I/O.

Shapes (``W`` = ``namespace, workload``; ``[1m]`` = the rate window):

- counter: ``sum by (W) (rate(<counter>[1m]))``
- histogram: ``histogram_quantile(q, sum by (W, le) (rate(<h>_bucket[1m])))``; q = 0.95 for e2e,
  0.9 otherwise; prompt size also gets the mean ``rate(<h>_sum) / rate(<h>_count)``; TTFT, prompt
  size and per-request TPOT also get their buckets, ``sum by (W, le) (rate(<h>_bucket[1m]))``
  (the observed SLO attainment, :mod:`autoscaler.core.attainment`)
- gauge: ``sum by (W) (<g>)``; KV usage ``avg by (W)`` and ``max by (W)``; queue growth
  ``sum by (W) (deriv(<waiting>[1m]))``; per-replica vectors ``by (W, pod)``
- DCGM: framebuffer used and free summed by ``W``, usage ``avg by (W) (used / (used + free))``
- a latency without histograms (``Series.mean_of``, Triton's microsecond counters): the mean per
  request, ``sum by (W) (rate(<duration>[1m])) / sum by (W) (rate(<requests>[1m])) * scale``;
  a gauge that is a share (``Series.divide_by``, TGI's token pool): ``avg by (W) (a / b)``
- GPU memory of an engine's replicas (``gpu_memory=`` the DCGM profile): each GPU's
  ``used / (used + free)`` joined to the replica that holds it ``on (namespace, pod)`` - the
  labels dcgm-exporter adds with Kubernetes pod mapping - through one of the engine's
  per-replica gauges, which carries ``workload``; per replica its fullest GPU
  (``max by (W, pod)``), then ``avg`` and ``max`` of those by ``W``. GPUs no pod holds
  (``pod=""``) match no replica. Without pod mapping, a replica gets its node's fullest GPU: the
  GPU's node (``node`` or dcgm-exporter's ``Hostname``) joined to the pod's through
  kube-state-metrics' ``kube_pod_info``.

A signal with several series (two generations of names) is still one query. Counters and gauges
put ``or`` inside the aggregation (``sum by (W) (rate(a[1m]) or rate(b[1m]))``) so that during a
rolling upgrade replicas of both generations are summed. Histograms join whole quantile queries
with ``or`` (the first generation present for a workload wins) so that bucket sets are never mixed;
mid-upgrade, a workload's latency quantile reads only its new-generation replicas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from autoscaler.engines.base import EngineProfile, Series, Signal


@dataclass(frozen=True, slots=True)
class GroupingLabels:
    """Label names the queries group by: ``namespace``, ``workload`` and (per replica) ``pod``."""

    namespace: str = "namespace"
    workload: str = "workload"
    pod: str = "pod"

    def by(self, *extra: str) -> str:
        return ", ".join((self.namespace, self.workload, *extra))


@dataclass(frozen=True, slots=True)
class Query:
    """One batched query: ``field`` is the :class:`~autoscaler.core.signals.SignalSnapshot` field it
    fills (or ``gpu_memory_*`` for DCGM); ``signal`` is the profile signal it reads."""

    field: str
    signal: Signal
    promql: str


MEAN_FIELDS: dict[Signal, str] = {
    Signal.QUEUE_TIME: "queue_time_mean_s",
    Signal.E2E: "e2e_mean_s",
}
"""Latency signals an engine may export as cumulative duration counters (:attr:`Series.mean_of`)
instead of histograms: the snapshot field of their mean per request."""

HISTOGRAM_FIELDS: dict[Signal, tuple[str, float]] = {
    Signal.TTFT: ("ttft_p90_s", 0.9),
    Signal.TPOT: ("tpot_p90_s", 0.9),
    Signal.E2E: ("e2e_p95_s", 0.95),
    Signal.QUEUE_TIME: ("queue_time_p90_s", 0.9),
    Signal.PROMPT_TOKENS: ("p90_prompt_tokens", 0.9),
}
BUCKET_FIELDS: dict[Signal, str] = {
    Signal.TTFT: "ttft_buckets",
    Signal.PROMPT_TOKENS: "prompt_buckets",
    Signal.REQUEST_TPOT: "tpot_buckets",
}
"""Histograms whose buckets themselves are read (the observed SLO attainment, per ``le``)."""
COUNTER_FIELDS: dict[Signal, str] = {
    Signal.REQUEST_RATE: "request_rate",
    Signal.PROMPT_TOKENS_RATE: "prompt_tokens_rate",
    Signal.GENERATION_TOKENS_RATE: "generation_tokens_rate",
    Signal.PREEMPTIONS: "preemption_rate",
}


def selector(series: Series, suffix: str = "", extra: Mapping[str, str] | None = None) -> str:
    """``name{a="b",...,c=~"d"}``: the series' own (equality) matchers, then ``extra``, which are
    regular-expression matchers (label to RE2 pattern, fully anchored as Prometheus anchors
    them): a shard's ``namespace=~"team-a|team-b"``; a literal pattern is plain equality."""
    own = [f'{k}="{_escape(v)}"' for k, v in series.matchers]
    inner = ",".join([*own, *(f'{k}=~"{_escape(v)}"' for k, v in sorted((extra or {}).items()))])
    name = series.name + suffix
    return f"{name}{{{inner}}}" if inner else name


def _share(series: Series, extra: Mapping[str, str] | None) -> str:
    """A gauge's selector, or ``(a / b)`` for a share (:attr:`Series.divide_by`)."""
    sel = selector(series, extra=extra)
    if not series.divide_by:
        return sel
    return f"({sel} / {selector(Series(series.divide_by, series.matchers), extra=extra)})"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _unique(series: Iterable[Series]) -> list[Series]:
    """Drop alternatives that give the same query (same name and matchers, other buckets)."""
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    out = []
    for s in series:
        key = (s.name, s.matchers)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def _either(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else " or ".join(f"({p})" for p in parts)


def _first_present(parts: list[str], by: str) -> str:
    """``a or (b unless on (W) a)``: per workload, the rows of the first generation that has
    any. Plain ``or`` matches whole label sets, ``le`` included, so two generations with
    different bucket bounds would be merged into one mixed histogram."""
    out = parts[0]
    for part in parts[1:]:
        out = f"({out}) or (({part}) unless on ({by}) ({out}))"
    return out


def build_queries(
    profile: EngineProfile,
    labels: GroupingLabels | None = None,
    window: str = "1m",
    extra_matchers: Mapping[str, str] | None = None,
    *,
    gpu_memory: EngineProfile | None = None,
) -> tuple[Query, ...]:
    """The batched queries of one tick for every workload served by ``profile``'s engine.

    The result depends only on the profile, labels, window and matchers, never on how many
    workloads there are. Signals in ``profile.missing`` produce no query. ``gpu_memory`` is the
    profile that exports GPU framebuffer use (dcgm-exporter): given, three more queries join it
    to the engine's replicas (:func:`gpu_memory_queries`).
    """
    lb = labels or GroupingLabels()
    w = lb.by()
    out: list[Query] = []

    def each(signal: Signal, template: str, suffix: str = "") -> str:
        """Histograms: one whole query per generation joined by ``or`` (never mix buckets)."""
        parts = [
            template.format(sel=selector(s, suffix, extra_matchers))
            for s in _unique(profile.series(signal))
        ]
        return _either(parts)

    def inner(signal: Signal, agg: str, fn: str = "", by: str = w) -> str:
        """Counters and gauges: ``or`` inside the aggregation, so replicas of both generations
        of names (a rolling upgrade) are summed together."""
        sels = [_share(s, extra_matchers) for s in _unique(profile.series(signal))]
        args = [f"{fn}({sel}[{window}])" if fn else sel for sel in sels]
        return f"{agg} by ({by}) ({' or '.join(args)})"

    for signal in profile.exported():
        means = [s for s in _unique(profile.series(signal)) if s.mean_of]
        if means and signal in MEAN_FIELDS:
            parts = [
                f"sum by ({w}) (rate({selector(s, extra=extra_matchers)}[{window}])) / "
                f"sum by ({w}) (rate({selector(Series(s.mean_of), extra=extra_matchers)}"
                f"[{window}]))" + (f" * {s.scale:g}" if s.scale != 1.0 else "")
                for s in means
            ]
            out.append(Query(MEAN_FIELDS[signal], signal, _either(parts)))
        elif signal in COUNTER_FIELDS:
            q = inner(signal, "sum", "rate")
            out.append(Query(COUNTER_FIELDS[signal], signal, q))
        elif signal in HISTOGRAM_FIELDS:
            name, quantile = HISTOGRAM_FIELDS[signal]
            q = each(
                signal,
                f"histogram_quantile({quantile}, sum by ({lb.by('le')}) (rate({{sel}}[{window}])))",
                "_bucket",
            )
            out.append(Query(name, signal, q))
            if signal is Signal.PROMPT_TOKENS:
                parts = [
                    f"sum by ({w}) (rate({selector(s, '_sum', extra_matchers)}[{window}])) / "
                    f"sum by ({w}) (rate({selector(s, '_count', extra_matchers)}[{window}]))"
                    for s in _unique(profile.series(signal))
                ]
                out.append(Query("mean_prompt_tokens", signal, _either(parts)))
        if signal in BUCKET_FIELDS:
            parts = [
                f"sum by ({lb.by('le')}) (rate({selector(s, '_bucket', extra_matchers)}[{window}]))"
                for s in _unique(profile.series(signal))
            ]
            out.append(Query(BUCKET_FIELDS[signal], signal, _first_present(parts, w)))
        if signal is Signal.WAITING:
            out.append(Query("waiting", signal, inner(signal, "sum")))
            out.append(
                Query(
                    "waiting_growth_rate",
                    signal,
                    inner(signal, "sum", "deriv"),
                )
            )
            per_pod = inner(signal, "sum", by=lb.by(lb.pod))
            out.append(Query("per_replica_waiting", signal, per_pod))
        elif signal is Signal.RUNNING:
            out.append(Query("running", signal, inner(signal, "sum")))
            per_pod = inner(signal, "sum", by=lb.by(lb.pod))
            out.append(Query("per_replica_running", signal, per_pod))
        elif signal is Signal.KV_USAGE:
            out.append(Query("kv_usage", signal, inner(signal, "avg")))
            out.append(Query("kv_usage_max", signal, inner(signal, "max")))
            per_pod = inner(signal, "avg", by=lb.by(lb.pod))
            out.append(Query("per_replica_kv_usage", signal, per_pod))
        elif signal in (Signal.GPU_MEMORY_USED, Signal.GPU_MEMORY_FREE):
            q = inner(signal, "sum")
            out.append(Query(f"{signal.value}_mib", signal, q))
    if not {Signal.GPU_MEMORY_USED, Signal.GPU_MEMORY_FREE} & profile.missing:
        used = selector(profile.gpu_memory_used[0], extra=extra_matchers)
        free = selector(profile.gpu_memory_free[0], extra=extra_matchers)
        q = f"avg by ({w}) ({used} / ({used} + {free}))"
        out.append(Query("gpu_memory_usage", Signal.GPU_MEMORY_USED, q))
    if gpu_memory is not None:
        out.extend(gpu_memory_queries(profile, gpu_memory, lb, extra_matchers))
    return tuple(out)


REPLICA_GAUGES: tuple[Signal, ...] = (Signal.RUNNING, Signal.WAITING, Signal.KV_USAGE)
"""Per-replica gauges, in order of preference, that carry the ``workload`` label a DCGM row lacks:
every engine exports at least one of them for each replica it runs."""


def gpu_memory_queries(
    engine: EngineProfile,
    gpu_memory: EngineProfile,
    labels: GroupingLabels | None = None,
    extra_matchers: Mapping[str, str] | None = None,
) -> tuple[Query, ...]:
    """GPU framebuffer use of ``engine``'s replicas: per replica, fleet mean and fleet max.

    dcgm-exporter labels each GPU with the ``namespace`` and ``pod`` it is allocated to (its
    Kubernetes pod mapping) but knows no ``workload``; ``group by (namespace, pod, workload)``
    of one of the engine's per-replica gauges is 1 for each replica and carries ``workload``,
    so ``* on (namespace, pod) group_left (workload)`` files every GPU under its replica without
    a Kubernetes call. A replica with several GPUs (tensor parallel) counts its fullest one,
    which is where an allocation fails first. Empty when either profile lacks the series.

    Without pod mapping (the exporter not given the kubelet's pod-resources socket) a GPU is
    known only by its node, so a replica whose pod has no mapped GPU gets the fullest GPU of its
    node (:func:`_gpu_memory_by_node`). That is exact for a replica that owns its node, and an
    over-estimate where other tenants share it: the memory guard it feeds only ever adds
    replicas, and only with a growing queue.
    """
    lb = labels or GroupingLabels()
    gauges = [s for s in REPLICA_GAUGES if engine.series(s)]
    if not gauges or {Signal.GPU_MEMORY_USED, Signal.GPU_MEMORY_FREE} & gpu_memory.missing:
        return ()
    used = selector(gpu_memory.gpu_memory_used[0], extra=extra_matchers)
    free = selector(gpu_memory.gpu_memory_free[0], extra=extra_matchers)
    replica = " or ".join(
        selector(s, extra=extra_matchers) for s in _unique(engine.series(gauges[0]))
    )
    replicas = f"group by ({lb.by(lb.pod)}) ({replica})"
    per_gpu = (
        f"({used} / ({used} + {free})) * on ({lb.namespace}, {lb.pod}) group_left ({lb.workload}) "
        f"{replicas}"
    )
    mapped = f"max by ({lb.by(lb.pod)}) ({per_gpu})"
    per_pod = f"{mapped} or {_gpu_memory_by_node(used, free, replicas, lb)}"
    w = lb.by()
    return (
        Query("per_replica_gpu_memory_usage", Signal.GPU_MEMORY_USED, per_pod),
        Query("gpu_memory_usage", Signal.GPU_MEMORY_USED, f"avg by ({w}) ({per_pod})"),
        Query("gpu_memory_usage_max", Signal.GPU_MEMORY_USED, f"max by ({w}) ({per_pod})"),
    )


POD_NODE_SERIES = "kube_pod_info"
"""kube-state-metrics' pod series: its ``node`` label is where the pod was scheduled (empty
while it is pending)."""

GPU_NODE_LABEL = "Hostname"
"""dcgm-exporter's host label: the node's name when the exporter runs with ``NODE_NAME`` set from
the downward API (its Helm chart and the GPU operator do), else the exporter pod's own name, which
matches no node, so the node join finds nothing rather than a wrong node."""


def _with_matcher(sel: str, matcher: str) -> str:
    """``sel`` with one more matcher (``selector`` writes equality matchers only)."""
    return f"{sel[:-1]},{matcher}}}" if sel.endswith("}") else f"{sel}{{{matcher}}}"


def _gpu_memory_by_node(used: str, free: str, replicas: str, lb: GroupingLabels) -> str:
    """Per replica, the fullest GPU of its node: the GPU -> pod join without pod mapping.

    A GPU's node is the scrape's ``node`` label where a relabel rule set one, else the
    exporter's ``Hostname``; a replica's node is kube-state-metrics' ``kube_pod_info``. Only
    pods with no mapped GPU use it (the caller puts it after ``or``).
    """

    def share(matcher: str) -> str:
        u, f = _with_matcher(used, matcher), _with_matcher(free, matcher)
        return f"({u} / ({u} + {f}))"

    labelled, unlabelled = share('node!=""'), share('node=""')
    gpu_node = (
        f"max by (node) ({labelled}) or max by (node) "
        f'(label_replace({unlabelled}, "node", "$1", "{GPU_NODE_LABEL}", "(.+)"))'
    )
    pods = f'{POD_NODE_SERIES}{{node!=""}}'
    for ours, theirs in ((lb.pod, "pod"), (lb.namespace, "namespace")):
        if ours != theirs:
            pods = f'label_replace({pods}, "{ours}", "$1", "{theirs}", "(.+)")'
    placed = (
        f"{replicas} * on ({lb.namespace}, {lb.pod}) group_left (node) "
        f"group by ({lb.namespace}, {lb.pod}, node) ({pods})"
    )
    return f"max by ({lb.by(lb.pod)}) (({gpu_node}) * on (node) group_right () ({placed}))"


def build_fleet_queries(
    engine_by_workload: Mapping[str, EngineProfile],
    labels: GroupingLabels | None = None,
    window: str = "1m",
    extra_matchers: Mapping[str, str] | None = None,
    *,
    gpu_memory: EngineProfile | None = None,
) -> dict[str, tuple[Query, ...]]:
    """Queries for a whole fleet, keyed by engine name: one query set per distinct engine.

    ``engine_by_workload`` maps each workload to its profile; the count of queries depends on
    the number of distinct engines only. ``gpu_memory`` as in :func:`build_queries`.
    """
    engines = {p.name: p for p in engine_by_workload.values()}
    return {
        name: build_queries(engines[name], labels, window, extra_matchers, gpu_memory=gpu_memory)
        for name in sorted(engines)
    }
