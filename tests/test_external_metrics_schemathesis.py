"""Fuzz the metrics JSON API against its own OpenAPI document (schemathesis), over real TLS.

The server runs in-process on 127.0.0.1 in a background event loop (schemathesis calls are
synchronous); every response must be documented, match its schema, and never be a 500.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from autoscaler.core.current_autoscaler import CurrentAutoscaler
from autoscaler.live.store import WorkloadInfo
from external_metrics.app import create_api_app, start_https
from external_metrics.json_api import openapi_document
from tests.external_metrics_support import Clock, make_pki, make_store, put_fresh, put_hold

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    clock = Clock()
    store = make_store(
        [
            WorkloadInfo("llm", "llama-70b", {"workload": "llama-70b"}),
            WorkloadInfo("llm", "held", {"workload": "held"}),
            WorkloadInfo("llm", "never", {"workload": "never"}),
            WorkloadInfo("team-b", "shadowed", {"workload": "shadowed"}, shadow=True),
        ],
        clock,
    )
    put_fresh(store, "llm/llama-70b")
    put_fresh(store, "llm/held")
    put_hold(store, "llm/held", "Prometheus unreachable")
    put_fresh(store, "team-b/shadowed")
    store.set_current("team-b/shadowed", CurrentAutoscaler("HorizontalPodAutoscaler", "s", 2, None))

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="api-under-fuzz", daemon=True)
    thread.start()
    app = create_api_app(store, None)
    ctx = pki.server_context(verify_clients=False)
    runner, port = asyncio.run_coroutine_threadsafe(
        start_https(app, ctx, host="127.0.0.1", port=0), loop
    ).result(timeout=10)
    try:
        yield f"https://127.0.0.1:{port}", str(pki.server_ca)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_json_api_conforms_to_its_openapi(case, server):
    base, ca = server
    response = case.call_and_validate(base_url=base, verify=ca)
    assert response.status_code < 500


@pytest.mark.parametrize(
    ("namespace", "name", "status"),
    [
        ("llm", "llama-70b", 200),
        ("llm", "held", 503),
        ("llm", "never", 503),
        ("team-b", "shadowed", 200),
        ("llm", "unknown", 404),
    ],
)
def test_documented_answers_validate_against_the_schema(server, namespace, name, status):
    base, ca = server
    case = schema["/v1/workloads/{namespace}/{name}"]["GET"].Case(
        path_parameters={"namespace": namespace, "name": name}
    )
    # a 503 is this API's documented "not fresh" answer, not a server failure
    excluded = [not_a_server_error] if status == 503 else []
    response = case.call_and_validate(base_url=base, verify=ca, excluded_checks=excluded)
    assert response.status_code == status


def test_workload_list_validates_against_the_schema(server):
    base, ca = server
    response = schema["/v1/workloads"]["GET"].Case().call_and_validate(base_url=base, verify=ca)
    assert response.status_code == 200
    assert len(response.json()["workloads"]) == 4
