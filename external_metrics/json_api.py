"""The metrics JSON API on the HTTPS port: what we recommend, why, and how fresh it is.

For people (``curl``, dashboards) and for KEDA's ``metrics-api`` trigger:

- ``GET /v1/workloads[?namespace=ns]``: every configured workload, fresh or not, each with its
  ``freshness`` and ``age_s`` (always 200: a person wants to see what was last known);
- ``GET /v1/workloads/{namespace}/{name}``: one workload; **503 Status when it is not fresh**,
  with the last known document in ``details.lastKnown``. KEDA's ``metrics-api`` reads a number
  at ``valueLocation`` from a 2xx body and errors on anything else, so answering 503 is what
  keeps it from acting on a stale or made-up value (it then keeps the replica count, or uses the
  ScaledObject's ``fallback``). Use ``valueLocation: metrics.llm_desired_replicas`` with
  ``targetValue: "1"`` (the value is already in replica units);
- ``GET /v1/openapi.json``: the OpenAPI 3 document of these endpoints.

Field names are snake_case, like the Python types they come from. Numbers that are not finite
(a held candidate's ``nan``, an ``inf`` age) are ``null``: JSON has no NaN. Every value comes
from the store's immutable entries (``Entry.snapshot``, ``Entry.current`` ...): nothing is
computed on a request beyond the age and the shadow difference. A fresh workload's document is
serialised once per store entry (:mod:`external_metrics.response_cache`); each request then only
splices in its current ``age_s``, so KEDA-rate polling does not re-encode unchanged data.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from autoscaler.core.current_autoscaler import CurrentAutoscaler
from autoscaler.core.recommendation import Recommendation
from autoscaler.core.signals import ReplicaCounts, SignalSnapshot
from autoscaler.live.store import Entry, Freshness
from external_metrics.appkeys import STORE
from external_metrics.metrics_api import RESPONSES, not_fresh_reason, rfc3339
from external_metrics.response_cache import split_around
from external_metrics.status import StatusError, json_body_response, json_bytes, json_response

WORKLOADS_PATH = "/v1/workloads"
WORKLOAD_ROUTE = "/v1/workloads/{namespace}/{name}"
OPENAPI_PATH = "/v1/openapi.json"
AGE_FIELD = "age_s"
"""The one member of a fresh workload's document that changes with the clock alone."""


def routes() -> list[web.RouteDef]:
    return [
        web.get(WORKLOADS_PATH, list_workloads),
        web.get(WORKLOAD_ROUTE, get_workload),
        web.get(OPENAPI_PATH, openapi),
    ]


async def list_workloads(request: web.Request) -> web.Response:
    store = request.app[STORE]
    now = store.clock()
    namespace = request.query.get("namespace")
    docs = [
        workload_doc(entry, now=now, staleness_s=store.staleness_s)
        for entry in store.entries()
        if namespace is None or entry.info.namespace == namespace
    ]
    return json_response({"workloads": docs, "staleness_s": store.staleness_s})


async def get_workload(request: web.Request) -> web.Response:
    """One workload's document; its bytes come from the response cache (with the current
    ``age_s`` spliced in) while the store entry behind them is unchanged and fresh."""
    app = request.app
    store = app[STORE]
    match = request.match_info
    key = f"{match['namespace']}/{match['name']}"
    try:
        entry = store.get(key)
    except KeyError:
        raise StatusError(
            404,
            f'workload "{key}" is not configured here (GET {WORKLOADS_PATH} lists them)',
            details={"name": key, "kind": "workload"},
        ) from None
    now = store.clock()
    staleness_s = store.staleness_s
    responses = app[RESPONSES]
    body = responses.workload_body(key, entry, now=now, staleness_s=staleness_s)
    if body is None:
        prefix, age, suffix = fresh_workload_parts(entry, now=now, staleness_s=staleness_s)
        responses.put_workload_parts(key, entry, prefix, suffix)
        body = prefix + age + suffix
    return json_body_response(body)


def fresh_workload_parts(
    entry: Entry, *, now: float, staleness_s: float
) -> tuple[bytes, bytes, bytes]:
    """The serialised document of a fresh workload cut around its ``age_s`` value (the only
    part of a 200 answer that moves with the clock); a 503 Status when it is not fresh."""
    doc = workload_doc(entry, now=now, staleness_s=staleness_s)
    freshness = entry.freshness(now, staleness_s)
    if freshness is not Freshness.FRESH:
        key = entry.info.key
        why = not_fresh_reason(entry, freshness, now=now, staleness_s=staleness_s)
        raise StatusError(
            503,
            f"workload {key} has no fresh recommendation: {why} (details.lastKnown has the rest)",
            details={"name": key, "kind": "workload", "lastKnown": doc},
        )
    prefix, suffix = split_around(doc, AGE_FIELD)
    return prefix, json_bytes(doc[AGE_FIELD]), suffix


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


# --- documents ---------------------------------------------------------------------------------


