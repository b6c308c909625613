"""The aggregated ``external.metrics.k8s.io/v1beta1`` API, as the kube-aggregator and HPA call it.

Routes (PROTOCOLS.md §1.1):

- ``GET /apis/external.metrics.k8s.io/v1beta1``: the ``APIResourceList``, one entry per metric
  name in ``store.metric_names`` (the aggregator's availability check and legacy discovery);
- ``GET /apis`` and ``GET /apis/external.metrics.k8s.io``: the plain ``APIGroupList`` /
  ``APIGroup``. The aggregator asks ``/apis`` for aggregated discovery (v2) first; any reply that
  is not of that type makes it fall back to the ``APIResourceList`` above, so the plain list is
  the simplest answer that is correct for both the aggregator and ``kubectl``;
- ``GET /openapi/v2``, ``/openapi/v3[/...]``: 404, which the aggregator logs and skips (we
  publish no OpenAPI for this group; the JSON API has its own at ``/v1/openapi.json``);
- ``GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=...``: the
  ``ExternalMetricValueList`` the HPA sums.

The value request is answered from the store only (never computed here), in this order:
unknown metric -> 404; unparsable selector -> 400 with the parser's message; a selector that
picks no workload, or more than one, in the path's namespace -> 400 that says which (the HPA
would sum them); a workload whose data is stale or missing -> 503 (the HPA then holds its
replica count: never a made-up value); otherwise exactly one item, in milli-units.

The HPA asks the same questions every sync period, so the answers are memoised
(:mod:`external_metrics.response_cache`): which workload a ``(namespace, query)`` names, and the
serialised 200 body per store entry and metric, served again only while that entry is the
store's current one and still fresh. Errors are always computed anew.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from autoscaler.live.store import Entry, Freshness, WorkloadInfo
from external_metrics import quantity, selectors
from external_metrics.appkeys import INDEX, STORE
from external_metrics.response_cache import ResponseCache
from external_metrics.status import StatusError, json_body_response, json_bytes, json_response

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
PREFIX = f"/apis/{GROUP_VERSION}"
METRIC_ROUTE = f"{PREFIX}/namespaces/{{namespace}}/{{metric}}"
"""The one resource path: its route's canonical form is how auth recognises a metric read."""
VALUE_KIND = "ExternalMetricValueList"
RESPONSES = web.AppKey("responses", ResponseCache)
"""Pre-serialised answers of the metric and ``/v1`` reads (``create_api_app`` makes one)."""


def routes() -> list[web.RouteDef]:
    return [
        web.get("/apis", api_group_list),
        web.get(f"/apis/{GROUP}", api_group),
        web.get(PREFIX, api_resource_list),
        web.get(METRIC_ROUTE, external_metric_value),
        web.get("/openapi/v2", no_openapi),
        web.get("/openapi/v3", no_openapi),
        web.get("/openapi/v3/{path:.*}", no_openapi),
    ]


def _group_doc() -> dict[str, Any]:
    version = {"groupVersion": GROUP_VERSION, "version": VERSION}
    return {"name": GROUP, "versions": [version], "preferredVersion": version}


async def api_group_list(request: web.Request) -> web.Response:
    return json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_doc()]})


async def api_group(request: web.Request) -> web.Response:
    return json_response({"kind": "APIGroup", "apiVersion": "v1", **_group_doc()})


async def api_resource_list(request: web.Request) -> web.Response:
    """One resource per metric name; an empty list is valid (nothing configured yet)."""
    resources = [
        {
            "name": name,
            "singularName": "",
            "namespaced": True,
            "kind": VALUE_KIND,
            "verbs": ["get"],
        }
        for name in request.app[STORE].metric_names
    ]
    return json_response(
        {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": GROUP_VERSION,
            "resources": resources,
        }
    )


async def no_openapi(request: web.Request) -> web.Response:
    raise StatusError(404, f"no OpenAPI document is served at {request.path}")


async def external_metric_value(request: web.Request) -> web.Response:
    """One item for the workload the selector names; its bytes come from the response cache
    while the store entry behind them is unchanged and fresh (:mod:`.response_cache`)."""
    app = request.app
    store = app[STORE]
    match = request.match_info
    namespace = match["namespace"]
    metric = match["metric"]
    if metric not in store.metric_names:
        served = ", ".join(store.metric_names) or "none"
        raise StatusError(
            404,
            f'external metric "{metric}" is not served here (served: {served})',
            details={"name": metric, "group": GROUP, "kind": metric},
        )
    responses = app[RESPONSES]
    query = request.rel_url.raw_query_string
    key = responses.selection(namespace, query)
    if key is None:
        key = _select(request, namespace, metric).key
        responses.remember_selection(namespace, query, key)
    entry = store.get(key)
    now = store.clock()
    staleness_s = store.staleness_s
    body = responses.metric_body(key, entry, metric, now=now, staleness_s=staleness_s)
    if body is None:
        body = metric_value_body(entry, metric, now=now, staleness_s=staleness_s)
        responses.put_metric_body(key, entry, metric, body)
    return json_body_response(body)


