"""The real HTTP client against a local aiohttp server answering canned Prometheus JSON.

The server runs in a background thread with its own event loop; the client is synchronous.
Back-off sleeps go through the client's ``sleep`` seam and are recorded, never waited.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from autoscaler.clients.prometheus import (
    PrometheusClient,
    PrometheusError,
    PrometheusQueryError,
    PrometheusUnavailable,
)


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class CannedPrometheus:
    """Answers ``replies[query]`` in order (the last one repeats); records every form seen."""

    url: str = ""
    replies: dict[str, list[Reply]] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)
    tenants: list[str | None] = field(default_factory=list)
    """The ``X-Scope-OrgID`` header of every request (None: not sent)."""

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.seen.append({"path": request.path, **form})
        self.tenants.append(request.headers.get("X-Scope-OrgID"))
        queue = self.replies.get(form.get("query", ""), [Reply(404, "no canned reply")])
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        text = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
        return web.Response(
            status=reply.status, text=text, content_type="application/json", headers=reply.headers
        )


@pytest.fixture
def prom() -> Iterator[CannedPrometheus]:
    canned = CannedPrometheus()
    app = web.Application()
    app.router.add_post("/api/v1/query", canned.handle)
    app.router.add_post("/api/v1/query_range", canned.handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    canned.url = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield canned
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(prom: CannedPrometheus, sleeps: list[float]) -> Iterator[PrometheusClient]:
    with PrometheusClient(prom.url, timeout_s=5.0, sleep=sleeps.append) as c:
        yield c


def vector(*rows: tuple[dict[str, str], float, str]) -> dict[str, Any]:
    result = [{"metric": m, "value": [ts, v]} for m, ts, v in rows]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_empty_result_is_an_empty_list(prom, client):
    prom.replies["up"] = [Reply(body=vector())]
    assert client.query("up", at=1000.5) == []
    assert prom.seen == [{"path": "/api/v1/query", "query": "up", "time": "1000.5"}]


def test_several_series_keep_their_labels_timestamps_and_values(prom, client):
    q = "sum by (namespace, workload) (rate(x[1m]))"
    prom.replies[q] = [
        Reply(
            body=vector(
                ({"namespace": "a", "workload": "w1"}, 1000.0, "1.5"),
                ({"namespace": "a", "workload": "w2"}, 1000.0, "+Inf"),
                ({"namespace": "b", "workload": "w1"}, 999.0, "0"),
            )
        )
    ]
    samples = client.query(q)
    assert [(dict(s.labels), s.timestamp, s.value) for s in samples] == [
        ({"namespace": "a", "workload": "w1"}, 1000.0, 1.5),
        ({"namespace": "a", "workload": "w2"}, 1000.0, math.inf),
        ({"namespace": "b", "workload": "w1"}, 999.0, 0.0),
    ]
    assert "time" not in prom.seen[0]


def test_nan_is_kept_as_nan(prom, client):
    prom.replies["histogram_quantile(0.9, idle)"] = [Reply(body=vector(({}, 1.0, "NaN")))]
    (sample,) = client.query("histogram_quantile(0.9, idle)")
    assert math.isnan(sample.value)


def test_a_scalar_result_is_one_unlabelled_sample(prom, client):
    body = {"status": "success", "data": {"resultType": "scalar", "result": [5.0, "2"]}}
    prom.replies["1+1"] = [Reply(body=body)]
    (sample,) = client.query("1+1")
    assert (dict(sample.labels), sample.timestamp, sample.value) == ({}, 5.0, 2.0)


def test_a_range_query_gives_numpy_arrays(prom, client):
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"workload": "w"}, "values": [[10, "1"], [25, "NaN"], [40, "3"]]}
            ],
        },
    }
    prom.replies["rate(x[1m])"] = [Reply(body=body)]
    (series,) = client.query_range("rate(x[1m])", start=10.0, end=40.0, step=15.0)
    assert dict(series.labels) == {"workload": "w"}
    np.testing.assert_array_equal(series.timestamps, [10.0, 25.0, 40.0])
    np.testing.assert_array_equal(series.values, [1.0, np.nan, 3.0])
    assert series.values.dtype == np.float64
    assert prom.seen[0] == {
        "path": "/api/v1/query_range",
        "query": "rate(x[1m])",
        "start": "10.0",
        "end": "40.0",
        "step": "15.0",
    }


@pytest.mark.parametrize("status", [400, 422])
def test_a_bad_query_raises_query_error_with_prometheus_text_and_is_not_retried(
    prom, client, sleeps, status
):
    error = 'parse error: unexpected "}" in label matching'
    body = {"status": "error", "errorType": "bad_data", "error": error}
    prom.replies["up{"] = [Reply(status, body)]
    with pytest.raises(PrometheusQueryError) as info:
        client.query("up{")
    assert info.value.error == error
    assert info.value.error_type == "bad_data"
    assert info.value.status == status and info.value.promql == "up{"
    assert error in str(info.value)
    assert len(prom.seen) == 1 and sleeps == []


def test_503_then_200_is_retried_with_back_off(prom, client, sleeps):
    prom.replies["up"] = [
        Reply(503, "Service Unavailable"),
        Reply(503, {"status": "error", "errorType": "unavailable", "error": "busy"}),
        Reply(body=vector(({"job": "x"}, 1.0, "1"))),
    ]
    assert [s.value for s in client.query("up")] == [1.0]
    assert len(prom.seen) == 3
    assert sleeps == [0.2, 0.4]


def test_retry_after_is_honoured(prom, client, sleeps):
    prom.replies["up"] = [Reply(503, "", {"Retry-After": "0.7"}), Reply(body=vector())]
    assert client.query("up") == []
    assert sleeps == [0.7]


def test_retry_after_is_capped(prom, sleeps):
    prom.replies["up"] = [Reply(429, "", {"Retry-After": "3600"}), Reply(body=vector())]
    with PrometheusClient(prom.url, max_retry_after_s=2.0, sleep=sleeps.append) as c:
        assert c.query("up") == []
    assert sleeps == [2.0]


def test_persistent_5xx_raises_unavailable_after_bounded_retries(prom, client, sleeps):
    prom.replies["up"] = [Reply(500, {"status": "error", "error": "internal"})]
    with pytest.raises(PrometheusUnavailable, match="HTTP 500: internal") as info:
        client.query("up")
    assert info.value.status == 500
    assert len(prom.seen) == 3 and sleeps == [0.2, 0.4]


def test_backoff_is_capped_at_one_second(prom, sleeps):
    prom.replies["up"] = [Reply(502, "bad gateway")]
    with PrometheusClient(prom.url, retries=4, sleep=sleeps.append) as c:
        with pytest.raises(PrometheusUnavailable):
            c.query("up")
    assert sleeps == [0.2, 0.4, 0.8, 1.0]


def test_a_wrong_url_is_a_prometheus_error_but_not_unavailable(prom, sleeps):
    with PrometheusClient(prom.url + "/nothing-here", sleep=sleeps.append) as c:
        with pytest.raises(PrometheusError) as info:
            c.query("up")
    assert type(info.value) is PrometheusError and info.value.status == 404
    assert sleeps == []


def test_a_non_prometheus_body_is_unavailable(prom, client):
    prom.replies["up"] = [Reply(200, "<html>login</html>")]
    with pytest.raises(PrometheusUnavailable, match="not return a Prometheus API response"):
        client.query("up")


def test_connection_refused_raises_unavailable_chained_from_requests(sleeps):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with PrometheusClient(f"http://127.0.0.1:{port}", timeout_s=5.0, sleep=sleeps.append) as c:
        with pytest.raises(PrometheusUnavailable, match="cannot reach Prometheus") as info:
            c.query("up")
    assert info.value.__cause__ is not None
    assert info.value.status is None
    assert sleeps == [0.2, 0.4]


def test_a_timeout_raises_unavailable(prom, sleeps):
    prom.replies["slow"] = [Reply(body=vector(), delay_s=1.0)]
    with PrometheusClient(prom.url, timeout_s=0.1, retries=0, sleep=sleeps.append) as c:
        with pytest.raises(PrometheusUnavailable, match="did not answer within 0.1s"):
            c.query("slow")


@pytest.mark.parametrize("partial", [True, False])
def test_thanos_partial_response_is_sent_when_configured(prom, partial):
    prom.replies["up"] = [Reply(body=vector())]
    with PrometheusClient(prom.url, partial_response=partial) as c:
        c.query("up", at=1000.0)
    assert prom.seen[-1]["partial_response"] == ("true" if partial else "false")


def test_no_partial_response_parameter_unless_configured(prom, client):
    prom.replies["up"] = [Reply(body=vector())]
    client.query("up", at=1000.0)
    assert "partial_response" not in prom.seen[-1]


def test_the_configured_timeout_and_partial_response_reach_the_client():
    from autoscaler.config import GlobalConfig

    service = GlobalConfig(prometheus_timeout_s=30.0, prometheus_partial_response=False)
    assert (service.prometheus_timeout_s, service.prometheus_partial_response) == (30.0, False)
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="prometheus_timeout_s"):
            GlobalConfig(prometheus_timeout_s=bad)


def test_fetch_and_decode_time_are_counted(prom, client):
    prom.replies["up"] = [Reply(body=vector(({"a": "b"}, 1000.0, "1")))]
    client.query("up", at=1000.0)
    assert client.spent.fetch_s > 0 and client.spent.decode_s > 0


def test_a_garbage_sample_value_is_a_malformed_answer_not_a_crash(prom, client):
    prom.replies["up"] = [Reply(body=vector(({"a": "b"}, 1000.0, "1"), ({"a": "c"}, 1000.0, "x")))]
    with pytest.raises(PrometheusUnavailable, match="non-numeric"):
        client.query("up", at=1000.0)


@pytest.mark.parametrize("tenant", [None, "team-a", "team-a|team-b"])
def test_the_configured_mimir_tenant_is_sent_with_every_query(prom, tenant):
    from autoscaler.cli.serve_assembly import prometheus_client
    from autoscaler.clients.prometheus_rows import RowLabels
    from autoscaler.config import GlobalConfig

    prom.replies["up"] = [Reply(body=vector())]
    service = GlobalConfig(prometheus_url=prom.url, prometheus_tenant=tenant)
    with prometheus_client(service) as c:
        c.query("up", at=1000.0)
        c.query_rows("up", RowLabels(), at=1000.0)
    assert prom.tenants == [tenant, tenant]


@pytest.mark.parametrize("bad", ["", "team a", "team\nX-Other: 1", "t" * 151, "team/a"])
def test_a_tenant_mimir_would_refuse_is_a_config_error(bad):
    from autoscaler.config import GlobalConfig

    with pytest.raises(ValueError, match="prometheus_tenant"):
        GlobalConfig(prometheus_tenant=bad)
