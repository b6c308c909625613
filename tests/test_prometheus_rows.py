"""Instant vectors decoded straight into rows (the tick's fast path) read exactly what the general
path (decode to dicts, :class:`Sample` per row, then :func:`rows_of`) reads, on every body; what
the fast decoder does not take goes the general way, errors included."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.clients.prometheus import (
    PrometheusClient,
    PrometheusQueryError,
    PrometheusUnavailable,
    _parse_instant,
    json_loads,
)
from autoscaler.clients.prometheus_rows import (
    RowLabels,
    VectorRow,
    decode_vector,
    query_rows,
    rows_of,
)
from tests.test_prometheus_client import CannedPrometheus, Reply, prom  # noqa: F401 (fixture)

NAMES = RowLabels()


def as_tuples(rows: list[VectorRow]) -> list[tuple[Any, ...]]:
    """Rows as plain values; NaN as a string so that equal rows compare equal."""

    def num(x: float) -> float | str:
        return "nan" if math.isnan(x) else x

    return [
        (
            r.labels.namespace,
            r.labels.workload,
            r.labels.pod,
            r.labels.le,
            num(r.point[0]),
            num(r.point[1]),
        )
        for r in rows
    ]


def general(content: bytes, names: RowLabels = NAMES) -> list[VectorRow]:
    return rows_of(_parse_instant(json_loads(content)["data"], "q"), names)


def body(result: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}, **extra}
    ).encode()


LABEL = st.sampled_from(["namespace", "workload", "pod", "le", "model_name", "instance", "ns"])
VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=False).map(repr),
    st.sampled_from(["NaN", "-Inf", "0", "1e-300", "1e308", "0.1", "-0", "12345678901234567890"]),
)


@given(
    st.lists(
        st.tuples(
            st.dictionaries(LABEL, st.text(max_size=12), max_size=6),
            st.floats(min_value=0, max_value=2e9, allow_nan=False),
            VALUE,
        ),
        max_size=20,
    )
)
def test_the_fast_decoder_reads_what_the_general_path_reads(rows):
    content = body([{"metric": m, "value": [t, v]} for m, t, v in rows])
    fast = decode_vector(content, NAMES)
    assert fast is not None
    assert as_tuples(fast[0]) == as_tuples(general(content))


def test_other_label_names_are_read_by_their_names():
    names = RowLabels(namespace="kubernetes_namespace", workload="app", pod="pod_name")
    content = body(
        [
            {
                "metric": {"kubernetes_namespace": "a", "app": "w", "pod_name": "p", "le": "0.5"},
                "value": [10.0, "2"],
            },
            {"metric": {"namespace": "x", "workload": "y"}, "value": [10.0, "3"]},
        ]
    )
    fast = decode_vector(content, names)
    assert fast is not None
    assert as_tuples(fast[0]) == [
        ("a", "w", "p", "0.5", 10.0, 2.0),
        (None, None, None, None, 10.0, 3.0),
    ]
    assert as_tuples(fast[0]) == as_tuples(general(content, names))


def test_warnings_are_kept():
    fast = decode_vector(body([], warnings=["a store did not answer"]), NAMES)
    assert fast == ([], ["a store did not answer"])


@pytest.mark.parametrize(
    "content",
    [
        body([{"metric": {}, "value": [1.0, "+Inf"]}]),  # msgspec's lax floats do not read "+Inf"
        body([{"metric": {}, "value": [1.0, "garbage"]}]),
        body([{"value": [1.0, "1"]}]),  # no metric
        b'{"status":"success","data":{"resultType":"scalar","result":[1.0,"2"]}}',
        b'{"status":"error","errorType":"bad_data","error":"parse error"}',
        b"not json",
    ],
)
def test_what_the_fast_decoder_does_not_take_goes_the_general_way(content):
    assert decode_vector(content, NAMES) is None


def test_the_client_reads_plus_inf_the_general_way(prom, client_of_prom):  # noqa: F811
    result = [
        {"metric": {"namespace": "a", "workload": "w", "le": "+Inf"}, "value": [5.0, "+Inf"]},
        {"metric": {"namespace": "a", "workload": "w", "le": "1"}, "value": [5.0, "3"]},
    ]
    prom.replies["q"] = [Reply(body=json.loads(body(result)))]
    rows = client_of_prom.query_rows("q", NAMES, at=5.0)
    assert as_tuples(rows) == [
        ("a", "w", None, "+Inf", 5.0, math.inf),
        ("a", "w", None, "1", 5.0, 3.0),
    ]


def test_the_client_reports_bad_answers_as_the_general_path_does(prom, client_of_prom):  # noqa: F811
    prom.replies["bad"] = [Reply(body=json.loads(body([{"metric": {}, "value": [1, "x"]}])))]
    with pytest.raises(PrometheusUnavailable, match="non-numeric"):
        client_of_prom.query_rows("bad", NAMES)
    prom.replies["err"] = [Reply(status=400, body={"status": "error", "error": "parse error"})]
    with pytest.raises(PrometheusQueryError, match="parse error"):
        client_of_prom.query_rows("err", NAMES)


def test_a_client_without_rows_is_read_through_its_samples():
    class SamplesOnly:
        def query(self, promql: str, *, at: float | None = None, deadline: float | None = None):
            return _parse_instant(json_loads(body(result))["data"], promql)

        def query_range(self, promql: str, start: float, end: float, step: float) -> list[Any]:
            return []

    result = [{"metric": {"namespace": "a", "workload": "w", "x": "y"}, "value": [1.0, "4"]}]
    rows = query_rows(SamplesOnly(), "q", NAMES)
    assert as_tuples(rows) == [("a", "w", None, None, 1.0, 4.0)]


@pytest.fixture
def client_of_prom(prom):  # noqa: F811
    with PrometheusClient(prom.url, timeout_s=5.0, retries=0) as c:
        yield c
