"""Typed keys of the HTTPS app's state (aiohttp ``AppKey``/``RequestKey``, no globals).

One module so that the route modules and the app factory share the keys without importing
each other.
"""

from __future__ import annotations

from aiohttp import web

from autoscaler.live.store import RecommendationStore
from external_metrics.access import UserInfo
from external_metrics.lookup import WorkloadIndex

STORE = web.AppKey("store", RecommendationStore)
"""What every handler reads; the control loop is its only writer."""
INDEX = web.AppKey("workload_index", WorkloadIndex)
"""Workloads by namespace and label, built once from the store's (fixed) workload list."""
USER = web.RequestKey("user", UserInfo)
"""Who made the request, set by the auth middleware (absent when auth is off)."""