def workload_doc(entry: Entry, *, now: float, staleness_s: float) -> dict[str, Any]:
    """Everything the JSON API says about one workload (pure: the entry and the time in)."""
    info, good = entry.info, entry.last_good
    age = entry.age_s(now)
    ours = good.desired_replicas if good is not None else None
    current = entry.current
    theirs = current.desired_replicas if current is not None else None
    return {
        "key": info.key,
        "namespace": info.namespace,
        "name": info.name,
        "labels": dict(info.labels),
        "engine": info.engine,
        "guards": {guard: list(reads) for guard, reads in info.guards.items()},
        "freshness": entry.freshness(now, staleness_s).value,
        AGE_FIELD: _finite(age),
        "updated_at": rfc3339(entry.updated_at) if math.isfinite(entry.updated_at) else None,
        "desired_replicas": ours,
        "winner": good.winner if good is not None else None,
        "metrics": _finite_map({m.name: m.value for m in good.metrics}) if good else {},
        "recommendation": recommendation_doc(good) if good is not None else None,
        "latest": recommendation_doc(entry.latest) if entry.latest is not None else None,
        "signals": _plain(dataclasses.asdict(entry.snapshot)) if entry.snapshot else None,
        "shadow": {
            "enabled": info.shadow,
            "current_autoscaler": _plain(dataclasses.asdict(current)) if current else None,
            "ours": ours,
            "theirs": theirs,
            "difference": ours - theirs if ours is not None and theirs is not None else None,
        },
    }


