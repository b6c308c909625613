"""What every emulated exporter's collector builds its metric families with.

The engines' collectors (:mod:`autoscaler.emulation.exposition`) and the ones beside them
(:mod:`autoscaler.emulation.side_exporters`) read the same :data:`SampleSource` and write
histograms the same way (cumulative buckets, Go's float formatting, as ``prometheus_client``
writes them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from autoscaler.emulation.stepper import HistogramState, ReplicaSample

__all__ = ["Families", "SampleSource", "go_float", "histogram_buckets", "one"]

SampleSource = Callable[[], Sequence[tuple[dict[str, str], ReplicaSample]]]
"""Returns, at scrape time, each replica's sample with the extra labels to attach to it."""


go_float: Callable[[float], str] = floatToGoString  # untyped in prometheus_client


def histogram_buckets(h: HistogramState) -> list[tuple[str, float]]:
    cum = h.counts.cumsum().tolist()
    les = [go_float(b) for b in h.bounds.tolist()] + ["+Inf"]
    return [(le, float(c)) for le, c in zip(les, cum, strict=True)]


class Families:
    """Metric families of one scrape: every series gets ``base`` labels, then the extra ones."""

    def __init__(
        self,
        rows: Sequence[tuple[dict[str, str], ReplicaSample]],
        base: dict[str, str],
        created: float | None = None,
    ) -> None:
        self.rows = rows
        self.extra = sorted(rows[0][0]) if rows else []
        self.base = base
        self.created = created

    def _labels(self, labels: dict[str, str], more: dict[str, str]) -> dict[str, str]:
        return {**self.base, **more, **{k: labels[k] for k in self.extra}}

    def gauge(
        self,
        name: str,
        doc: str,
        values: Callable[[ReplicaSample], Iterable[tuple[dict[str, str], float]]],
    ) -> Metric:
        fam = Metric(name, doc, "gauge")
        for labels, s in self.rows:
            for more, value in values(s):
                fam.add_sample(name, self._labels(labels, more), float(value))
        return fam

    def counter(
        self,
        name: str,
        doc: str,
        get: Callable[[ReplicaSample], float],
        *,
        total: bool = False,
        more: dict[str, str] | None = None,
    ) -> Metric:
        """A counter; exposed without ``_total`` (TGI, Triton) unless ``total`` (Python engines).
        ``more``: labels of this family only (vLLM's ``finished_reason``)."""
        fam = Metric(name, doc, "counter")
        sample = name + "_total" if total else name
        for labels, s in self.rows:
            fam.add_sample(sample, self._labels(labels, more or {}), float(get(s)))
        return fam

    def histogram(
        self,
        name: str,
        doc: str,
        get: Callable[[ReplicaSample], HistogramState],
        more: dict[str, str] | None = None,
    ) -> Metric:
        fam = Metric(name, doc, "histogram")
        extra = more or {}
        for labels, s in self.rows:
            h = get(s)
            for le, count in histogram_buckets(h):
                fam.add_sample(name + "_bucket", self._labels(labels, {**extra, "le": le}), count)
            fam.add_sample(name + "_sum", self._labels(labels, extra), h.total)
            fam.add_sample(name + "_count", self._labels(labels, extra), float(h.count))
        return fam


def one(
    get: Callable[[ReplicaSample], float],
) -> Callable[[ReplicaSample], list[tuple[dict[str, str], float]]]:
    return lambda s: [({}, get(s))]
