"""The plain-HTTP side of ``serve`` (port 9090): ``/metrics``, ``/healthz`` and ``/readyz``.

It is separate from the TLS API port because kubelet probes and Prometheus scrapes must work
without client certificates or tokens, and must not compete with the HPA's requests. The
registry and the two health predicates are passed in: the app holds no state of its own.

* ``/healthz`` (liveness) fails only when the control loop stopped ticking: a Prometheus outage
  is not a reason to restart the pod (the loop fails static and recovers by itself).
* ``/readyz`` (readiness) passes once the backfill is done and one tick has been stored, so a
  new replica of the service does not answer 503s for every workload behind the Service. While
  the loop holds for want of Prometheus it still passes (every replica holds alike; taking them
  all out of the Service would turn the APIs' 503 Status answers into connection errors), with
  ``degraded: <reason>`` as its body.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

REGISTRY = web.AppKey("registry", CollectorRegistry)
Probe = Callable[[], bool]
ALIVE: web.AppKey[Probe] = web.AppKey("alive")
READY: web.AppKey[Probe] = web.AppKey("ready")
DEGRADED: web.AppKey[Callable[[], str | None]] = web.AppKey("degraded")


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4
    return response


async def _healthz(request: web.Request) -> web.Response:
    if request.app[ALIVE]():
        return web.Response(text="ok\n")
    return web.Response(status=503, text="control loop stopped ticking\n")


async def _readyz(request: web.Request) -> web.Response:
    if request.app[READY]():
        why = request.app[DEGRADED]()
        return web.Response(text=f"degraded: {why}\n" if why else "ok\n")
    return web.Response(status=503, text="not ready: backfill or first tick not done\n")


def create_health_app(
    registry: CollectorRegistry,
    *,
    alive: Callable[[], bool],
    ready: Callable[[], bool],
    degraded: Callable[[], str | None] = lambda: None,
) -> web.Application:
    """The health and metrics application; ``alive``/``ready``/``degraded`` are called on every
    probe."""
    app = web.Application()
    app[REGISTRY] = registry
    app[ALIVE] = alive
    app[READY] = ready
    app[DEGRADED] = degraded
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app