def metric_value_body(entry: Entry, metric: str, *, now: float, staleness_s: float) -> bytes:
    """The ``ExternalMetricValueList`` of one fresh workload, serialised; a 503 Status if not
    fresh. Depends on the entry and on ``now`` only through freshness (what the cache relies on).
    """
    value = _fresh_value(entry, metric, now=now, staleness_s=staleness_s)
    assert entry.last_good is not None  # a fresh entry has one
    item = {
        "metricName": metric,
        "metricLabels": dict(entry.info.labels),
        "timestamp": rfc3339(entry.last_good.timestamp),
        "value": value,
    }
    return json_bytes(
        {"kind": VALUE_KIND, "apiVersion": GROUP_VERSION, "metadata": {}, "items": [item]}
    )


def _select(request: web.Request, namespace: str, metric: str) -> WorkloadInfo:
    """Parse the request's ``labelSelector`` and find its one workload, or a 400 saying why."""
    try:
        selector = selectors.parse(request.query.get("labelSelector", ""))
    except selectors.SelectorError as exc:
        raise StatusError(400, str(exc)) from exc
    return _one_workload(request, namespace, selector, metric)


def _one_workload(
    request: web.Request, namespace: str, selector: selectors.Selector, metric: str
) -> WorkloadInfo:
    """The single workload the selector names in ``namespace``, or a 400 saying why not."""
    matched = request.app[INDEX].select(namespace, selector)
    if len(matched) == 1:
        return matched[0]
    shown = f'"{selector}"' if not selector.empty else "(empty)"
    if matched:
        names = ", ".join(w.name for w in matched[:5]) + (", ..." if len(matched) > 5 else "")
        raise StatusError(
            400,
            f"label selector {shown} matches {len(matched)} workloads in namespace "
            f'"{namespace}" ({names}); it must select exactly one, because the HPA sums '
            f'every item it gets for "{metric}" (add a label such as the workload name)',
        )
    elsewhere = [
        entry.info.key
        for entry in request.app[STORE].entries()
        if entry.info.namespace != namespace and selector.matches(entry.info.labels)
    ]
    hint = f"; it matches {', '.join(elsewhere[:5])} in other namespaces" if elsewhere else ""
    raise StatusError(
        400,
        f'label selector {shown} matches no workload in namespace "{namespace}"{hint}; '
        "it must select exactly one workload, in the namespace of the path",
    )


def _fresh_value(entry: Entry, metric: str, *, now: float, staleness_s: float) -> str:
    """The metric's Quantity string, or a 503 Status when there is nothing fresh to serve."""
    key = entry.info.key
    details = {"name": key, "group": GROUP, "kind": metric}
    freshness = entry.freshness(now, staleness_s)
    if freshness is not Freshness.FRESH:
        why = not_fresh_reason(entry, freshness, now=now, staleness_s=staleness_s)
        raise StatusError(
            503,
            f"no fresh value for workload {key}: {why}; the HPA keeps its replica count",
            details=details,
        )
    value = entry.metric(metric)
    if value is None:
        raise StatusError(
            503,
            f'workload {key} has no value for "{metric}" in its last recommendation '
            f"(policy {entry.last_good.winner if entry.last_good else '?'})",
            details=details,
        )
    try:
        return quantity.format_milli(value)
    except quantity.QuantityError as exc:
        raise StatusError(503, f'workload {key}: "{metric}" {exc}', details=details) from exc


def not_fresh_reason(entry: Entry, freshness: Freshness, *, now: float, staleness_s: float) -> str:
    """Why a workload has no value to serve, in words for an HPA event or a person."""
    held = ""
    if entry.latest is not None and entry.latest.holds:
        detail = entry.latest.candidates[0].detail if entry.latest.candidates else ""
        held = f"the last tick held ({detail or 'no reason given'})"
    if freshness is Freshness.NO_DATA:
        return f"no recommendation yet, {held}" if held else "no recommendation yet"
    age = f"the last good value is {entry.age_s(now):.0f} s old (bound {staleness_s:.0f} s)"
    return f"{held}; {age}" if held else f"stale: {age}"


def rfc3339(timestamp: float) -> str:
    """Seconds since the epoch as ``metav1.Time`` writes it (UTC, whole seconds, ``Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