def recommendation_doc(rec: Recommendation) -> dict[str, Any]:
    return {
        "timestamp": _finite(rec.timestamp),
        "time": rfc3339(rec.timestamp) if math.isfinite(rec.timestamp) else None,
        "desired_replicas": rec.desired_replicas,
        "winner": rec.winner,
        "holds": rec.holds,
        "stale": rec.stale,
        "candidates": [
            {"reason": c.reason, "replicas": _finite(c.replicas), "detail": c.detail}
            for c in rec.candidates
        ],
        "metrics": _finite_map({m.name: m.value for m in rec.metrics}),
        "fallbacks": list(rec.fallbacks),
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _finite_map(values: Mapping[str, float]) -> dict[str, float | None]:
    return {k: _finite(v) for k, v in values.items()}


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` output made JSON-safe: tuples to lists, non-finite floats to null."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --- OpenAPI -----------------------------------------------------------------------------------


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null, in OpenAPI 3.1 (plain JSON Schema) terms."""
    if "type" in schema:
        kind = schema["type"]
        kinds = list(kind) if isinstance(kind, list) else [kind]
        return {**schema, "type": kinds if "null" in kinds else [*kinds, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _dataclass_schema(cls: type[Any]) -> dict[str, Any]:
    """The JSON schema of a dataclass as :func:`_plain` renders it (from its type hints)."""
    hints = typing.get_type_hints(cls)
    props = {f.name: _type_schema(hints[f.name]) for f in dataclasses.fields(cls)}
    return {
        "type": "object",
        "required": sorted(props),
        "properties": props,
        "additionalProperties": False,
    }


def _type_schema(tp: Any) -> dict[str, Any]:
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _nullable(_type_schema(inner[0])) if len(inner) == 1 else {}
    if typing.get_origin(tp) is tuple:
        return {"type": "array", "items": _type_schema(args[0])}
    if tp is float:
        return _nullable({"type": "number"})  # a non-finite float is rendered as null
    simple = {int: "integer", bool: "boolean", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return {"$ref": f"#/components/schemas/{tp.__name__}"}
    return {}


def _status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["kind", "apiVersion", "status", "message", "reason", "code"],
        "properties": {
            "kind": {"type": "string", "enum": ["Status"]},
            "apiVersion": {"type": "string", "enum": ["v1"]},
            "metadata": {"type": "object"},
            "status": {"type": "string", "enum": ["Failure"]},
            "message": {"type": "string"},
            "reason": {"type": "string"},
            "code": {"type": "integer"},
            "details": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "kind": {"type": "string"},
                    "lastKnown": {"$ref": "#/components/schemas/Workload"},
                },
            },
        },
    }


def _recommendation_schema() -> dict[str, Any]:
    number_map = {"type": "object", "additionalProperties": _nullable({"type": "number"})}
    return {
        "type": "object",
        "required": [
            "timestamp",
            "time",
            "desired_replicas",
            "winner",
            "holds",
            "stale",
            "candidates",
            "metrics",
            "fallbacks",
        ],  # fmt: skip
        "properties": {
            "timestamp": _nullable({"type": "number"}),
            "time": _nullable({"type": "string", "format": "date-time"}),
            "desired_replicas": _nullable({"type": "integer"}),
            "winner": {"type": "string"},
            "holds": {"type": "boolean"},
            "stale": {"type": "boolean"},
            "candidates": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["reason", "replicas", "detail"],
                    "properties": {
                        "reason": {"type": "string"},
                        "replicas": _nullable({"type": "number"}),
                        "detail": {"type": "string"},
                    },
                },
            },
            "metrics": number_map,
            "fallbacks": {
                "type": "array",
                "description": "what the policy derived or left idle for signals the engine"
                " does not export (docs/engines.md)",
                "items": {"type": "string"},
            },
        },
    }


def _workload_schema() -> dict[str, Any]:
    rec = {"$ref": "#/components/schemas/Recommendation"}
    return {
        "type": "object",
        "required": [
            "key",
            "namespace",
            "name",
            "labels",
            "engine",
            "guards",
            "freshness",
            "age_s",
            "updated_at",
            "desired_replicas",
            "winner",
            "metrics",
            "recommendation",
            "latest",
            "signals",
            "shadow",
        ],  # fmt: skip
        "properties": {
            "key": {"type": "string", "description": "namespace/name"},
            "namespace": {"type": "string"},
            "name": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "engine": {"type": "string", "description": "the engine profile's name"},
            "guards": {
                "type": "object",
                "description": "what each guard of the policy reads on this engine (latency,"
                " saturation, demand, capacity: signals fields or sources); an empty list: the"
                " guard is idle (docs/engines.md)",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            "freshness": {"type": "string", "enum": [f.value for f in Freshness]},
            "age_s": _nullable(
                {
                    "type": "number",
                    "description": "seconds since the last good"
                    " recommendation; null when there is none",
                }
            ),  # fmt: skip
            "updated_at": _nullable({"type": "string", "format": "date-time"}),
            "desired_replicas": _nullable({"type": "integer"}),
            "winner": _nullable({"type": "string"}),
            "metrics": {
                "type": "object",
                "description": "published metrics of the last good recommendation, in replica"
                " units (KEDA valueLocation: metrics.llm_desired_replicas)",
                "additionalProperties": _nullable({"type": "number"}),
            },
            "recommendation": _nullable(rec),
            "latest": _nullable(rec),
            "signals": _nullable({"$ref": "#/components/schemas/SignalSnapshot"}),
            "shadow": {
                "type": "object",
                "required": ["enabled", "current_autoscaler", "ours", "theirs", "difference"],
                "properties": {
                    "enabled": {"type": "boolean"},
                    "current_autoscaler": _nullable(
                        {"$ref": "#/components/schemas/CurrentAutoscaler"}
                    ),
                    "ours": _nullable({"type": "integer"}),
                    "theirs": _nullable({"type": "integer"}),
                    "difference": _nullable({"type": "integer", "description": "ours - theirs"}),
                },
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for ``/v1`` (3.1 schemas are plain JSON Schema, so "or null" is exact)."""
    status = {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}
    errors = {
        "401": {"description": "no valid credentials", "content": status},
        "403": {"description": "not allowed (SubjectAccessReview)", "content": status},
        "406": {"description": "the Accept header rules out JSON", "content": status},
        "500": {"description": "an authorization check failed", "content": status},
    }
    workload = {"application/json": {"schema": {"$ref": "#/components/schemas/Workload"}}}
    name_param = {"in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llm-autoscaler metrics JSON API",
            "version": "v1",
            "description": "Recommendations per workload, served from the recommendation store."
            " Errors are Kubernetes Status objects.",
        },
        "paths": {
            WORKLOADS_PATH: {
                "get": {
                    "operationId": "listWorkloads",
                    "parameters": [
                        {
                            "name": "namespace",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        },  # fmt: skip
                    ],
                    "responses": {
                        "200": {
                            "description": "every configured workload, fresh or not",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["workloads", "staleness_s"],
                                        "properties": {
                                            "workloads": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Workload"},
                                            },
                                            "staleness_s": {"type": "number"},
                                        },
                                    }
                                }
                            },
                        },
                        **errors,
                    },
                }
            },
            WORKLOAD_ROUTE: {
                "get": {
                    "operationId": "getWorkload",
                    "parameters": [
                        {"name": "namespace", **name_param},
                        {"name": "name", **name_param},
                    ],
                    "responses": {
                        "200": {"description": "a fresh recommendation", "content": workload},
                        "404": {"description": "not a configured workload", "content": status},
                        "503": {
                            "description": "stale or no data; details.lastKnown has the rest",
                            "content": status,
                        },
                        **errors,
                    },
                }
            },
            OPENAPI_PATH: {
                "get": {
                    "operationId": "getOpenAPI",
                    "responses": {
                        "200": {
                            "description": "this document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **errors,
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Status": _status_schema(),
                "Workload": _workload_schema(),
                "Recommendation": _recommendation_schema(),
                "SignalSnapshot": _dataclass_schema(SignalSnapshot),
                "ReplicaCounts": _dataclass_schema(ReplicaCounts),
                "CurrentAutoscaler": _dataclass_schema(CurrentAutoscaler),
            }
        },
    }
